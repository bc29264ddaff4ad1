//! The control API: lifecycle events played on request, signed so that the
//! broker's own verification helpers accept them, and never counted.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use broker_domain::secret::{ClientSecret, WebhookKey};
use broker_platforms::shoprenter_app::{AppRedirect, DEFAULT_MAX_AGE};
use broker_platforms::shoptet_webhook::{self, AddonEvent, AddonEventKind, SIGNATURE_HEADER};
use common::*;
use platform_double::{DoubleConfig, InstallationState, PlatformDouble, ShoprenterApp};
use serde_json::{Value, json};

const ESHOP: u64 = 222651;
const WEBHOOK_KEY: &str = "webhook-key-of-the-double";
const SHOP: &str = "demo-shop";
const APP_ID: &str = "app-id";
const APP_SECRET: &str = "app-secret";
const REDIRECT_URI: &str = "https://broker.example.test/shoprenter/install";
const UNINSTALL_URI: &str = "https://broker.example.test/shoprenter/uninstall";

/// One delivery as received.
struct Delivery {
    signature: Option<String>,
    content_type: Option<String>,
    body: Bytes,
}

/// A stand-in for the broker's webhook route, keeping what it was sent.
#[derive(Clone, Default)]
struct Receiver {
    deliveries: Arc<Mutex<Vec<Delivery>>>,
}

impl Receiver {
    /// Listens on a loopback port, answers every delivery like the broker
    /// does, and returns the webhook URL.
    async fn start(&self) -> String {
        async fn receive(
            State(receiver): State<Receiver>,
            headers: HeaderMap,
            body: Bytes,
        ) -> axum::Json<Value> {
            let header = |name: &str| {
                headers
                    .get(name)
                    .map(|value| value.to_str().unwrap().to_owned())
            };
            receiver.deliveries.lock().unwrap().push(Delivery {
                signature: header(SIGNATURE_HEADER),
                content_type: header("content-type"),
                body,
            });
            axum::Json(json!({ "status": "processed" }))
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/shoptet/webhook", listener.local_addr().unwrap());
        let app = Router::new()
            .route("/shoptet/webhook", post(receive))
            .with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    /// The one delivery so far, checked to be signed JSON; its parsed event.
    fn only_event(&self) -> (AddonEvent, Value) {
        let deliveries = self.deliveries.lock().unwrap();
        let [
            Delivery {
                signature,
                content_type,
                body,
            },
        ] = &deliveries[..]
        else {
            panic!("expected one delivery, got {}", deliveries.len());
        };
        let signature = signature.as_deref().expect("the delivery is signed");
        assert!(
            shoptet_webhook::signature_matches(
                &WebhookKey::new(WEBHOOK_KEY),
                body,
                signature.as_bytes()
            ),
            "the broker's helper verifies the signature"
        );
        assert_eq!(
            signature,
            shoptet_webhook::sign(&WebhookKey::new(WEBHOOK_KEY), body)
        );
        assert_eq!(content_type.as_deref(), Some("application/json"));
        let event = AddonEvent::parse(body, SystemTime::now()).expect("Shoptet's event shape");
        (event, serde_json::from_slice(body).unwrap())
    }

    fn clear(&self) {
        self.deliveries.lock().unwrap().clear();
    }
}

async fn double_delivering_to(receiver: &Receiver) -> PlatformDouble {
    PlatformDouble::start_with(DoubleConfig {
        shoptet_webhook_url: Some(receiver.start().await),
        shoptet_webhook_key: Some(WEBHOOK_KEY.to_owned()),
        ..DoubleConfig::default()
    })
    .await
}

async fn control(double: &PlatformDouble, eshop_id: &str, action: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!(
            "{}/shoptet/{eshop_id}/{action}",
            double.control_url()
        ))
        .send()
        .await
        .expect("the control answers");
    read(response).await
}

#[tokio::test]
async fn an_uninstall_ends_the_installation_then_delivers_a_signed_event_the_broker_accepts() {
    let receiver = Receiver::default();
    let double = double_delivering_to(&receiver).await;
    let oauth = install(&double, ESHOP).await;
    let calls_before = double.total_calls();
    let asked_at = SystemTime::now();

    let (status, answer) = control(&double, &ESHOP.to_string(), "uninstall").await;

    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["eshopId"], ESHOP);
    assert_eq!(answer["event"], "addon:uninstall");
    assert_eq!(answer["state"], "not_installed");
    assert_eq!(answer["webhook"]["status"], 200);
    assert_eq!(answer["webhook"]["body"], json!({ "status": "processed" }));
    let (event, body) = receiver.only_event();
    assert_eq!(event.eshop_id.get(), ESHOP);
    assert_eq!(event.kind, Some(AddonEventKind::Uninstall));
    assert_eq!(body["eventInstance"], ESHOP.to_string());
    let created = event.created.expect("eventCreated parses");
    assert!(
        created + Duration::from_secs(1) > asked_at && created <= SystemTime::now(),
        "stamped at the call, in whole seconds"
    );
    assert_eq!(
        double.total_calls(),
        calls_before,
        "controls are not counted"
    );
    assert_eq!(
        double.installation_state(ESHOP),
        InstallationState::NotInstalled
    );
    assert_eq!(double.oauth_access_token(ESHOP), None);
    assert_eq!(get_access_token(&double, &oauth).await.0, 401);
}

#[tokio::test]
async fn suspend_and_approve_change_what_getaccesstoken_answers_and_send_their_events() {
    let receiver = Receiver::default();
    let double = double_delivering_to(&receiver).await;
    let oauth = install(&double, ESHOP).await;

    let (status, answer) = control(&double, &ESHOP.to_string(), "suspend").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["state"], "suspended");
    assert_eq!(receiver.only_event().0.kind, Some(AddonEventKind::Suspend));
    let (status, refusal) = get_access_token(&double, &oauth).await;
    assert_eq!(
        (status, refusal["error"].as_str()),
        (403, Some("addon_suspended"))
    );

    receiver.clear();
    let (status, answer) = control(&double, &ESHOP.to_string(), "approve").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["state"], "active");
    assert_eq!(receiver.only_event().0.kind, Some(AddonEventKind::Approve));
    assert_eq!(get_access_token(&double, &oauth).await.0, 200);
}

#[tokio::test]
async fn terminate_ends_the_installation_like_uninstall() {
    let receiver = Receiver::default();
    let double = double_delivering_to(&receiver).await;
    let oauth = install(&double, ESHOP).await;

    let (status, answer) = control(&double, &ESHOP.to_string(), "terminate").await;

    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        receiver.only_event().0.kind,
        Some(AddonEventKind::Terminate)
    );
    assert_eq!(get_access_token(&double, &oauth).await.0, 401);
}

#[tokio::test]
async fn without_a_webhook_url_the_controls_only_change_the_state() {
    let double = PlatformDouble::start().await;
    install(&double, ESHOP).await;

    let (status, answer) = control(&double, &ESHOP.to_string(), "suspend").await;

    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["webhook"], Value::Null);
    assert_eq!(
        double.installation_state(ESHOP),
        InstallationState::Suspended
    );
}

#[tokio::test]
async fn a_failed_delivery_is_a_bad_gateway_and_the_state_still_changed() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let double = PlatformDouble::start_with(DoubleConfig {
        shoptet_webhook_url: Some(format!("http://{closed}/shoptet/webhook")),
        ..DoubleConfig::default()
    })
    .await;
    install(&double, ESHOP).await;

    let (status, answer) = control(&double, &ESHOP.to_string(), "uninstall").await;

    assert_eq!(status, 502, "{answer}");
    assert!(answer["webhook"]["error"].is_string(), "{answer}");
    assert_eq!(
        double.installation_state(ESHOP),
        InstallationState::NotInstalled
    );
}

#[tokio::test]
async fn unknown_actions_and_eshop_ids_are_refused() {
    let double = PlatformDouble::start().await;

    assert_eq!(control(&double, "222651", "rename").await.0, 404);
    assert_eq!(control(&double, "not-a-number", "uninstall").await.0, 400);
    assert_eq!(double.total_calls(), 0);
}

#[tokio::test]
async fn the_installation_control_shows_the_state_and_the_live_oauth_token_uncounted() {
    let double = PlatformDouble::start().await;
    let shown = |eshop_id: &str| {
        let url = format!("{}/shoptet/{eshop_id}", double.control_url());
        async move { read(reqwest::get(url).await.expect("the control answers")).await }
    };
    assert_eq!(
        shown("222651").await,
        (
            200,
            json!({"eshopId": ESHOP, "state": "not_installed", "oauth_access_token": null})
        )
    );
    let oauth = install(&double, ESHOP).await;
    let calls_before = double.total_calls();

    let (status, answer) = shown("222651").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["state"], "active");
    assert_eq!(answer["oauth_access_token"], oauth);
    double.uninstall(ESHOP);
    let (_, answer) = shown("222651").await;
    assert_eq!(answer["state"], "not_installed");
    assert_eq!(answer["oauth_access_token"], Value::Null);
    assert_eq!(shown("not-a-number").await.0, 400);
    assert_eq!(
        double.total_calls(),
        calls_before,
        "controls are not counted"
    );
}

fn app() -> ShoprenterApp {
    ShoprenterApp {
        client_id: APP_ID.to_owned(),
        client_secret: APP_SECRET.to_owned(),
        scopes: vec!["product:read".to_owned()],
        redirect_uri: REDIRECT_URI.to_owned(),
        uninstall_uri: UNINSTALL_URI.to_owned(),
    }
}

/// Follows no redirect: answers the status and the `Location`.
async fn browse(url: &str) -> (u16, Option<String>) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client.get(url).send().await.expect("the control answers");
    let location = response
        .headers()
        .get("location")
        .map(|value| value.to_str().unwrap().to_owned());
    (response.status().as_u16(), location)
}

/// The query of a redirect to `target`, checked with the broker's helper.
fn verified_query(location: &str, target: &str) -> String {
    let query = location
        .strip_prefix(&format!("{target}?"))
        .unwrap_or_else(|| panic!("{location} is not a redirect to {target}"));
    let redirect = AppRedirect::verify(
        query,
        &ClientSecret::new(APP_SECRET),
        SystemTime::now(),
        DEFAULT_MAX_AGE,
    )
    .expect("the broker's helper verifies the hmac and timestamp");
    assert_eq!(redirect.shop.as_str(), SHOP);
    query.to_owned()
}

async fn app_token(double: &PlatformDouble) -> (u16, Value) {
    post_json(
        &format!("{}/{SHOP}/app/token", double.shoprenter_oauth_url()),
        &json!({
            "grant_type": "client_credentials",
            "client_id": APP_ID,
            "client_secret": APP_SECRET,
        }),
    )
    .await
}

#[tokio::test]
async fn the_shoprenter_controls_install_and_uninstall_the_app_and_redirect_with_a_signed_query() {
    let double = PlatformDouble::start_with(DoubleConfig {
        shoprenter_app: Some(app()),
        ..DoubleConfig::default()
    })
    .await;
    let control = |action: &str| format!("{}/shoprenter/{SHOP}/{action}", double.control_url());

    let (status, location) = browse(&control("install")).await;

    assert_eq!(status, 302);
    let query = verified_query(&location.unwrap(), REDIRECT_URI);
    assert!(
        query.starts_with(&format!("shopname={SHOP}&code=")),
        "{query}"
    );
    assert_eq!(double.total_calls(), 0, "controls are not counted");
    let (status, granted) = app_token(&double).await;
    assert_eq!(status, 200, "the app is installed in the shop: {granted}");
    let token = granted["access_token"].as_str().unwrap().to_owned();

    let (status, location) = browse(&control("uninstall")).await;

    assert_eq!(status, 302);
    verified_query(&location.unwrap(), UNINSTALL_URI);
    assert_eq!(app_token(&double).await.0, 401, "the app is gone");
    let api = format!("{}/products", double.shoprenter_api_url(SHOP));
    let (status, _) = get_with(&api, "Authorization", &format!("Bearer {token}")).await;
    assert_eq!(status, 401, "its tokens are revoked");
}

#[tokio::test]
async fn without_an_app_the_shoprenter_controls_answer_conflict() {
    let double = PlatformDouble::start().await;

    let (status, location) = browse(&format!(
        "{}/shoprenter/{SHOP}/install",
        double.control_url()
    ))
    .await;

    assert_eq!((status, location), (409, None));
}
