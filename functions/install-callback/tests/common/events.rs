//! The lifecycle events' path on the lifecycle world: its registry's
//! stream, a bus with a subscriber's queue, and publishers (the real
//! handler) between them, for the events tests and the log scan.

use std::sync::Arc;
use std::time::Duration;

use event_publisher::Publisher;
use event_publisher::batch::Batch;
use serde_json::Value;
use test_support::CapturedLogs;
use test_support::events::{BusTap, Pumped, RegistryStream};
use tokio::sync::Mutex;

use super::lifecycle::{Lifecycle, Setup};

/// A lifecycle broker (signed webhooks), its registry's stream, a bus with
/// a subscriber's queue, and the publisher between them.
pub struct Pipeline {
    pub broker: Lifecycle,
    pub stream: Mutex<RegistryStream>,
    pub tap: BusTap,
    pub publisher: Publisher,
    /// The publisher's metric lines.
    pub metrics: CapturedLogs,
}

impl Pipeline {
    pub async fn start() -> Self {
        let broker = Lifecycle::start(Setup {
            webhook_key: true,
            ..Setup::default()
        })
        .await;
        let stream = RegistryStream::open(&broker.aws, &broker.registry_table).await;
        let tap = BusTap::create(&broker.aws).await;
        let (publisher, metrics) = publisher(&broker.aws, &tap.bus);
        Self {
            broker,
            stream: Mutex::new(stream),
            tap,
            publisher,
            metrics,
        }
    }

    /// What the event source mapping does between two invocations.
    pub async fn pump_with(&self, publisher: &Publisher) -> Pumped {
        self.stream
            .lock()
            .await
            .pump(25, |records| async move {
                let batch: Batch = serde_json::from_value(records).expect("Lambda's stream batch");
                serde_json::to_value(publisher.handle(batch).await).unwrap()
            })
            .await
    }

    pub async fn pump(&self) -> Pumped {
        self.pump_with(&self.publisher).await
    }

    /// The details that reached the subscriber's queue since last asked.
    pub async fn delivered(&self) -> Vec<Value> {
        let envelopes = self.tap.drain().await;
        for envelope in &envelopes {
            assert_eq!(envelope["source"], "shop-token-broker");
            let kind = envelope["detail"]["kind"].as_str().unwrap().to_owned();
            let expected = broker_domain::events::EventKind::ALL
                .into_iter()
                .find(|k| k.as_str() == kind)
                .unwrap()
                .detail_type();
            assert_eq!(envelope["detail-type"], expected);
        }
        envelopes.into_iter().map(|e| e["detail"].clone()).collect()
    }

    /// Pumps and reads the queue.
    pub async fn published(&self) -> Vec<Value> {
        let pumped = self.pump().await;
        assert!(!pumped.stuck, "the publisher reported a failure");
        self.delivered().await
    }
}

pub fn publisher(aws: &aws_config::SdkConfig, bus: &str) -> (Publisher, CapturedLogs) {
    use broker_runtime::metrics::{Metrics, Service};
    let out = CapturedLogs::default();
    let metrics = Metrics::new(Service::EventPublisher, "BrokerTest", out.clone())
        .with_flush_interval(Duration::ZERO);
    let publisher = Publisher::new(
        bus,
        aws_sdk_eventbridge::Client::new(aws),
        None,
        Arc::new(metrics),
    );
    (publisher, out)
}

/// A publisher whose EventBridge is at `endpoint` (refusing, or hanging),
/// with its metric lines.
pub async fn publisher_at(endpoint: &str, bus: &str) -> (Publisher, CapturedLogs) {
    let aws = test_support::sdk_config_for_endpoint(endpoint).await;
    publisher(&aws, bus)
}

/// What the stack's webhook path hands the publisher: the bus's events,
/// queued by a rule (here the tap's queue stands in for WebhookQueue).
pub fn queued(envelopes: &[Value]) -> Batch {
    let records: Vec<Value> = envelopes
        .iter()
        .enumerate()
        .map(|(n, envelope)| {
            serde_json::json!({
                "messageId": format!("message-{n}"), "receiptHandle": "r",
                "eventSource": "aws:sqs", "body": envelope.to_string()
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records })).unwrap()
}

pub fn webhook_publisher(
    bus: &str,
    aws: &aws_config::SdkConfig,
    url: &str,
    secret: &str,
) -> Publisher {
    use broker_domain::lazy_secret::LazySecret;
    use broker_domain::secret::EventSigningSecret;
    use broker_events::{EndpointUrl, WebhookSender};
    let webhook = event_publisher::Webhook {
        sender: WebhookSender::new(
            WebhookSender::client(reqwest::Client::builder()),
            EndpointUrl::parse(url).unwrap(),
        ),
        secret: LazySecret::known(EventSigningSecret::new(secret)),
    };
    let metrics = broker_runtime::metrics::Metrics::new(
        broker_runtime::metrics::Service::EventPublisher,
        "BrokerTest",
        std::io::sink(),
    );
    Publisher::new(
        bus,
        aws_sdk_eventbridge::Client::new(aws),
        Some(webhook),
        Arc::new(metrics),
    )
}
