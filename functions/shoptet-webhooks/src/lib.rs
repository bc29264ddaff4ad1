//! The `shoptet-webhooks` function: registers the configured e-shop
//! webhooks when a Shoptet installation is installed or imported (the
//! bus's lifecycle events, queued), reconciles every installation on a
//! schedule (fanned out through the same queue), and re-registers a page
//! of installations when an operator invokes it. The work itself is
//! `broker-shoptet-webhooks`'; this crate reads the invocations.

pub mod config;

use std::sync::Arc;

use broker_aws::storage::aws_installations::AwsInstallationStore;
use broker_aws::storage::dynamodb::DynamoTokenCache;
use broker_aws::storage::dynamodb_registry::DynamoRegistry;
use broker_domain::bus::EventBus;
use broker_domain::events::InstallationEvent;
use broker_domain::ids::ShoptetEshopId;
use broker_domain::storage::{DeliveryLog, InstallationRegistry, InstallationStore, TokenCache};
use broker_events::eventbridge::EventBridgeBus;
use broker_platforms::shoptet::{ShoptetClient, ShoptetConfig};
use broker_runtime::metrics::{Metrics, Service};
use broker_shoptet_webhooks::{
    EshopWebhooks, Reconciler, Registrar, active_shops, for_each_concurrently, registering_eshop,
};
use broker_vending::TokenVendor;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use token_vendor::VendHandler;

pub use config::{AwsWebhooksConfig, WebhooksConfig};

/// Installations named in one reconciliation message.
pub const SHOPS_PER_MESSAGE: usize = 25;
/// Registry pages one fan-out step lists before it hands the rest on.
const PAGES_PER_STEP: usize = 10;
/// A registration is tried this many times (the queue's receives) before
/// its failure is announced as final; the queue's redrive policy sends it
/// to the dead-letter queue then.
pub const MAX_RECEIVES: u32 = 10;

/// One invocation: a batch from the queue, or a direct one (the schedule's,
/// an operator's).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Invocation {
    Batch {
        #[serde(rename = "Records")]
        records: Vec<QueueRecord>,
    },
    Direct(Command),
}

/// What a direct invocation (or a queued step) asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Fan the reconciliation out over every active installation, from
    /// `after` on (the schedule sends `{"reconcile_all": {}}`).
    ReconcileAll {
        #[serde(default)]
        after: Option<String>,
    },
    /// Reconcile these installations.
    Reconcile(Vec<String>),
    /// Register one page of installations (an operator's re-registration).
    Reregister {
        #[serde(default)]
        after: Option<String>,
        #[serde(default = "default_page")]
        limit: usize,
        #[serde(default)]
        dry_run: bool,
    },
}

fn default_page() -> usize {
    50
}

#[derive(Debug, Deserialize)]
pub struct QueueRecord {
    #[serde(rename = "messageId")]
    pub message_id: String,
    pub body: String,
    #[serde(default)]
    pub attributes: RecordAttributes,
}

#[derive(Debug, Default, Deserialize)]
pub struct RecordAttributes {
    #[serde(rename = "ApproximateReceiveCount", default)]
    pub receive_count: Option<String>,
}

impl QueueRecord {
    fn receive_count(&self) -> u32 {
        self.attributes
            .receive_count
            .as_deref()
            .and_then(|count| count.parse().ok())
            .unwrap_or(1)
    }
}

/// Where fan-out messages go: the function's own queue.
pub trait Queue: Send + Sync {
    fn send(
        &self,
        bodies: Vec<String>,
    ) -> impl std::future::Future<Output = Result<(), String>> + Send;
}

pub struct SqsQueue {
    pub client: aws_sdk_sqs::Client,
    pub url: String,
}

impl Queue for SqsQueue {
    async fn send(&self, bodies: Vec<String>) -> Result<(), String> {
        for chunk in bodies.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(index, body)| {
                    aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                        .id(index.to_string())
                        .message_body(body)
                        .build()
                        .expect("id and body are set")
                })
                .collect::<Vec<_>>();
            let output = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|error| aws_sdk_sqs::error::DisplayErrorContext(&error).to_string())?;
            if !output.failed().is_empty() {
                return Err(format!("{} messages refused", output.failed().len()));
            }
        }
        Ok(())
    }
}

pub struct Worker<S, C, R, Q> {
    vendor: VendHandler<S, C, R>,
    /// `None`: no events configured; every invocation is a no-op.
    webhooks: Option<EshopWebhooks>,
    queue: Q,
}

pub type AwsWorker = Worker<AwsInstallationStore, DynamoTokenCache, DynamoRegistry, SqsQueue>;

impl<S, C, R, Q> Worker<S, C, R, Q>
where
    S: InstallationStore,
    C: TokenCache + DeliveryLog,
    R: InstallationRegistry,
    Q: Queue,
{
    /// `vendor` mints the installations' tokens (its metrics are the
    /// worker's); `api` reaches Shoptet's API.
    pub fn new(
        vendor: VendHandler<S, C, R>,
        config: WebhooksConfig,
        api: ShoptetClient,
        reconciler_api: ShoptetClient,
        bus: Arc<dyn EventBus>,
        queue: Q,
    ) -> Self {
        let metrics = vendor.metrics().clone();
        let webhooks = config.subscription.map(|subscription| {
            EshopWebhooks::new(
                Registrar::new(subscription, config.url, api),
                Reconciler::new(reconciler_api),
                bus,
                metrics,
            )
        });
        Self {
            vendor,
            webhooks,
            queue,
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        self.vendor.metrics()
    }

    fn core(&self) -> &TokenVendor<S, C, R> {
        self.vendor.vendor()
    }

    /// The invocation's answer. A direct invocation that fails is a
    /// function error (`Err`): the schedule's asynchronous invocation is
    /// retried by Lambda and counted in its `Errors`, and the operator's
    /// command shows it; a batch reports its failed records instead.
    pub async fn handle(&self, invocation: Invocation) -> Result<Value, String> {
        let Some(webhooks) = &self.webhooks else {
            tracing::info!("no e-shop webhook events are configured: nothing to do");
            return Ok(match invocation {
                Invocation::Batch { .. } => json!({ "batchItemFailures": [] }),
                Invocation::Direct(_) => json!({ "configured": false }),
            });
        };
        let answer = match invocation {
            Invocation::Batch { records } => {
                let failures = for_each_concurrently(records, |record| async move {
                    (!self.handle_record(webhooks, &record).await).then_some(record.message_id)
                })
                .await;
                let failures: Vec<Value> = failures
                    .into_iter()
                    .flatten()
                    .map(|id| json!({ "itemIdentifier": id }))
                    .collect();
                Ok(json!({ "batchItemFailures": failures }))
            }
            Invocation::Direct(command) => self.run(webhooks, command).await,
        };
        self.metrics().flush();
        if let Err(error) = &answer {
            tracing::error!(%error, "the invocation failed");
        }
        answer
    }

    /// Whether the record is done with (a failure worth retrying: `false`).
    async fn handle_record(&self, webhooks: &EshopWebhooks, record: &QueueRecord) -> bool {
        let Ok(body) = serde_json::from_str::<Value>(&record.body) else {
            tracing::error!(message_id = %record.message_id, "a queued message is not JSON: dropped");
            return true;
        };
        if let Some(detail) = body.get("detail") {
            let Ok(event) = serde_json::from_value::<InstallationEvent>(detail.clone()) else {
                tracing::error!(message_id = %record.message_id, "a queued event is not a lifecycle event: dropped");
                return true;
            };
            return self
                .on_lifecycle(webhooks, &event, record.receive_count())
                .await;
        }
        match serde_json::from_value::<Command>(body) {
            Ok(command) => self.run(webhooks, command).await.is_ok(),
            Err(_) => {
                tracing::error!(message_id = %record.message_id, "a queued message is no command: dropped");
                true
            }
        }
    }

    /// An install, reinstall or import of a Shoptet shop registers its
    /// webhooks (and renews its key); other events concern nothing here.
    async fn on_lifecycle(
        &self,
        webhooks: &EshopWebhooks,
        event: &InstallationEvent,
        receive_count: u32,
    ) -> bool {
        let Some(eshop_id) = registering_eshop(event) else {
            return true;
        };
        let will_retry = receive_count < MAX_RECEIVES;
        match webhooks
            .register_for_event(self.core(), eshop_id, &event.id, will_retry)
            .await
        {
            Ok(_) => true,
            Err(failure) => failure.is_permanent() || !will_retry,
        }
    }

    async fn run(&self, webhooks: &EshopWebhooks, command: Command) -> Result<Value, String> {
        match command {
            Command::ReconcileAll { after } => self.fan_out(after.as_deref()).await,
            Command::Reconcile(shops) => {
                let shops: Vec<ShoptetEshopId> = shops.iter().filter_map(|s| parse_id(s)).collect();
                let results = for_each_concurrently(shops, |eshop_id| async move {
                    webhooks.reconcile(self.core(), eshop_id).await
                })
                .await;
                // Only what may succeed later retries the message (the
                // others' notifications are deduplicated on the retry); an
                // installation gone meanwhile is not retried.
                let retryable = results
                    .iter()
                    .filter(|r| r.as_ref().is_err_and(|failure| !failure.is_permanent()))
                    .count();
                let forwarded: usize = results.iter().flatten().map(|r| r.forwarded).sum();
                if retryable > 0 {
                    return Err(format!("{retryable} installations failed"));
                }
                Ok(json!({ "reconciled": results.len(), "forwarded": forwarded }))
            }
            Command::Reregister {
                after,
                limit,
                dry_run,
            } => {
                let after = match after.as_deref() {
                    None => None,
                    Some(text) => Some(parse_id(text).ok_or("`after` is not an e-shop id")?),
                };
                let page = webhooks
                    .reregister_page(self.core(), after, limit, dry_run)
                    .await
                    .map_err(|error| error.to_string())?;
                Ok(serde_json::to_value(page).expect("a page serializes"))
            }
        }
    }

    /// One step of the fan-out: up to [`PAGES_PER_STEP`] registry pages,
    /// queued [`SHOPS_PER_MESSAGE`] to a message, and the rest handed on as
    /// the next step's message (so no invocation lists 100 000 shops).
    async fn fan_out(&self, after: Option<&str>) -> Result<Value, String> {
        let mut cursor = match after {
            None => None,
            Some(text) => Some(parse_id(text).ok_or("`after` is not an e-shop id")?),
        };
        let mut shops = Vec::new();
        for _ in 0..PAGES_PER_STEP {
            let (page, next) = active_shops(&self.core().stores().registry, cursor, 100)
                .await
                .map_err(|error| error.to_string())?;
            shops.extend(page);
            cursor = next;
            if cursor.is_none() {
                break;
            }
        }
        let mut bodies: Vec<String> = shops
            .chunks(SHOPS_PER_MESSAGE)
            .map(|chunk| {
                let ids: Vec<String> = chunk.iter().map(|id| id.to_string()).collect();
                serde_json::to_string(&Command::Reconcile(ids)).expect("serializes")
            })
            .collect();
        if let Some(next) = cursor {
            bodies.push(
                serde_json::to_string(&Command::ReconcileAll {
                    after: Some(next.to_string()),
                })
                .expect("serializes"),
            );
        }
        let messages = bodies.len();
        self.queue.send(bodies).await?;
        tracing::info!(
            installations = shops.len(),
            messages,
            more = cursor.is_some(),
            "reconciliation fanned out"
        );
        Ok(
            json!({ "queued_installations": shops.len(), "messages": messages, "more": cursor.is_some() }),
        )
    }
}

fn parse_id(text: &str) -> Option<ShoptetEshopId> {
    text.parse().ok()
}

/// The worker on AWS. Makes no network call.
pub fn build_on_aws(config: AwsWebhooksConfig, aws: &aws_config::SdkConfig) -> AwsWorker {
    let metrics = Arc::new(Metrics::to_stdout(
        Service::ShoptetWebhooks,
        config.vendor.vendor.metrics_namespace.clone(),
    ));
    build_with_metrics(config, aws, metrics)
}

/// [`build_on_aws`] with its metric lines going to `metrics` (tests).
pub fn build_with_metrics(
    config: AwsWebhooksConfig,
    aws: &aws_config::SdkConfig,
    metrics: Arc<Metrics>,
) -> AwsWorker {
    let http = config.vendor.vendor.http.build_client();
    let shoptet = |oauth_url| {
        ShoptetClient::new(
            http.clone(),
            ShoptetConfig {
                oauth_url,
                api_url: config.vendor.vendor.shoptet_api_url.clone(),
            },
        )
    };
    let oauth_url = config
        .vendor
        .vendor
        .shoptet_oauth_url
        .clone()
        .unwrap_or_else(|| config.vendor.vendor.shoptet_api_url.clone());
    let api = shoptet(oauth_url.clone());
    let reconciler_api = shoptet(oauth_url);
    let vendor = token_vendor::build_on_aws(config.vendor, aws).with_metrics(metrics);
    let bus = EventBridgeBus::new(
        aws_sdk_eventbridge::Client::new(aws),
        config.event_bus_name,
        std::time::Duration::from_secs(5),
    );
    let queue = SqsQueue {
        client: aws_sdk_sqs::Client::new(aws),
        url: config.queue_url,
    };
    Worker::new(
        vendor,
        config.webhooks,
        api,
        reconciler_api,
        Arc::new(bus),
        queue,
    )
}
