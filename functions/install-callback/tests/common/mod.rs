//! A broker's install callback wired to moto and the platform double, plus
//! the scenarios both the behaviour tests and the log-capture test run.
#![allow(dead_code)]

pub mod eshop;
pub mod events;
pub mod lifecycle;

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use install_callback::{AwsInstallCallback, AwsInstallConfig, build_on_aws};
use lambda_http::http::{Request, StatusCode};
use lambda_http::{Body, RequestExt};
use platform_double::DoubleConfig;
use serde_json::Value;
use test_support::TestWorld;
use test_support::front_door::iam_http_api_context;
pub use test_support::into_json;

/// The handler with its metric lines in a buffer the test reads, instead
/// of stdout; each request writes what it counted.
pub fn with_captured_metrics(
    handler: AwsInstallCallback,
) -> (AwsInstallCallback, test_support::CapturedLogs) {
    use broker_runtime::metrics::{Metrics, Service};
    let out = test_support::CapturedLogs::default();
    let metrics = Metrics::new(Service::InstallCallback, "BrokerTest", out.clone())
        .with_flush_interval(Duration::ZERO);
    (handler.with_metrics(std::sync::Arc::new(metrics)), out)
}

pub const REDIRECT_URI: &str = "https://broker.example/shoptet/install";
pub const SHOPRENTER_SHOP: &str = "demo-shop";
pub const SHOPRENTER_CLIENT_ID: &str = "sr-client-id";
pub const SHOPRENTER_CLIENT_SECRET: &str = "sr-client-secret-0123456789abcdef";

/// The emulator and the double (`TestWorld`, through `Deref`) with an
/// install callback on them.
pub struct Broker {
    pub world: TestWorld,
    pub handler: AwsInstallCallback,
    pub client_secret_id: String,
    /// The handler's metric lines (EMF), written at each request.
    pub metrics: test_support::CapturedLogs,
}

impl std::ops::Deref for Broker {
    type Target = TestWorld;

    fn deref(&self) -> &TestWorld {
        &self.world
    }
}

impl Broker {
    /// A broker on the emulator, with the add-on's client secret in Secrets Manager.
    pub async fn start() -> Self {
        let aws = test_support::emulator_sdk_config().await;
        Self::start_with_store(aws.clone(), aws).await
    }

    /// Like `start`, but the handler talks to `store` (e.g. a closed port)
    /// while the test inspects `aws`.
    pub async fn start_with_store(aws: SdkConfig, store: SdkConfig) -> Self {
        Self::start_inner(aws, store, Some(REDIRECT_URI), REDIRECT_URI, &[]).await
    }

    /// Like `start`, with more (or other) environment variables.
    pub async fn start_with_env(vars: &[(&'static str, &str)]) -> Self {
        let aws = test_support::emulator_sdk_config().await;
        Self::start_inner(aws.clone(), aws, Some(REDIRECT_URI), REDIRECT_URI, vars).await
    }

    /// A broker without `SHOPTET_REDIRECT_URI`, whose Shoptet registered
    /// `registered` as the install URL.
    pub async fn start_deriving_redirect_uri(registered: &str) -> Self {
        let aws = test_support::emulator_sdk_config().await;
        Self::start_inner(aws.clone(), aws, None, registered, &[]).await
    }

    async fn start_inner(
        aws: SdkConfig,
        store: SdkConfig,
        configured_redirect: Option<&str>,
        registered_redirect: &str,
        vars: &[(&'static str, &str)],
    ) -> Self {
        // With an unreachable store the add-on's client secret cannot be read
        // at start-up, so that broker runs as an add-on without one.
        let same_store = aws.endpoint_url() == store.endpoint_url();
        let defaults = DoubleConfig::default();
        let mut world = TestWorld::start(DoubleConfig {
            shoptet_redirect_uri: Some(registered_redirect.to_owned()),
            shoptet_client_secret: defaults
                .shoptet_client_secret
                .clone()
                .filter(|_| same_store),
            ..defaults
        })
        .await;
        world.aws = aws;
        let double = &world.double;
        double.register_shoprenter_client(
            SHOPRENTER_SHOP,
            SHOPRENTER_CLIENT_ID,
            SHOPRENTER_CLIENT_SECRET,
            &["product:read"],
        );
        let client_secret_id = format!("{}addon-client-secret", world.secret_prefix);
        if let Some(client_secret) = double.config().shoptet_client_secret.clone() {
            world
                .create_secret("addon-client-secret", &client_secret)
                .await;
        }
        let mut env = world.env();
        env.insert(
            "SHOPTET_CLIENT_ID",
            double.config().shoptet_client_id.clone(),
        );
        // The install callback reads no Shoprenter API URL.
        env.remove("SHOPRENTER_API_URL");
        if same_store {
            env.insert("SHOPTET_CLIENT_SECRET_ID", client_secret_id.clone());
        }
        if let Some(redirect) = configured_redirect {
            env.insert("SHOPTET_REDIRECT_URI", redirect.to_owned());
        }
        for (name, value) in vars {
            env.insert(name, (*value).to_owned());
        }
        let config = AwsInstallConfig::from_env(&|name: &str| env.get(name).cloned()).unwrap();
        let (handler, metrics) = with_captured_metrics(build_on_aws(config, &store));
        Self {
            world,
            handler,
            client_secret_id,
            metrics,
        }
    }

    pub async fn get(&self, path_and_query: &str) -> (StatusCode, Value) {
        self.send("GET", path_and_query, Body::Empty).await
    }

    pub async fn send(
        &self,
        method: &str,
        path_and_query: &str,
        body: Body,
    ) -> (StatusCode, Value) {
        // Signed by an operator, as API Gateway's IAM authorisation
        // vouches on every route of ours that needs it.
        let request = Request::builder()
            .method(method)
            .uri(format!("https://broker.example{path_and_query}"))
            .body(body)
            .unwrap()
            .with_request_context(iam_http_api_context());
        into_json(self.handler.handle(request).await)
    }

    pub fn secret_name(&self, platform: &str, shop: &str) -> String {
        format!("{}{platform}/{shop}", self.secret_prefix)
    }

    /// The current value of a secret, or None if it does not exist.
    pub async fn secret(&self, platform: &str, shop: &str) -> Option<Value> {
        let output = aws_sdk_secretsmanager::Client::new(&self.aws)
            .get_secret_value()
            .secret_id(self.secret_name(platform, shop))
            .send()
            .await;
        match output {
            Ok(output) => Some(serde_json::from_str(output.secret_string().unwrap()).unwrap()),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                None
            }
            Err(error) => panic!("reading the secret failed: {error:?}"),
        }
    }

    /// Names of every secret under this broker's prefix except the add-on's client secret.
    pub async fn stored_secret_names(&self) -> Vec<String> {
        let output = aws_sdk_secretsmanager::Client::new(&self.aws)
            .list_secrets()
            .max_results(100)
            .send()
            .await
            .unwrap();
        output
            .secret_list()
            .iter()
            .filter_map(|s| s.name())
            .filter(|name| name.starts_with(&self.secret_prefix) && *name != self.client_secret_id)
            .map(str::to_owned)
            .collect()
    }

    pub async fn put_cached_token_item(&self, key: &str) {
        aws_sdk_dynamodb::Client::new(&self.aws)
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(key.into()))
            .item("token", AttributeValue::S("cached-api-token".into()))
            .send()
            .await
            .unwrap();
    }

    pub async fn cached_token_item_exists(&self, key: &str) -> bool {
        aws_sdk_dynamodb::Client::new(&self.aws)
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key.into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item()
            .is_some()
    }
}

pub fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<none>")
}

/// Everything secret a scenario handled, for the leak checks.
#[derive(Default)]
pub struct Secrets {
    pub values: Vec<String>,
    pub bodies: Vec<String>,
}

impl Secrets {
    pub fn saw(&mut self, status: StatusCode, body: &Value) {
        self.bodies.push(format!("{status} {body}"));
    }
}

// ---- scenarios: each asserts its own outcome and records what it handled ----

pub async fn install_then_reinstall(broker: &Broker, eshop_id: u64, secrets: &mut Secrets) {
    let code = broker.double.issue_install_code(eshop_id);
    secrets.values.push(code.clone());
    let (status, body) = broker.get(&format!("/shoptet/install?code={code}")).await;
    secrets.saw(status, &body);
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        serde_json::json!({"status": "installed", "platform": "shoptet", "shop": eshop_id.to_string()})
    );
    secrets
        .values
        .push(broker.double.oauth_access_token(eshop_id).unwrap());

    let code = broker.double.issue_install_code(eshop_id);
    secrets.values.push(code.clone());
    let (status, body) = broker.get(&format!("/shoptet/install?code={code}")).await;
    secrets.saw(status, &body);
    assert_eq!(status, StatusCode::OK, "{body}");
    secrets
        .values
        .push(broker.double.oauth_access_token(eshop_id).unwrap());
}

pub async fn code_used_twice(broker: &Broker, eshop_id: u64, secrets: &mut Secrets) {
    let code = broker.double.issue_install_code(eshop_id);
    secrets.values.push(code.clone());
    let (first, body) = broker.get(&format!("/shoptet/install?code={code}")).await;
    secrets.saw(first, &body);
    assert_eq!(first, StatusCode::OK);
    secrets
        .values
        .push(broker.double.oauth_access_token(eshop_id).unwrap());
    let (second, body) = broker.get(&format!("/shoptet/install?code={code}")).await;
    secrets.saw(second, &body);
    assert_eq!(second, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(error_code(&body), "upstream_rejected");
    assert_eq!(body["error"]["upstream_code"], "invalid_grant");
}

pub async fn malformed_codes(broker: &Broker, secrets: &mut Secrets) {
    let long = "a".repeat(10 * 1024);
    let queries = [
        "/shoptet/install".to_owned(),
        "/shoptet/install?".to_owned(),
        "/shoptet/install?code=".to_owned(),
        format!("/shoptet/install?code={long}"),
        "/shoptet/install?code=abc%01def".to_owned(),
        "/shoptet/install?code=abc%0Adef".to_owned(),
        "/shoptet/install?code=abc%20def".to_owned(),
        "/shoptet/install?code=one&code=two".to_owned(),
    ];
    for query in &queries {
        let (status, body) = broker.get(query).await;
        secrets.saw(status, &body);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(error_code(&body), "invalid_request");
    }
}

pub async fn upstream_faults(broker: &Broker, eshop_id: u64, secrets: &mut Secrets) {
    use platform_double::{Endpoint, Fault};
    let exchange = Some(Endpoint::ShoptetCodeExchange);
    let faults = [
        ("500", Some(Fault::ServerError(500)), Duration::ZERO),
        ("drop", Some(Fault::Drop), Duration::ZERO),
        ("timeout", None, Duration::from_secs(3)),
        ("slower than the budget", None, Duration::from_secs(20)),
    ];
    for (name, fault, latency) in faults {
        if let Some(fault) = fault {
            broker.double.inject(exchange, fault, 1);
        }
        broker.double.set_latency(latency);
        let code = broker.double.issue_install_code(eshop_id);
        secrets.values.push(code.clone());
        let started = std::time::Instant::now();
        let (status, body) = broker.get(&format!("/shoptet/install?code={code}")).await;
        let took = started.elapsed();
        broker.double.set_latency(Duration::ZERO);
        secrets.saw(status, &body);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{name}: {body}");
        assert_eq!(error_code(&body), "upstream_unavailable", "{name}");
        // Shoptet's hard limit, not a performance target.
        assert!(took < Duration::from_secs(5), "{name} took {took:?}");
    }
}

pub async fn shoprenter_credentials(broker: &Broker, secrets: &mut Secrets) {
    secrets.values.push(SHOPRENTER_CLIENT_SECRET.into());
    let wrong_secret = "wrong-secret-abcdef0123456789";
    secrets.values.push(wrong_secret.into());
    let path = format!("/shoprenter/{SHOPRENTER_SHOP}/credentials");

    let body =
        serde_json::json!({"client_id": SHOPRENTER_CLIENT_ID, "client_secret": wrong_secret});
    let (status, body) = broker
        .send("PUT", &path, Body::from(body.to_string()))
        .await;
    secrets.saw(status, &body);
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_code(&body), "invalid_credentials");
    assert_eq!(broker.secret("shoprenter", SHOPRENTER_SHOP).await, None);

    let body = serde_json::json!({"client_id": SHOPRENTER_CLIENT_ID, "client_secret": SHOPRENTER_CLIENT_SECRET});
    let (status, body) = broker
        .send("PUT", &path, Body::from(body.to_string()))
        .await;
    secrets.saw(status, &body);
    assert_eq!(status, StatusCode::CREATED, "{body}");
    if let Some(token) = broker.double.last_shoprenter_token(SHOPRENTER_SHOP) {
        secrets.values.push(token);
    }
    let stored = broker.secret("shoprenter", SHOPRENTER_SHOP).await.unwrap();
    assert_eq!(stored["client_id"], SHOPRENTER_CLIENT_ID);
    assert_eq!(stored["client_secret"], SHOPRENTER_CLIENT_SECRET);
}
