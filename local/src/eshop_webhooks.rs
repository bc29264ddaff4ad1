//! Shoptet e-shop webhooks in local mode, as the `shoptet-webhooks`
//! function and the install callback do them on AWS: forwarded deliveries
//! are printed (`event: <json>`) and, with `--events-url`, delivered signed;
//! an install or import registers the configured events (from the events
//! loop, [`crate::events`]); every installation is reconciled now and then.

use std::sync::Arc;
use std::time::Duration;

use broker_domain::bus::{BusEntry, BusUnavailable, EventBus, Put};
use broker_domain::events::InstallationEvent;
use broker_domain::storage::{DeliveryLog, InstallationRegistry, InstallationStore, TokenCache};
use broker_platforms::shoptet::{ShoptetClient, ShoptetConfig};
use broker_runtime::env::Env;
use broker_runtime::metrics::{Metrics, Service};
use broker_shoptet_webhooks::{
    EshopWebhooks, Reconciler, Registrar, active_shops, registering_eshop,
};
use shoptet_webhooks::WebhooksConfig;
use token_vendor::{VendHandler, VendorConfig};

use crate::events::{Delivery, OnEvent};

/// How often every installation's history is read locally.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(600);

/// The local bus: stdout, and the events endpoint if one is configured.
pub struct LocalBus {
    pub delivery: Option<Arc<Delivery>>,
}

impl EventBus for LocalBus {
    fn put<'a>(&'a self, entry: &'a BusEntry) -> Put<'a> {
        Box::pin(async move {
            println!("event: {}", entry.detail);
            let Some(delivery) = &self.delivery else {
                return Ok(());
            };
            let id = serde_json::from_str::<serde_json::Value>(&entry.detail)
                .ok()
                .and_then(|detail| detail.get("id")?.as_str().map(str::to_owned))
                .unwrap_or_default();
            delivery
                .sender
                .deliver_body(&delivery.secret, &id, entry.detail.clone())
                .await
                .map_err(|error| BusUnavailable(error.to_string()))
        })
    }
}

/// The webhooks' work and the vendor whose tokens it uses.
pub struct LocalWebhooks<S, C, R> {
    pub webhooks: EshopWebhooks,
    pub vendor: VendHandler<S, C, R>,
}

impl<S, C, R> LocalWebhooks<S, C, R>
where
    S: InstallationStore,
    C: TokenCache + DeliveryLog,
    R: InstallationRegistry,
{
    /// `None` when no events are configured (`SHOPTET_WEBHOOK_EVENTS`).
    pub fn from_env(
        env: &impl Env,
        vendor_config: &VendorConfig,
        vendor: VendHandler<S, C, R>,
        bus: Arc<dyn EventBus>,
    ) -> Result<Option<Self>, String> {
        let config = WebhooksConfig::from_env(env).map_err(|e| e.to_string())?;
        let (Some(subscription), Some(oauth_url)) =
            (config.subscription, vendor_config.shoptet_oauth_url.clone())
        else {
            return Ok(None);
        };
        let http = vendor_config.http.build_client();
        let client = || {
            ShoptetClient::new(
                http.clone(),
                ShoptetConfig {
                    oauth_url: oauth_url.clone(),
                    api_url: vendor_config.shoptet_api_url.clone(),
                },
            )
        };
        let metrics = Arc::new(Metrics::new(
            Service::ShoptetWebhooks,
            vendor_config.metrics_namespace.clone(),
            std::io::sink(),
        ));
        println!(
            "e-shop webhooks: {} registered for every Shoptet install at {}",
            subscription
                .events()
                .iter()
                .map(|e| e.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            config.url
        );
        Ok(Some(Self {
            webhooks: EshopWebhooks::new(
                Registrar::new(subscription, config.url, client()),
                Reconciler::new(client()),
                bus,
                metrics,
            ),
            vendor,
        }))
    }

    /// A Shoptet install or import registers; `Err` asks to be tried again.
    pub async fn on_event(&self, event: &InstallationEvent) -> Result<(), String> {
        let Some(eshop_id) = registering_eshop(event) else {
            return Ok(());
        };
        match self
            .webhooks
            .register_for_event(self.vendor.vendor(), eshop_id, &event.id, true)
            .await
        {
            Ok(registered) => {
                println!(
                    "e-shop webhooks: shop {eshop_id}: {} registered, {} already there, key {}",
                    registered.added.len(),
                    registered.present,
                    if registered.key_renewed {
                        "renewed"
                    } else {
                        "kept"
                    }
                );
                Ok(())
            }
            Err(failure) if failure.is_permanent() => {
                eprintln!("e-shop webhooks: shop {eshop_id}: {failure} (not retried)");
                Ok(())
            }
            Err(failure) => Err(format!("registering shop {eshop_id}'s webhooks: {failure}")),
        }
    }

    /// Every active installation's missed notifications, every
    /// [`RECONCILE_EVERY`], for ever.
    pub async fn reconcile_forever(self: Arc<Self>) {
        loop {
            tokio::time::sleep(RECONCILE_EVERY).await;
            let mut after = None;
            loop {
                let registry = &self.vendor.vendor().stores().registry;
                let Ok((shops, next)) = active_shops(registry, after, 100).await else {
                    break;
                };
                for eshop_id in shops {
                    if let Ok(done) = self
                        .webhooks
                        .reconcile(self.vendor.vendor(), eshop_id)
                        .await
                        && done.forwarded > 0
                    {
                        println!(
                            "e-shop webhooks: shop {eshop_id}: {} missed notifications forwarded",
                            done.forwarded
                        );
                    }
                }
                match next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
    }
}

impl<S, C, R> OnEvent for LocalWebhooks<S, C, R>
where
    S: broker_domain::storage::InstallationStore,
    C: broker_domain::storage::TokenCache + broker_domain::storage::DeliveryLog,
    R: broker_domain::storage::InstallationRegistry,
{
    async fn on_event(&self, event: &InstallationEvent) -> Result<(), String> {
        LocalWebhooks::on_event(self, event).await
    }
}
