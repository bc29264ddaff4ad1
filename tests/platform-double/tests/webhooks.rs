//! Shoptet's ordinary webhooks: registration per installation with its
//! rules, signature keys, signed deliveries with retries, the notification
//! history, and asynchronous jobs announced by `job:finished`.

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::*;
use hmac::{Hmac, Mac};
use platform_double::{DoubleConfig, Endpoint, NotificationStatus, PlatformDouble};
use serde_json::{Value, json};
use sha1::Sha1;

const ESHOP: u64 = 222651;
const OTHER_ESHOP: u64 = 333333;

/// Retries a few milliseconds apart, so a test sees all three attempts.
fn quick() -> DoubleConfig {
    DoubleConfig {
        webhook_retry_gap: Duration::from_millis(50),
        job_duration: Duration::from_millis(100),
        ..DoubleConfig::default()
    }
}

/// A double whose e-shop [`ESHOP`] registered `event` to a receiver that
/// answers `statuses` in turn (then 200): the double, the installation's
/// API token, the receiver.
async fn subscribed(event: &str, statuses: &[u16]) -> (PlatformDouble, String, Receiver) {
    let double = PlatformDouble::start_with(quick()).await;
    let token = api_token(&double, ESHOP).await;
    let (receiver, url) = Receiver::start(statuses).await;
    register(&double, &token, json!([{ "event": event, "url": url }])).await;
    (double, token, receiver)
}

/// One delivery as received.
#[derive(Debug, Clone)]
struct Received {
    signature: Option<String>,
    body: Bytes,
}

/// A stand-in for the add-on's webhook route: answers the queued statuses
/// in turn, then 200, and keeps what it was sent.
#[derive(Clone, Default)]
struct Receiver {
    answers: Arc<Mutex<VecDeque<u16>>>,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    /// Listens on a loopback port; the webhook URL.
    async fn start(answers: &[u16]) -> (Receiver, String) {
        async fn receive(
            State(receiver): State<Receiver>,
            headers: HeaderMap,
            body: Bytes,
        ) -> StatusCode {
            let signature = headers
                .get("shoptet-webhook-signature")
                .map(|v| v.to_str().unwrap().to_owned());
            receiver
                .received
                .lock()
                .unwrap()
                .push(Received { signature, body });
            let status = receiver.answers.lock().unwrap().pop_front().unwrap_or(200);
            StatusCode::from_u16(status).unwrap()
        }
        let receiver = Receiver {
            answers: Arc::new(Mutex::new(answers.iter().copied().collect())),
            received: Arc::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/shoptet/events", listener.local_addr().unwrap());
        let app = Router::new()
            .route("/shoptet/events", post(receive))
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, url)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// A request to the double's Shoptet API with `token`; status and body
/// (`null` when empty).
async fn call(
    double: &PlatformDouble,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", double.shoptet_api_url()))
        .header("Shoptet-Access-Token", token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let (status, body) = read(request.send().await.expect("request reaches the double")).await;
    (status, if body == json!("") { Value::Null } else { body })
}

async fn register(double: &PlatformDouble, token: &str, items: Value) -> (u16, Value) {
    call(
        double,
        reqwest::Method::POST,
        "/webhooks",
        token,
        Some(json!({ "data": items })),
    )
    .await
}

async fn renew_key(double: &PlatformDouble, token: &str) -> String {
    let (status, body) = call(
        double,
        reqwest::Method::POST,
        "/webhooks/renew-signature-key",
        token,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["data"]["signatureKey"].as_str().unwrap().to_owned()
}

fn hmac_sha1_hex(key: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn error_codes(body: &Value) -> Vec<&str> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e["errorCode"].as_str())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn webhooks_are_registered_per_installation() {
    let double = PlatformDouble::start().await;
    let token = api_token(&double, ESHOP).await;
    let other = api_token(&double, OTHER_ESHOP).await;

    let (status, body) = register(
        &double,
        &token,
        json!([{ "event": "order:create", "url": "https://broker.example.test/hooks" }]),
    )
    .await;

    assert_eq!(status, 201, "{body}");
    let created = &body["data"]["webhooks"][0];
    assert_eq!(created["event"], "order:create");
    assert_eq!(created["url"], "https://broker.example.test/hooks");
    assert!(created["id"].as_u64().is_some());
    assert!(created["created"].as_str().unwrap().ends_with("+0000"));
    let (_, listed) = call(&double, reqwest::Method::GET, "/webhooks", &token, None).await;
    assert_eq!(listed["data"]["webhooks"], body["data"]["webhooks"]);
    let (_, others) = call(&double, reqwest::Method::GET, "/webhooks", &other, None).await;
    assert_eq!(others["data"]["webhooks"], json!([]));
    assert_eq!(double.webhooks(ESHOP).len(), 1);
    assert!(double.webhooks(OTHER_ESHOP).is_empty());
    // The other e-shop registers the same event freely.
    let (status, _) = register(
        &double,
        &other,
        json!([{ "event": "order:create", "url": "https://broker.example.test/hooks" }]),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(double.calls(Endpoint::ShoptetWebhookRegister, "222651"), 1);
    assert_eq!(double.calls_to(Endpoint::ShoptetWebhookRegister), 2);
    assert_eq!(double.calls_to(Endpoint::ShoptetWebhookList), 2);
    assert_eq!(double.calls_to(Endpoint::ShoptetApi), 0);
}

#[tokio::test]
async fn a_webhook_is_deleted_only_by_its_own_installation() {
    let double = PlatformDouble::start().await;
    let token = api_token(&double, ESHOP).await;
    let other = api_token(&double, OTHER_ESHOP).await;
    let (_, body) = register(
        &double,
        &token,
        json!([{ "event": "order:create", "url": "https://broker.example.test/hooks" }]),
    )
    .await;
    let id = body["data"]["webhooks"][0]["id"].as_u64().unwrap();
    let path = format!("/webhooks/{id}");

    let (status, body) = call(&double, reqwest::Method::DELETE, &path, &other, None).await;
    assert_eq!(status, 404);
    assert_eq!(error_codes(&body), ["webhook-not-found"]);
    assert_eq!(double.webhooks(ESHOP).len(), 1);

    let (status, _) = call(&double, reqwest::Method::DELETE, &path, &token, None).await;
    assert_eq!(status, 204);
    assert!(double.webhooks(ESHOP).is_empty());
    assert_eq!(double.calls_to(Endpoint::ShoptetWebhookDelete), 2);
}

#[tokio::test]
async fn registering_an_event_twice_answers_422_and_registers_nothing_of_that_request() {
    let double = PlatformDouble::start().await;
    let token = api_token(&double, ESHOP).await;
    let hook = json!({ "event": "order:create", "url": "https://broker.example.test/a" });
    assert_eq!(register(&double, &token, json!([hook])).await.0, 201);

    let (status, body) = register(
        &double,
        &token,
        json!([
            { "event": "order:paid", "url": "https://broker.example.test/b" },
            { "event": "order:create", "url": "https://broker.example.test/c" },
        ]),
    )
    .await;

    assert_eq!(status, 422, "{body}");
    assert_eq!(body["data"], Value::Null);
    assert_eq!(error_codes(&body), ["webhook-exists"]);
    assert_eq!(
        body["errors"][0]["message"],
        "Webhook already exists for this event"
    );
    assert_eq!(body["errors"][0]["instance"], "data[1].event");
    assert!(body["metadata"]["requestId"].is_string());
    let events: Vec<String> = double
        .webhooks(ESHOP)
        .into_iter()
        .map(|w| w.event)
        .collect();
    assert_eq!(events, ["order:create"]);
}

#[tokio::test]
async fn order_update_with_order_cancel_answers_409_in_one_request_or_across_two() {
    let double = PlatformDouble::start().await;
    let token = api_token(&double, ESHOP).await;
    let update = json!({ "event": "order:update", "url": "https://broker.example.test/u" });
    let cancel = json!({ "event": "order:cancel", "url": "https://broker.example.test/c" });

    let (status, body) = register(&double, &token, json!([update, cancel])).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(error_codes(&body), ["webhook-conflict"]);
    assert!(double.webhooks(ESHOP).is_empty());

    assert_eq!(register(&double, &token, json!([update])).await.0, 201);
    let (status, body) = register(&double, &token, json!([cancel])).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(double.webhooks(ESHOP).len(), 1);
}

#[tokio::test]
async fn customer_update_with_enabling_or_disabling_orders_answers_409() {
    let double = PlatformDouble::start().await;
    let token = api_token(&double, ESHOP).await;
    let hook = |event: &str| json!({ "event": event, "url": "https://broker.example.test/c" });

    for other in ["customer:enableOrders", "customer:disableOrders"] {
        let (status, body) = register(
            &double,
            &token,
            json!([hook("customer:update"), hook(other)]),
        )
        .await;
        assert_eq!(status, 409, "{other}: {body}");
    }
    assert_eq!(
        register(&double, &token, json!([hook("customer:disableOrders")]))
            .await
            .0,
        201
    );
    let (status, _) = register(&double, &token, json!([hook("customer:update")])).await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn unknown_events_and_bad_urls_answer_400_and_register_nothing() {
    let double = PlatformDouble::start().await;
    let token = api_token(&double, ESHOP).await;
    let long_url = format!("https://broker.example.test/{}", "a".repeat(2000));
    let cases = [
        (
            json!([{ "event": "order:explode", "url": "https://b.example.test/" }]),
            "webhook-unknown-event",
        ),
        (
            json!([{ "event": "addon:uninstall", "url": "https://b.example.test/" }]),
            "webhook-unknown-event",
        ),
        (
            json!([{ "event": "order:create", "url": "https://b.example.test:9000/" }]),
            "webhook-invalid-url",
        ),
        (
            json!([{ "event": "order:create", "url": "http://b.example.test:3000/" }]),
            "webhook-invalid-url",
        ),
        (
            json!([{ "event": "order:create", "url": long_url }]),
            "webhook-invalid-url",
        ),
        (
            json!([{ "event": "order:create", "url": "ftp://b.example.test/" }]),
            "webhook-invalid-url",
        ),
        (
            json!([{ "event": "order:create", "url": "not a url" }]),
            "webhook-invalid-url",
        ),
        (json!([{ "event": "order:create" }]), "invalid-request-data"),
        (
            json!([{ "event": "order:create", "url": "https://b.example.test/", "sendPayload": "some" }]),
            "invalid-request-data",
        ),
        (json!([]), "invalid-request-data"),
        (json!("order:create"), "invalid-request-data"),
    ];

    for (items, code) in cases {
        let (status, body) = register(&double, &token, items.clone()).await;
        assert_eq!(status, 400, "{items}: {body}");
        assert_eq!(error_codes(&body), [code], "{items}");
    }
    let too_many: Vec<Value> = (0..51)
        .map(|i| json!({ "event": "order:create", "url": format!("https://b.example.test/{i}") }))
        .collect();
    let (status, body) = register(&double, &token, json!(too_many)).await;
    assert_eq!(status, 400);
    assert_eq!(error_codes(&body), ["invalid-request-data"]);
    // One good item and one bad: all or nothing.
    let (status, _) = register(
        &double,
        &token,
        json!([
            { "event": "order:create", "url": "https://b.example.test/" },
            { "event": "order:paid", "url": "https://b.example.test:1234/" },
        ]),
    )
    .await;
    assert_eq!(status, 400);
    assert!(double.webhooks(ESHOP).is_empty());
    // Ports Shoptet allows, and any port on loopback (test-only).
    let (status, body) = register(
        &double,
        &token,
        json!([
            { "event": "order:create", "url": "http://b.example.test:8080/" },
            { "event": "order:paid", "url": "https://b.example.test:8443/" },
            { "event": "order:delete", "url": "http://127.0.0.1:54321/" },
        ]),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn webhook_routes_need_a_live_api_token_of_the_eshop() {
    let double = PlatformDouble::start().await;
    let token = api_token(&double, ESHOP).await;
    double.expire_api_tokens(ESHOP);

    let (status, body) = register(
        &double,
        &token,
        json!([{ "event": "order:create", "url": "https://b.example.test/" }]),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(error_codes(&body), ["expired-token"]);
    let (status, body) = call(&double, reqwest::Method::GET, "/webhooks", "nope", None).await;
    assert_eq!(status, 401);
    assert_eq!(error_codes(&body), ["invalid-token"]);
    assert!(double.webhooks(ESHOP).is_empty());
}

#[tokio::test]
async fn every_renew_makes_a_new_key_and_deliveries_are_signed_with_the_current_one() {
    let (double, token, receiver) = subscribed("order:create", &[]).await;

    let first = renew_key(&double, &token).await;
    let second = renew_key(&double, &token).await;

    assert_ne!(first, second);
    assert!(second.len() >= 32);
    assert!(
        second
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(
        double.webhook_signature_key(ESHOP).as_deref(),
        Some(&*second)
    );
    assert_eq!(double.calls_to(Endpoint::ShoptetWebhookRenewKey), 2);

    let report = double
        .deliver_webhook(ESHOP, "order:create", "2024000001")
        .await;

    assert_eq!(report.notifications.len(), 1);
    assert_eq!(report.notifications[0].status, NotificationStatus::Success);
    let [received] = &receiver.received()[..] else {
        panic!("one delivery");
    };
    let signature = received.signature.as_deref().unwrap();
    assert_eq!(signature, hmac_sha1_hex(&second, &received.body));
    assert_ne!(signature, hmac_sha1_hex(&first, &received.body));
    let body: Value = serde_json::from_slice(&received.body).unwrap();
    assert_eq!(body["eshopId"], ESHOP);
    assert_eq!(body["event"], "order:create");
    assert_eq!(body["eventInstance"], "2024000001");
    let created = body["eventCreated"].as_str().unwrap();
    assert_eq!(created.len(), "2019-01-08T15:13:39+0100".len());
    assert!(body.get("payload").is_none());
    // The fields in Shoptet's order, byte for byte.
    assert!(
        String::from_utf8_lossy(&received.body).starts_with(&format!(
            "{{\"eshopId\":{ESHOP},\"event\":\"order:create\",\"eventCreated\""
        ))
    );
}

#[tokio::test]
async fn a_webhook_registered_with_the_full_payload_carries_a_fake_order() {
    let double = PlatformDouble::start_with(quick()).await;
    let token = api_token(&double, ESHOP).await;
    let (receiver, url) = Receiver::start(&[]).await;
    let (_, body) = register(
        &double,
        &token,
        json!([{ "event": "order:create", "url": url, "sendPayload": "full" }]),
    )
    .await;
    assert_eq!(body["data"]["webhooks"][0]["sendPayload"], "full");
    assert!(double.webhooks(ESHOP)[0].send_payload_full);

    double
        .deliver_webhook(ESHOP, "order:create", "2024000007")
        .await;

    let body: Value = serde_json::from_slice(&receiver.received()[0].body).unwrap();
    assert_eq!(body["payload"]["order"]["code"], "2024000007");
}

#[tokio::test]
async fn a_receiver_failing_twice_gets_three_identical_attempts_and_the_notification_succeeds() {
    let (double, token, receiver) = subscribed("order:paid", &[500, 503]).await;
    renew_key(&double, &token).await;

    let report = double
        .deliver_webhook(ESHOP, "order:paid", "2024000002")
        .await;

    let received = receiver.received();
    assert_eq!(received.len(), 3);
    assert!(received.iter().all(|r| r.body == received[0].body));
    assert!(
        received
            .iter()
            .all(|r| r.signature == received[0].signature)
    );
    let [notification] = &report.notifications[..] else {
        panic!("one notification");
    };
    assert_eq!(notification.status, NotificationStatus::Success);
    let statuses: Vec<Option<u16>> = notification.attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [Some(500), Some(503), Some(200)]);
    assert_eq!(notification.body, received[0].body);
    assert_eq!(double.webhook_notifications(ESHOP), report.notifications);
    assert_eq!(double.webhook_delivery_attempts(ESHOP), 3);
}

#[tokio::test]
async fn a_receiver_always_failing_leaves_the_notification_failed_after_three_attempts() {
    let (double, _, receiver) = subscribed("order:cancel", &[500, 500, 500, 500]).await;

    let report = double
        .deliver_webhook(ESHOP, "order:cancel", "2024000003")
        .await;

    assert_eq!(receiver.received().len(), 3);
    let notification = &report.notifications[0];
    assert_eq!(notification.status, NotificationStatus::Failed);
    assert!(!notification.active());
    assert_eq!(notification.attempts.len(), 3);
    // Without a key the notifications go unsigned.
    assert!(receiver.received().iter().all(|r| r.signature.is_none()));
}

#[tokio::test]
async fn a_receiver_that_is_down_makes_the_notification_fail() {
    let double = PlatformDouble::start_with(quick()).await;
    let token = api_token(&double, ESHOP).await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/gone", listener.local_addr().unwrap());
    drop(listener);
    register(
        &double,
        &token,
        json!([{ "event": "order:create", "url": url }]),
    )
    .await;

    let report = double.deliver_webhook(ESHOP, "order:create", "1").await;

    let notification = &report.notifications[0];
    assert_eq!(notification.status, NotificationStatus::Failed);
    assert!(
        notification
            .attempts
            .iter()
            .all(|a| a.status.is_none() && a.error.is_some())
    );
}

#[tokio::test]
async fn nothing_is_delivered_for_an_event_nobody_registered() {
    let (double, _, receiver) = subscribed("order:create", &[]).await;

    let report = double.deliver_webhook(ESHOP, "order:paid", "1").await;
    let elsewhere = double
        .deliver_webhook(OTHER_ESHOP, "order:create", "1")
        .await;

    assert!(report.notifications.is_empty());
    assert!(elsewhere.notifications.is_empty());
    assert!(receiver.received().is_empty());
}

#[tokio::test]
async fn notifications_are_listed_and_filtered_by_status() {
    let double = PlatformDouble::start_with(quick()).await;
    let token = api_token(&double, ESHOP).await;
    let (_, good) = Receiver::start(&[]).await;
    let (_, bad) = Receiver::start(&[500, 500, 500]).await;
    register(
        &double,
        &token,
        json!([
            { "event": "order:create", "url": good },
            { "event": "order:cancel", "url": bad },
        ]),
    )
    .await;
    double.deliver_webhook(ESHOP, "order:create", "A1").await;
    double.deliver_webhook(ESHOP, "order:cancel", "B1").await;
    let list = |query: &'static str| {
        let double = double.clone();
        let token = token.clone();
        async move {
            let path = format!("/webhooks/notifications{query}");
            call(&double, reqwest::Method::GET, &path, &token, None).await
        }
    };

    let (status, all) = list("").await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["data"]["paginator"]["totalCount"], 2);
    let (_, success) = list("?status=success").await;
    let items = success["data"]["notifications"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["eventInstance"], "A1");
    assert_eq!(items[0]["status"], "success");
    assert_eq!(items[0]["attempts"], 1);
    assert_eq!(items[0]["data"]["eventInstance"], "A1");
    let (_, failed) = list("?status=failed").await;
    let items = failed["data"]["notifications"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["event"], "order:cancel");
    assert_eq!(items[0]["attempts"], 3);
    assert_eq!(items[0]["active"], false);
    let (_, new) = list("?status=new").await;
    assert_eq!(new["data"]["notifications"], json!([]));
    let (_, paged) = list("?itemsPerPage=1&page=2").await;
    assert_eq!(paged["data"]["paginator"]["pageCount"], 2);
    assert_eq!(paged["data"]["notifications"][0]["eventInstance"], "A1");
    let (status, body) = list("?status=active").await;
    assert_eq!(status, 400);
    assert_eq!(error_codes(&body), ["invalid-query-parameter"]);
    assert_eq!(double.calls_to(Endpoint::ShoptetWebhookNotifications), 6);
}

#[tokio::test]
async fn a_notification_waiting_for_its_retry_is_listed_as_new_and_active() {
    let double = PlatformDouble::start_with(DoubleConfig {
        webhook_retry_gap: Duration::from_secs(3600),
        ..DoubleConfig::default()
    })
    .await;
    let token = api_token(&double, ESHOP).await;
    let (_, url) = Receiver::start(&[500]).await;
    register(
        &double,
        &token,
        json!([{ "event": "order:create", "url": url }]),
    )
    .await;

    let (status, report) = post_json(
        &format!(
            "{}/shoptet/{ESHOP}/webhooks/order:create",
            double.control_url()
        ),
        &json!({ "eventInstance": "2024000009" }),
    )
    .await;

    assert_eq!(status, 200, "{report}");
    assert_eq!(report["notifications"][0]["status"], "new");
    assert_eq!(report["notifications"][0]["active"], true);
    assert_eq!(report["notifications"][0]["attempts"], 1);
    let (_, new) = call(
        &double,
        reqwest::Method::GET,
        "/webhooks/notifications?status=new",
        &token,
        None,
    )
    .await;
    assert_eq!(
        new["data"]["notifications"][0]["eventInstance"],
        "2024000009"
    );
}

#[tokio::test]
async fn starting_a_job_without_job_finished_registered_is_refused_with_403() {
    let double = PlatformDouble::start_with(quick()).await;
    let token = api_token(&double, ESHOP).await;

    let (status, body) = call(
        &double,
        reqwest::Method::POST,
        "/products/snapshot",
        &token,
        None,
    )
    .await;

    assert_eq!(status, 403, "{body}");
    assert_eq!(error_codes(&body), ["job-finished-webhook-missing"]);
    assert_eq!(double.calls_to(Endpoint::ShoptetJobStart), 1);
}

#[tokio::test]
async fn a_job_delivers_job_finished_with_its_id_once_done() {
    let (double, token, receiver) = subscribed("job:finished", &[]).await;

    let (status, body) = call(
        &double,
        reqwest::Method::POST,
        "/products/snapshot",
        &token,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let job_id = body["data"]["jobId"].as_str().unwrap().to_owned();
    let detail = format!("/system/jobs/{job_id}");
    let (_, pending) = call(&double, reqwest::Method::GET, &detail, &token, None).await;
    assert_eq!(pending["data"]["job"]["status"], "pending");

    let mut waited = Duration::ZERO;
    while receiver.received().is_empty() && waited < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += Duration::from_millis(20);
    }

    let body: Value = serde_json::from_slice(&receiver.received()[0].body).unwrap();
    assert_eq!(body["event"], "job:finished");
    assert_eq!(body["eventInstance"], job_id);
    let (status, done) = call(&double, reqwest::Method::GET, &detail, &token, None).await;
    assert_eq!(status, 200);
    assert_eq!(done["data"]["job"]["status"], "completed");
}

#[tokio::test]
async fn a_jobs_detail_asked_more_than_ten_times_before_it_is_done_answers_403() {
    let double = PlatformDouble::start_with(DoubleConfig {
        job_duration: Duration::from_secs(3600),
        ..DoubleConfig::default()
    })
    .await;
    let token = api_token(&double, ESHOP).await;
    register(
        &double,
        &token,
        json!([{ "event": "job:finished", "url": "https://b.example.test/" }]),
    )
    .await;
    let (_, body) = call(
        &double,
        reqwest::Method::POST,
        "/products/snapshot",
        &token,
        None,
    )
    .await;
    let detail = format!("/system/jobs/{}", body["data"]["jobId"].as_str().unwrap());

    for _ in 0..10 {
        let (status, _) = call(&double, reqwest::Method::GET, &detail, &token, None).await;
        assert_eq!(status, 200);
    }
    let (status, body) = call(&double, reqwest::Method::GET, &detail, &token, None).await;

    assert_eq!(status, 403, "{body}");
    assert_eq!(error_codes(&body), ["job-detail-limit-exceeded"]);
    let (status, _) = call(
        &double,
        reqwest::Method::GET,
        "/system/jobs/unknown",
        &token,
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(double.calls_to(Endpoint::ShoptetJobDetail), 12);
}

#[tokio::test]
async fn keys_are_per_installation_by_default() {
    let double = PlatformDouble::start().await;
    let token = api_token(&double, ESHOP).await;
    let other = api_token(&double, OTHER_ESHOP).await;

    let key = renew_key(&double, &token).await;
    assert_eq!(double.webhook_signature_key(OTHER_ESHOP), None);
    let other_key = renew_key(&double, &other).await;

    assert_ne!(key, other_key);
    assert_eq!(double.webhook_signature_key(ESHOP), Some(key));
}

#[tokio::test]
async fn with_a_key_per_addon_one_installations_renew_replaces_every_installations_key() {
    let double = PlatformDouble::start_with(DoubleConfig {
        signature_key_per_addon: true,
        ..quick()
    })
    .await;
    let token = api_token(&double, ESHOP).await;
    let other = api_token(&double, OTHER_ESHOP).await;
    let (receiver, url) = Receiver::start(&[]).await;
    register(
        &double,
        &token,
        json!([{ "event": "order:create", "url": url }]),
    )
    .await;

    renew_key(&double, &token).await;
    let replacing = renew_key(&double, &other).await;

    assert_eq!(
        double.webhook_signature_key(ESHOP).as_deref(),
        Some(&*replacing)
    );
    assert_eq!(
        double.webhook_signature_key(OTHER_ESHOP).as_deref(),
        Some(&*replacing)
    );
    double.deliver_webhook(ESHOP, "order:create", "1").await;
    let received = &receiver.received()[0];
    assert_eq!(
        received.signature.as_deref(),
        Some(&*hmac_sha1_hex(&replacing, &received.body))
    );
}

#[tokio::test]
async fn the_control_api_places_a_sandbox_order_with_a_new_order_code() {
    let (double, token, receiver) = subscribed("order:create", &[]).await;
    let key = renew_key(&double, &token).await;

    let (status, report) = post_json(
        &format!("{}/shoptet/{ESHOP}/orders", double.control_url()),
        &json!({ "wait": "settled" }),
    )
    .await;

    assert_eq!(status, 200, "{report}");
    assert_eq!(report["event"], "order:create");
    let code = report["eventInstance"].as_str().unwrap();
    assert_eq!(code.len(), 10);
    assert_eq!(report["notifications"][0]["status"], "success");
    let received = &receiver.received()[0];
    let body: Value = serde_json::from_slice(&received.body).unwrap();
    assert_eq!(body["eventInstance"], code);
    assert_eq!(
        received.signature.as_deref(),
        Some(&*hmac_sha1_hex(&key, &received.body))
    );
    let (_, seen) = get_with(
        &format!("{}/shoptet/{ESHOP}/webhooks", double.control_url()),
        "Accept",
        "application/json",
    )
    .await;
    assert_eq!(seen["signatureKey"], key);
    assert_eq!(seen["webhooks"][0]["event"], "order:create");
    assert_eq!(seen["notifications"][0]["eventInstance"], code);
    // The control API is not the platform: nothing counted.
    assert_eq!(double.calls_to(Endpoint::ShoptetApi), 0);
}

#[tokio::test]
async fn an_uninstall_forgets_the_installations_webhooks_and_key() {
    let double = PlatformDouble::start().await;
    let token = api_token(&double, ESHOP).await;
    register(
        &double,
        &token,
        json!([{ "event": "order:create", "url": "https://b.example.test/" }]),
    )
    .await;
    renew_key(&double, &token).await;

    double.uninstall(ESHOP);

    assert!(double.webhooks(ESHOP).is_empty());
    assert_eq!(double.webhook_signature_key(ESHOP), None);
}

#[tokio::test]
async fn signature_keys_are_among_the_secrets_a_test_scans_logs_for() {
    let double = PlatformDouble::start().await;
    let token = api_token(&double, ESHOP).await;
    let key = renew_key(&double, &token).await;

    let (status, body) = get_with(
        &format!("{}/secrets", double.control_url()),
        "Accept",
        "application/json",
    )
    .await;

    assert_eq!(status, 200);
    assert!(body["secrets"].as_array().unwrap().contains(&json!(key)));
}
