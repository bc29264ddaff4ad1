//! Shoptet e-shop webhooks end to end on moto and the platform double: the
//! install callback (its install route and the receiving route, served on
//! a loopback port the double delivers to), the registry's stream and the
//! publisher, a bus with a subscriber's queue, and the `shoptet-webhooks`
//! worker fed the bus's install events as its queue would feed it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use broker_aws::storage::aws_installations::AwsInstallationStore;
use broker_domain::ids::ShoptetEshopId;
use broker_domain::secret::ExposeSecret;
use broker_domain::storage::InstallationStore;
use event_publisher::Publisher;
use event_publisher::batch::Batch;
use install_callback::{AwsInstallCallback, AwsInstallConfig, build_on_aws};
use lambda_http::Body;
use platform_double::DoubleConfig;
use serde_json::{Value, json};
use shoptet_webhooks::{AwsWebhooksConfig, AwsWorker, Invocation};
use test_support::events::{BusTap, RegistryStream};
use test_support::front_door::{Caller, FrontDoor, event};
use test_support::{CapturedLogs, TestWorld, into_json};
use tokio::sync::Mutex;

use super::{REDIRECT_URI, with_captured_metrics};

/// The key of Shoptet's add-on system webhooks (`addon:*`).
pub const SYSTEM_WEBHOOK_KEY: &str = "system-webhook-key-7c1e";

/// What the add-on configured.
pub const EVENTS: &str = "order:create,job:finished";

/// Which installation store the stack keeps installations (and keys) in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    SecretsManager,
    DynamoDb,
}

pub struct EshopPipeline {
    pub world: TestWorld,
    pub install: Arc<AwsInstallCallback>,
    /// Its configuration, for a cold instance.
    config: AwsInstallConfig,
    /// The install callback's metric lines.
    pub metrics: CapturedLogs,
    pub worker: AwsWorker,
    /// The worker's metric lines.
    pub worker_metrics: CapturedLogs,
    /// The stack's installation store, to look at the keys.
    pub store: AwsInstallationStore,
    pub route: Route,
    pub tap: BusTap,
    /// The worker's own queue (the reconciliation's fan-out).
    work_queue: String,
    stream: Mutex<RegistryStream>,
    publisher: Publisher,
    /// Envelopes drained from the subscriber's queue, not yet taken.
    seen: Mutex<Vec<Value>>,
}

impl std::ops::Deref for EshopPipeline {
    type Target = TestWorld;

    fn deref(&self) -> &TestWorld {
        &self.world
    }
}

/// The receiving route on a loopback port, as API Gateway would pass a
/// request to the install callback; `down` answers 503 without it.
pub struct Route {
    pub url: String,
    up: Arc<AtomicBool>,
    lost_answers: Arc<AtomicUsize>,
}

impl Route {
    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }

    /// The next `n` requests reach the handler, but the platform never
    /// sees its answer (a timeout on its side, a dropped connection): it
    /// gets a 504 instead, and retries.
    pub fn lose_answers(&self, n: usize) {
        self.lost_answers.store(n, Ordering::SeqCst);
    }
}

type Shared = (Arc<AwsInstallCallback>, Arc<AtomicBool>, Arc<AtomicUsize>);

async fn receive(
    State((handler, up, lost_answers)): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    if !up.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "down".into());
    }
    let text = String::from_utf8(body.to_vec()).unwrap_or_default();
    let mut request = event(
        FrontDoor::HttpApi,
        Caller::Anonymous,
        "POST",
        "/shoptet/eshop-webhook",
        &text,
    );
    for (name, value) in &headers {
        request.headers_mut().insert(name.clone(), value.clone());
    }
    let response = handler.handle(request).await;
    let lost = lost_answers
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if lost {
        return (StatusCode::GATEWAY_TIMEOUT, "lost".into());
    }
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    let body = match response.into_body() {
        Body::Text(text) => text,
        Body::Binary(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Body::Empty => String::new(),
        _ => String::new(),
    };
    (status, body)
}

async fn serve(handler: Arc<AwsInstallCallback>) -> Route {
    let up = Arc::new(AtomicBool::new(true));
    let lost_answers = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new()
        .route("/shoptet/eshop-webhook", axum::routing::post(receive))
        .with_state((handler, up.clone(), lost_answers.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/shoptet/eshop-webhook",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Route {
        url,
        up,
        lost_answers,
    }
}

impl EshopPipeline {
    pub async fn start(kind: StoreKind) -> Self {
        let world = TestWorld::start(DoubleConfig {
            // Shoptet's 15 minutes between attempts, in milliseconds.
            webhook_retry_gap: Duration::from_millis(30),
            ..DoubleConfig::default()
        })
        .await;
        let tap = BusTap::create(&world.aws).await;
        let mut env = world.env();
        if kind == StoreKind::DynamoDb {
            let table = test_support::unique_name("installations");
            test_support::create_installation_table(&world.aws, &table).await;
            let key = test_support::create_kms_key(&world.aws).await;
            env.insert("INSTALLATION_STORE", "DynamoDB".into());
            env.insert("INSTALLATION_TABLE", table);
            env.insert("INSTALLATION_KEY_ID", key);
        }
        let addon_secret = world
            .create_secret(
                "addon-client-secret",
                &world.double.config().shoptet_client_secret.clone().unwrap(),
            )
            .await;
        env.insert(
            "SHOPTET_CLIENT_ID",
            world.double.config().shoptet_client_id.clone(),
        );
        env.insert("SHOPTET_CLIENT_SECRET_ID", addon_secret);
        env.insert("SHOPTET_REDIRECT_URI", REDIRECT_URI.to_owned());
        env.insert("EVENT_BUS_NAME", tap.bus.clone());
        // The add-on's system webhooks are signed too (their own key).
        let system_key = world.create_secret("webhook-key", SYSTEM_WEBHOOK_KEY).await;
        env.insert("SHOPTET_WEBHOOK_KEY_SECRET_ID", system_key);
        env.remove("SHOPRENTER_API_URL");
        let read = |env: &std::collections::HashMap<&'static str, String>| {
            let env = env.clone();
            move |name: &str| env.get(name).cloned()
        };
        let config = AwsInstallConfig::from_env(&read(&env)).unwrap();
        let stores = config.stores.clone();
        let (install, metrics) = with_captured_metrics(build_on_aws(config.clone(), &world.aws));
        let install = Arc::new(install);
        let route = serve(install.clone()).await;

        let queue = aws_sdk_sqs::Client::new(&world.aws)
            .create_queue()
            .queue_name(test_support::unique_name("webhook-work"))
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        env.insert("SHOPTET_WEBHOOK_EVENTS", EVENTS.into());
        env.insert("SHOPTET_WEBHOOK_URL", route.url.clone());
        env.insert("WEBHOOK_QUEUE_URL", queue.clone());
        let worker_config = AwsWebhooksConfig::from_env(&read(&env)).unwrap();
        let worker_metrics = CapturedLogs::default();
        let worker = shoptet_webhooks::build_with_metrics(
            worker_config,
            &world.aws,
            Arc::new(
                broker_runtime::metrics::Metrics::new(
                    broker_runtime::metrics::Service::ShoptetWebhooks,
                    "BrokerTest",
                    worker_metrics.clone(),
                )
                .with_flush_interval(Duration::ZERO),
            ),
        );
        let stream = RegistryStream::open(&world.aws, &world.registry_table).await;
        let (publisher, _) = super::events::publisher(&world.aws, &tap.bus);
        let store = stores.open(&world.aws).installations;
        Self {
            world,
            install,
            config,
            metrics,
            worker,
            worker_metrics,
            store,
            route,
            tap,
            work_queue: queue,
            stream: Mutex::new(stream),
            publisher,
            seen: Mutex::default(),
        }
    }

    /// A delivery to a new install callback instance (a cold start: no key
    /// in its memory); its status.
    pub async fn deliver_cold(&self, signature: &str, body: &str) -> u16 {
        let cold = build_on_aws(self.config.clone(), &self.aws);
        let mut request = event(
            FrontDoor::HttpApi,
            Caller::Anonymous,
            "POST",
            "/shoptet/eshop-webhook",
            body,
        );
        request
            .headers_mut()
            .insert("shoptet-webhook-signature", signature.parse().unwrap());
        cold.handle(request).await.status().as_u16()
    }

    pub async fn send(
        &self,
        method: &str,
        path_and_query: &str,
        body: &str,
    ) -> (StatusCode, Value) {
        let request = event(
            FrontDoor::HttpApi,
            Caller::Anonymous,
            method,
            path_and_query,
            body,
        );
        let (status, body) = into_json(self.install.handle(request).await);
        (StatusCode::from_u16(status.as_u16()).unwrap(), body)
    }

    /// The e-shop installs the add-on (its install URL, with a new code).
    pub async fn install_shop(&self, eshop_id: u64) {
        let code = self.double.issue_install_code(eshop_id);
        let (status, body) = self
            .send("GET", &format!("/shoptet/install?code={code}"), "")
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// The e-shop uninstalls: the platform revokes the installation, then
    /// its signed `addon:uninstall` webhook arrives, confirmed upstream.
    pub async fn uninstall_shop(&self, eshop_id: u64) {
        self.double.uninstall(eshop_id);
        let body = json!({
            "eshopId": eshop_id, "event": "addon:uninstall",
            // Now: a token cached before it cannot answer for it.
            "eventCreated": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            "eventInstance": eshop_id.to_string(),
        });
        let body = body.to_string();
        let signature = broker_platforms::shoptet_webhook::sign(
            &broker_domain::secret::WebhookKey::new(SYSTEM_WEBHOOK_KEY),
            body.as_bytes(),
        );
        let mut request = event(
            FrontDoor::HttpApi,
            Caller::Anonymous,
            "POST",
            "/shoptet/webhook",
            &body,
        );
        request
            .headers_mut()
            .insert("shoptet-webhook-signature", signature.parse().unwrap());
        let (status, answer) = into_json(self.install.handle(request).await);
        assert_eq!(status.as_u16(), 200, "{answer}");
    }

    /// What Lambda does between the registry's stream and the bus, and
    /// between the bus and the worker's queue: the committed changes are
    /// published, and the install and import events handed to the worker.
    /// The worker's answer.
    pub async fn register_from_bus(&self) -> Value {
        let publisher = &self.publisher;
        let pumped = self
            .stream
            .lock()
            .await
            .pump(25, |records| async move {
                let batch: Batch = serde_json::from_value(records).unwrap();
                serde_json::to_value(publisher.handle(batch).await).unwrap()
            })
            .await;
        assert!(!pumped.stuck, "the publisher published");
        let installs = self
            .take(&["Installation Installed", "Installation Imported"])
            .await;
        self.work(&installs).await
    }

    /// Hands `envelopes` to the worker as its queue's batch.
    pub async fn work(&self, envelopes: &[Value]) -> Value {
        let records: Vec<Value> = envelopes
            .iter()
            .enumerate()
            .map(|(n, envelope)| {
                let body = match envelope {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                json!({
                    "messageId": format!("m-{n}"), "receiptHandle": "r", "eventSource": "aws:sqs",
                    "body": body, "attributes": {"ApproximateReceiveCount": "1"}
                })
            })
            .collect();
        let invocation: Invocation = serde_json::from_value(json!({ "Records": records })).unwrap();
        self.worker.handle(invocation).await.unwrap()
    }

    /// What the worker queued for itself (the reconciliation's fan-out),
    /// handed back to it as Lambda would, until nothing is left; the
    /// worker's answers.
    pub async fn work_off_queue(&self) -> Vec<Value> {
        let sqs = aws_sdk_sqs::Client::new(&self.aws);
        let mut answers = Vec::new();
        loop {
            let received = sqs
                .receive_message()
                .queue_url(&self.work_queue)
                .max_number_of_messages(10)
                .send()
                .await
                .unwrap();
            let messages = received.messages.unwrap_or_default();
            if messages.is_empty() {
                return answers;
            }
            let bodies: Vec<Value> = messages
                .iter()
                .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
                .collect();
            answers.push(self.work(&bodies).await);
            for message in &messages {
                sqs.delete_message()
                    .queue_url(&self.work_queue)
                    .receipt_handle(message.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }

    /// A direct invocation of the worker (the schedule's, an operator's).
    pub async fn invoke(&self, command: Value) -> Value {
        self.worker
            .handle(serde_json::from_value(command).unwrap())
            .await
            .unwrap()
    }

    /// The envelopes of these detail-types queued for the subscriber so
    /// far (taken: the next call returns only newer ones).
    pub async fn take(&self, detail_types: &[&str]) -> Vec<Value> {
        let mut seen = self.seen.lock().await;
        seen.extend(self.tap.drain().await);
        let (taken, kept) = std::mem::take(&mut *seen)
            .into_iter()
            .partition(|e| detail_types.contains(&e["detail-type"].as_str().unwrap_or("")));
        *seen = kept;
        taken
    }

    /// Every envelope queued so far (taken).
    pub async fn take_all(&self) -> Vec<Value> {
        let mut seen = self.seen.lock().await;
        seen.extend(self.tap.drain().await);
        std::mem::take(&mut *seen)
    }

    /// The `Shoptet Webhook` events' details queued so far (taken).
    pub async fn forwarded(&self) -> Vec<Value> {
        self.take(&["Shoptet Webhook"])
            .await
            .into_iter()
            .map(|e| e["detail"].clone())
            .collect()
    }

    /// The key the installation store keeps for the e-shop.
    pub async fn stored_key(&self, eshop_id: u64) -> Option<String> {
        self.store
            .load_signature_key(ShoptetEshopId::new(eshop_id).unwrap())
            .await
            .unwrap()
            .map(|key| key.expose_secret().to_owned())
    }
}
