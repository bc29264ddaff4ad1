//! The lifecycle events' delivery. The registry table's stream is the
//! outbox: every change the registry commits with an event reaches this
//! function as a stream record, and is published to the EventBridge bus
//! before the shard moves on. A publish that fails (refused, an error, no
//! answer in time) reports the first unpublished record, and Lambda retries
//! the shard from it: nothing committed is lost, nothing uncommitted is
//! ever seen, and a retry may publish an event twice (same `id`).
//!
//! With an endpoint configured, a rule on the bus queues every event for it
//! and this function POSTs each one, signed (`broker_events`); a refused
//! delivery stays on the queue and is retried.

pub mod batch;
pub mod config;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use broker_domain::events::InstallationEvent;
use broker_domain::lazy_secret::LazySecret;
use broker_domain::secret::EventSigningSecret;
use broker_events::{BusEntry, WebhookSender};
use broker_runtime::metrics::{Dimensions, Metric, Metrics};

use crate::batch::{
    Batch, BatchResponse, Change, ChangeRecord, ItemFailure, QueuedDelivery, Record,
};

pub use config::PublisherConfig;

/// EventBridge takes at most this many entries per `PutEvents`.
const MAX_ENTRIES: usize = 10;

/// The endpoint's half: where, and with what it signs.
pub struct Webhook {
    pub sender: WebhookSender,
    pub secret: LazySecret<EventSigningSecret>,
}

pub struct Publisher {
    bus: String,
    events: aws_sdk_eventbridge::Client,
    webhook: Option<Webhook>,
    metrics: Arc<Metrics>,
}

impl Publisher {
    pub fn new(
        bus: impl Into<String>,
        events: aws_sdk_eventbridge::Client,
        webhook: Option<Webhook>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            bus: bus.into(),
            events,
            webhook,
            metrics,
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// One invocation: stream records are published in order, queued
    /// deliveries each on their own. Metrics are written before answering
    /// (an instance may be frozen right after).
    pub async fn handle(&self, batch: Batch) -> BatchResponse {
        let mut changes = Vec::new();
        let mut deliveries = Vec::new();
        for record in &batch.records {
            match record {
                Record::Change(change) => changes.push(change),
                Record::Delivery(delivery) => deliveries.push(delivery),
            }
        }
        let mut failures = self.publish(&changes).await;
        failures.extend(self.deliver(&deliveries).await);
        self.metrics.flush();
        BatchResponse { failures }
    }

    async fn publish(&self, changes: &[&ChangeRecord]) -> Vec<ItemFailure> {
        if let Some(oldest) = changes
            .iter()
            .filter_map(|c| c.dynamodb.created)
            .reduce(f64::min)
        {
            let age = now_seconds() - oldest;
            self.metrics.duration(
                Metric::OldestChangeAge,
                Dimensions::default(),
                Duration::from_secs_f64(age.max(0.0)),
            );
            // Written now, before the publish: an invocation that then
            // hangs, times out or panics still reports how old its changes
            // are, so the lag alarm sees a publisher that never finishes.
            self.metrics.flush();
        }
        let mut pending: Vec<(&str, InstallationEvent)> = Vec::new();
        for record in changes {
            match record.change() {
                Change::Event(event) => {
                    pending.push((record.dynamodb.sequence_number.as_str(), *event))
                }
                Change::Quiet => {}
                // Retrying cannot make it readable; holding the shard for it
                // would stop every later event. Logged with its position.
                Change::Unreadable => {
                    tracing::error!(sequence_number = %record.dynamodb.sequence_number, "a registry change's event does not read back: skipped")
                }
            }
        }
        for chunk in pending.chunks(MAX_ENTRIES) {
            let published = self.put(chunk).await;
            self.metrics.add(
                Metric::EventsPublished,
                Dimensions::default(),
                published as u64,
            );
            if published < chunk.len() {
                self.metrics
                    .event(Metric::PublishFailures, Dimensions::default());
                let (first_unpublished, _) = chunk[published];
                return vec![ItemFailure {
                    item_identifier: first_unpublished.to_owned(),
                }];
            }
        }
        pending.iter().for_each(|(_, event)| {
            tracing::info!(event = event.kind.as_str(), platform = %event.platform, shop = %event.shop, sequence = event.sequence, id = %event.id, "event published");
        });
        Vec::new()
    }

    /// How many of `chunk`, from its start, EventBridge accepted.
    async fn put(&self, chunk: &[(&str, InstallationEvent)]) -> usize {
        let entries = chunk
            .iter()
            .map(|(_, event)| {
                let entry = BusEntry::of(event);
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus)
                    .source(entry.source)
                    .detail_type(entry.detail_type)
                    .detail(entry.detail)
                    .build()
            })
            .collect::<Vec<_>>();
        match self
            .events
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(output) => {
                let first_failed = output
                    .entries()
                    .iter()
                    .position(|entry| entry.error_code().is_some());
                if let Some(at) = first_failed {
                    let code = output.entries()[at].error_code().unwrap_or_default();
                    tracing::warn!(
                        code,
                        "EventBridge refused an event; the batch is retried from it"
                    );
                }
                first_failed.unwrap_or(chunk.len())
            }
            Err(error) => {
                let error = aws_sdk_eventbridge::error::DisplayErrorContext(&error);
                tracing::warn!(%error, "publishing to EventBridge failed; the batch is retried");
                0
            }
        }
    }

    async fn deliver(&self, deliveries: &[&QueuedDelivery]) -> Vec<ItemFailure> {
        if deliveries.is_empty() {
            return Vec::new();
        }
        let retry_all = || {
            deliveries
                .iter()
                .map(|d| ItemFailure {
                    item_identifier: d.message_id.clone(),
                })
                .collect()
        };
        let Some(webhook) = &self.webhook else {
            tracing::error!("queued deliveries but no endpoint is configured (EVENT_WEBHOOK_URL)");
            return retry_all();
        };
        let secret = match webhook.secret.get().await {
            Ok(Some(secret)) => secret,
            Ok(None) | Err(_) => {
                tracing::error!("the events signing secret is unavailable; deliveries are retried");
                self.metrics.add(
                    Metric::WebhookFailures,
                    Dimensions::default(),
                    deliveries.len() as u64,
                );
                return retry_all();
            }
        };
        // At once: one slow endpoint answer must not hold the others (ten
        // in a row could outlast the invocation).
        let outcomes = futures_util::future::join_all(
            deliveries
                .iter()
                .map(|delivery| self.deliver_one(&webhook.sender, secret, delivery)),
        )
        .await;
        deliveries
            .iter()
            .zip(outcomes)
            .filter(|(_, delivered)| !delivered)
            .map(|(delivery, _)| ItemFailure {
                item_identifier: delivery.message_id.clone(),
            })
            .collect()
    }

    /// Whether the message is done with (delivered, or not ours to retry).
    async fn deliver_one(
        &self,
        sender: &WebhookSender,
        secret: &EventSigningSecret,
        delivery: &QueuedDelivery,
    ) -> bool {
        let Some(event) = delivery.event() else {
            // Not one of ours (a rule edited by hand): retrying won't help.
            tracing::error!(message_id = %delivery.message_id, "a queued message is not a broker event: dropped");
            return true;
        };
        match sender.deliver_body(secret, &event.id, event.body).await {
            Ok(()) => {
                self.metrics
                    .count(Metric::WebhookDeliveries, Dimensions::default());
                tracing::info!(event = %event.detail_type, id = %event.id, "event delivered to the endpoint");
                true
            }
            Err(error) => {
                self.metrics
                    .count(Metric::WebhookFailures, Dimensions::default());
                tracing::warn!(%error, id = %event.id, "the endpoint did not take the event; retried");
                false
            }
        }
    }
}

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// EventBridge answers `PutEvents` in tens of milliseconds; one that does
/// not answer in this long is retried by Lambda from the same record,
/// rather than holding the invocation to its timeout.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

/// The publisher on AWS: clients built once, the signing secret read from
/// Secrets Manager by the first delivery that needs it.
pub fn build_on_aws(config: PublisherConfig, aws: &aws_config::SdkConfig) -> Publisher {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .operation_timeout(PUBLISH_TIMEOUT)
        .build();
    let events = aws_sdk_eventbridge::Client::from_conf(
        aws_sdk_eventbridge::config::Builder::from(aws)
            .timeout_config(timeouts)
            .build(),
    );
    let webhook = config.webhook.map(|webhook| {
        let secrets = aws_sdk_secretsmanager::Client::new(aws);
        let secret = broker_aws::secrets::on_first_use(
            &secrets,
            config::SECRET_VARIABLE,
            Some(webhook.secret_id),
            |secret| {
                use broker_domain::secret::ExposeSecret;
                EventSigningSecret::new(secret.expose_secret())
            },
        );
        let client = WebhookSender::client(
            reqwest::Client::builder()
                .tls_backend_preconfigured((*broker_runtime::tls::client_config()).clone()),
        );
        Webhook {
            sender: WebhookSender::new(client, webhook.url),
            secret,
        }
    });
    let metrics = Arc::new(Metrics::to_stdout(
        broker_runtime::metrics::Service::EventPublisher,
        config.namespace,
    ));
    Publisher::new(config.bus, events, webhook, metrics)
}
