//! An install callback AND a vendor on one world, for the installation
//! lifecycle: Shoptet add-on events, Shoprenter app redirects, operator
//! routes. Scenarios assert their outcomes and record what they handled.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use broker_domain::secret::{ClientSecret, WebhookKey};
use broker_platforms::{shoprenter_app, shoptet_webhook};
use install_callback::{AwsInstallCallback, AwsInstallConfig, build_on_aws};
use lambda_http::http::{Request, Response, StatusCode};
use lambda_http::{Body, RequestExt};
use platform_double::{DoubleConfig, Endpoint, InstallationState};
use serde_json::Value;
use test_support::front_door::iam_http_api_context;
use test_support::{TestWorld, into_json};
use token_vendor::{AwsVendHandler, AwsVendorConfig};

use super::{SHOPRENTER_CLIENT_ID, SHOPRENTER_CLIENT_SECRET, Secrets, error_code};

pub const APP_SHOP: &str = "lifecycle-shop";
pub const WEBHOOK_KEY: &str = "webhook-signature-key-5f2a9c";
pub const ENTRY_URL: &str = "https://apps.example/{shop}/welcome";

pub struct Lifecycle {
    pub world: TestWorld,
    pub install: AwsInstallCallback,
    /// The install callback's metric lines (EMF).
    pub metrics: test_support::CapturedLogs,
    pub webhook_key: Option<WebhookKey>,
    vendor_env: HashMap<&'static str, String>,
    /// Every signature sent, for the leak checks.
    pub signatures: std::sync::Mutex<Vec<String>>,
}

impl std::ops::Deref for Lifecycle {
    type Target = TestWorld;

    fn deref(&self) -> &TestWorld {
        &self.world
    }
}

/// How a lifecycle broker is set up.
#[derive(Default)]
pub struct Setup {
    pub webhook_key: bool,
    pub app_entry_url: bool,
    pub suspended_recheck_seconds: Option<u64>,
    pub platforms: Platforms,
}

/// Which platforms the stack is configured for: their variables are set,
/// the other's are absent, as a single-platform stack's template leaves them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Platforms {
    #[default]
    Both,
    /// No Shoprenter app (its shops may still bring their own credentials).
    ShoptetOnly,
    /// No Shoptet add-on: no `SHOPTET_*` variable at all.
    ShoprenterOnly,
}

impl Lifecycle {
    pub async fn start(setup: Setup) -> Self {
        let world = TestWorld::start(DoubleConfig::default()).await;
        let double = &world.double;
        double.register_shoprenter_client(
            APP_SHOP,
            SHOPRENTER_CLIENT_ID,
            SHOPRENTER_CLIENT_SECRET,
            &["product:read"],
        );
        let addon_secret = world
            .create_secret(
                "addon-client-secret",
                &double.config().shoptet_client_secret.clone().unwrap(),
            )
            .await;
        let app_secret = world
            .create_secret("app-client-secret", SHOPRENTER_CLIENT_SECRET)
            .await;
        let mut shared = world.env();
        let shoptet = setup.platforms != Platforms::ShoprenterOnly;
        if setup.platforms != Platforms::ShoptetOnly {
            shared.insert("SHOPRENTER_CLIENT_ID", SHOPRENTER_CLIENT_ID.to_owned());
            shared.insert("SHOPRENTER_CLIENT_SECRET_ID", app_secret);
        }
        if !shoptet {
            shared.retain(|name, _| !name.starts_with("SHOPTET_"));
        }
        if let Some(seconds) = setup.suspended_recheck_seconds {
            shared.insert("SUSPENDED_RECHECK_SECONDS", seconds.to_string());
        }
        let vendor_env = shared.clone();
        let mut env = shared;
        env.remove("SHOPRENTER_API_URL");
        if shoptet {
            env.insert(
                "SHOPTET_CLIENT_ID",
                double.config().shoptet_client_id.clone(),
            );
            env.insert("SHOPTET_CLIENT_SECRET_ID", addon_secret);
            env.insert("SHOPTET_REDIRECT_URI", super::REDIRECT_URI.to_owned());
        }
        let webhook_key = if setup.webhook_key {
            let id = world.create_secret("webhook-key", WEBHOOK_KEY).await;
            env.insert("SHOPTET_WEBHOOK_KEY_SECRET_ID", id);
            Some(WebhookKey::new(WEBHOOK_KEY))
        } else {
            None
        };
        if setup.app_entry_url {
            env.insert("SHOPRENTER_APP_ENTRY_URL", ENTRY_URL.to_owned());
        }
        let config = AwsInstallConfig::from_env(&|name: &str| env.get(name).cloned()).unwrap();
        let (install, metrics) = super::with_captured_metrics(build_on_aws(config, &world.aws));
        Self {
            world,
            install,
            metrics,
            webhook_key,
            vendor_env,
            signatures: std::sync::Mutex::default(),
        }
    }

    /// A new vendor instance (nothing in its L1), as a cold Lambda would start.
    pub async fn vendor(&self) -> AwsVendHandler {
        self.vendor_trusting_l1_for(broker_vending::L1_TRUST).await
    }

    /// A vendor whose Secrets Manager is unreachable (the tables are not):
    /// any answer that needs a secret read fails with `store_unavailable`.
    pub async fn vendor_without_secrets(&self) -> AwsVendHandler {
        use broker_aws::storage::InstallationBackend;
        use broker_aws::storage::aws_installations::AwsInstallationStore;
        use broker_aws::storage::secrets_manager::SecretsManagerStore;
        use broker_domain::storage::Stores;
        let env = &self.vendor_env;
        let config = AwsVendorConfig::from_env(&|name: &str| env.get(name).cloned()).unwrap();
        let closed =
            test_support::sdk_config_for_endpoint(&test_support::unreachable_endpoint()).await;
        let stores = config.stores.open(&self.aws);
        let InstallationBackend::SecretsManager { secrets } = &config.stores.installations else {
            panic!("the lifecycle tests keep installations in Secrets Manager");
        };
        let stores = Stores {
            installations: AwsInstallationStore::SecretsManager(SecretsManagerStore::new(
                aws_sdk_secretsmanager::Client::new(&closed),
                secrets.clone(),
            )),
            tokens: stores.tokens,
            registry: stores.registry,
        };
        token_vendor::VendHandler::new(config.vendor, None, stores)
    }

    pub async fn vendor_trusting_l1_for(&self, l1_trust: Duration) -> AwsVendHandler {
        let env = &self.vendor_env;
        let mut config = AwsVendorConfig::from_env(&|name: &str| env.get(name).cloned()).unwrap();
        config.vendor.timing.l1_trust = l1_trust;
        token_vendor::build_on_aws(config, &self.aws)
    }

    pub async fn request(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Body,
    ) -> Response<Body> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("https://broker.example{path_and_query}"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        // As an operator's SigV4 request arrives through our HTTP API; the
        // platform callbacks ignore the identity.
        let request = request
            .body(body)
            .unwrap()
            .with_request_context(iam_http_api_context());
        self.install.handle(request).await
    }

    pub async fn send(
        &self,
        method: &str,
        path_and_query: &str,
        body: Body,
    ) -> (StatusCode, Value) {
        into_json(self.request(method, path_and_query, &[], body).await)
    }

    /// Delivers a webhook signed with this broker's key (when it has one).
    pub async fn webhook(&self, body: &str) -> (StatusCode, Value) {
        let signature = self
            .webhook_key
            .as_ref()
            .map(|key| shoptet_webhook::sign(key, body.as_bytes()));
        if let Some(signature) = &signature {
            self.signatures.lock().unwrap().push(signature.clone());
        }
        self.webhook_signed(body, signature.as_deref()).await
    }

    pub async fn webhook_signed(&self, body: &str, signature: Option<&str>) -> (StatusCode, Value) {
        let headers: Vec<(&str, &str)> = signature
            .map(|signature| vec![(shoptet_webhook::SIGNATURE_HEADER, signature)])
            .unwrap_or_default();
        into_json(
            self.request(
                "POST",
                "/shoptet/webhook",
                &headers,
                Body::from(body.to_owned()),
            )
            .await,
        )
    }

    /// Installs the add-on in `eshop_id` through Shoptet's install URL.
    pub async fn install_shoptet(&self, eshop_id: u64, secrets: &mut Secrets) {
        let code = self.double.issue_install_code(eshop_id);
        secrets.values.push(code.clone());
        let (status, body) = self
            .send("GET", &format!("/shoptet/install?code={code}"), Body::Empty)
            .await;
        secrets.saw(status, &body);
        assert_eq!(status, StatusCode::OK, "{body}");
        secrets
            .values
            .push(self.double.oauth_access_token(eshop_id).unwrap());
    }

    /// The shop's secret: whether it exists, and when it is scheduled to go.
    pub async fn secret_state(&self, platform: &str, shop: &str) -> SecretState {
        let name = format!("{}{platform}/{shop}", self.secret_prefix);
        let described = aws_sdk_secretsmanager::Client::new(&self.aws)
            .describe_secret()
            .secret_id(&name)
            .send()
            .await;
        match described {
            Ok(output) if output.deleted_date().is_some() => SecretState::ScheduledForDeletion,
            Ok(_) => SecretState::Active,
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                SecretState::Absent
            }
            Err(error) => panic!("describing {name}: {error:?}"),
        }
    }

    pub async fn secret_value(&self, platform: &str, shop: &str) -> Value {
        let name = format!("{}{platform}/{shop}", self.secret_prefix);
        let output = aws_sdk_secretsmanager::Client::new(&self.aws)
            .get_secret_value()
            .secret_id(&name)
            .send()
            .await
            .unwrap();
        serde_json::from_str(output.secret_string().unwrap()).unwrap()
    }

    pub async fn registry_status(&self, platform: &str, shop: &str) -> Option<String> {
        let (status, body) = self
            .send(
                "GET",
                &format!("/installations/{platform}/{shop}"),
                Body::Empty,
            )
            .await;
        match status {
            StatusCode::OK => Some(body["status"].as_str().unwrap().to_owned()),
            StatusCode::NOT_FOUND => None,
            other => panic!("reading the registry: {other} {body}"),
        }
    }

    /// Shoprenter's redirect to one of the app's URLs, signed with the
    /// app's ClientSecret unless `hmac` overrides it.
    pub async fn shoprenter_redirect(
        &self,
        route: &str,
        shop: &str,
        timestamp: u64,
        extra: &str,
        hmac: Option<&str>,
        secrets: &mut Secrets,
    ) -> Response<Body> {
        let message = format!("shopname={shop}&code=sr-code-{timestamp}&timestamp={timestamp}");
        let signed = shoprenter_app::sign(&ClientSecret::new(SHOPRENTER_CLIENT_SECRET), &message);
        secrets.values.push(signed.clone());
        let hmac = hmac.unwrap_or(&signed);
        self.request(
            "GET",
            &format!("/shoprenter/{route}?{message}{extra}&hmac={hmac}"),
            &[],
            Body::Empty,
        )
        .await
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretState {
    Active,
    ScheduledForDeletion,
    Absent,
}

pub fn event(eshop_id: u64, event: &str, created: SystemTime) -> String {
    let created = humantime::format_rfc3339_seconds(created).to_string();
    // Shoptet's own form: `+0000` instead of `Z`, the instance as a string.
    let created = created.replace('Z', "+0000");
    format!(
        r#"{{"eshopId":{eshop_id},"event":"{event}","eventCreated":"{created}","eventInstance":"{eshop_id}"}}"#
    )
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A vend through the vendor's HTTP door.
pub async fn vend(vendor: &AwsVendHandler, platform: &str, shop: &str) -> (StatusCode, Value) {
    let request = Request::builder()
        .method("GET")
        .uri(format!("https://broker.example/tokens/{platform}/{shop}"))
        .body(Body::Empty)
        .unwrap();
    into_json(vendor.handle(request).await.unwrap())
}

pub fn getaccesstoken_calls(world: &TestWorld) -> u64 {
    world.double.calls_to(Endpoint::ShoptetGetAccessToken)
}

// ---- scenarios ----

/// A confirmed uninstall retires the shop: 404 without upstream calls until
/// a reinstall, which cancels the deletion and serves again.
pub async fn uninstall_then_reinstall(broker: &Lifecycle, eshop_id: u64, secrets: &mut Secrets) {
    let shop = eshop_id.to_string();
    broker.install_shoptet(eshop_id, secrets).await;
    let (status, body) = vend(&broker.vendor().await, "shoptet", &shop).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    secrets
        .values
        .push(body["access_token"].as_str().unwrap().to_owned());

    broker.double.uninstall(eshop_id);
    let (status, body) = broker
        .webhook(&event(eshop_id, "addon:uninstall", SystemTime::now()))
        .await;
    secrets.saw(status, &body);
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::OK, &Value::from("processed"))
    );
    assert_eq!(
        broker.secret_state("shoptet", &shop).await,
        SecretState::ScheduledForDeletion
    );
    assert_eq!(
        broker.registry_status("shoptet", &shop).await.as_deref(),
        Some("uninstalled")
    );

    broker.double.reset_counters();
    let vendor = broker.vendor().await;
    for _ in 0..3 {
        let (status, body) = vend(&vendor, "shoptet", &shop).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(error_code(&body), "not_installed");
    }
    assert_eq!(
        broker.double.total_calls(),
        0,
        "no upstream call for a retired shop"
    );

    broker.install_shoptet(eshop_id, secrets).await;
    // The control: a live shop without a cached token needs its secret.
    let (status, body) = vend(&broker.vendor_without_secrets().await, "shoptet", &shop).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
    );
    assert_eq!(
        broker.secret_state("shoptet", &shop).await,
        SecretState::Active
    );
    let stored = broker.secret_value("shoptet", &shop).await;
    assert_eq!(
        stored["oauth_access_token"].as_str(),
        broker.double.oauth_access_token(eshop_id).as_deref(),
        "the secret holds the new OAuth token"
    );
    let (status, body) = vend(&vendor, "shoptet", &shop).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    secrets
        .values
        .push(body["access_token"].as_str().unwrap().to_owned());
    assert_eq!(
        broker.registry_status("shoptet", &shop).await.as_deref(),
        Some("active")
    );
}

/// Suspend → refused without upstream calls → approve → vends again.
pub async fn suspend_then_approve(broker: &Lifecycle, eshop_id: u64, secrets: &mut Secrets) {
    let shop = eshop_id.to_string();
    broker.install_shoptet(eshop_id, secrets).await;
    broker
        .double
        .set_installation_state(eshop_id, InstallationState::Suspended);
    let (status, body) = broker
        .webhook(&event(eshop_id, "addon:suspend", SystemTime::now()))
        .await;
    secrets.saw(status, &body);
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::OK, &Value::from("processed"))
    );
    assert_eq!(
        broker.registry_status("shoptet", &shop).await.as_deref(),
        Some("suspended")
    );

    broker.double.reset_counters();
    let vendor = broker.vendor().await;
    for _ in 0..3 {
        let (status, body) = vend(&vendor, "shoptet", &shop).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(error_code(&body), "addon_suspended");
    }
    assert_eq!(
        broker.double.total_calls(),
        0,
        "no upstream call while suspended"
    );

    broker
        .double
        .set_installation_state(eshop_id, InstallationState::Active);
    let (status, body) = broker
        .webhook(&event(eshop_id, "addon:approve", SystemTime::now()))
        .await;
    secrets.saw(status, &body);
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::OK, &Value::from("processed"))
    );
    let (status, body) = vend(&vendor, "shoptet", &shop).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    secrets
        .values
        .push(body["access_token"].as_str().unwrap().to_owned());
    assert_eq!(
        getaccesstoken_calls(broker),
        1,
        "the approve's confirming token is the one vended"
    );
}

/// A Shoprenter app install through the signed redirect, then uninstall.
pub async fn shoprenter_app_install_then_uninstall(broker: &Lifecycle, secrets: &mut Secrets) {
    secrets.values.push(SHOPRENTER_CLIENT_SECRET.to_owned());
    broker.double.reset_counters();
    let response = broker
        .shoprenter_redirect("install", APP_SHOP, unix_now(), "", None, secrets)
        .await;
    assert!(
        matches!(response.status(), StatusCode::FOUND | StatusCode::OK),
        "{}",
        response.status()
    );
    assert_eq!(
        broker.double.calls_to(Endpoint::ShoprenterToken),
        1,
        "one JWT"
    );
    let vendor = broker.vendor().await;
    let (status, body) = vend(&vendor, "shoprenter", APP_SHOP).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    secrets
        .values
        .push(body["access_token"].as_str().unwrap().to_owned());
    assert_eq!(
        broker.double.calls_to(Endpoint::ShoprenterToken),
        1,
        "the install's JWT is the one vended, not a second"
    );

    // Signed a second after the install: a redirect signed no later than
    // the last one acted on for the shop is not acted on.
    let response = broker
        .shoprenter_redirect("uninstall", APP_SHOP, unix_now() + 1, "", None, secrets)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    broker.double.reset_counters();
    let (status, body) = vend(&broker.vendor().await, "shoprenter", APP_SHOP).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(error_code(&body), "not_installed");
    assert_eq!(broker.double.total_calls(), 0);
}

pub fn wait_for(duration: Duration) -> impl std::future::Future<Output = ()> {
    tokio::time::sleep(duration)
}
