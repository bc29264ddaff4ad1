//! The e-shop webhooks as a host runs them (the `shoptet-webhooks` function,
//! `broker-local`): registration on an install or import, re-registration
//! of every installation page by page, reconciliation per installation;
//! each counted in the metrics and announced on the bus.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::SystemTime;

use broker_domain::bus::{BusEntry, EventBus};
use broker_domain::events::{
    EventKind, InstallationEvent, SCHEMA_VERSION, WebhookRegistrationEvent,
};
use broker_domain::ids::{Platform, ShopRef, ShoptetEshopId};
use broker_domain::model::InstallationStatus;
use broker_domain::storage::{
    DeliveryLog, InstallationRegistry, InstallationStore, MAX_PAGE, RegistryQuery, StoreError,
    TokenCache,
};
use broker_runtime::metrics::{Dimension, Dimensions, Metric, Metrics};
use broker_vending::TokenVendor;
use serde::{Deserialize, Serialize};

use crate::{
    DEDUPLICATION_WINDOW, KeyRenewal, Reconciled, Reconciler, Registered, Registrar, WebhookFailure,
};
use broker_platforms::shoptet_eshop_webhooks::fingerprint_of;

/// How long a key renewal's claim holds without the renewal succeeding: a
/// registration takes seconds; the queue retries after minutes.
pub const RENEWAL_LEASE: std::time::Duration = std::time::Duration::from_secs(300);

/// How many installations are worked on at once (each takes a few API
/// calls; Shoptet allows 3 connections per token and 50 per IP).
pub const CONCURRENCY: usize = 5;

pub struct EshopWebhooks {
    registrar: Registrar,
    reconciler: Reconciler,
    bus: Arc<dyn EventBus>,
    metrics: Arc<Metrics>,
}

/// One installation's line of a re-registration page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShopOutcome {
    pub shop: String,
    /// Events registered (a dry run: to be registered).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_renewed: Option<bool>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One page of a re-registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReregisterPage {
    pub dry_run: bool,
    pub installations: Vec<ShopOutcome>,
    /// Where the next page starts (an e-shop id); `None`: done.
    pub next: Option<String>,
}

impl EshopWebhooks {
    pub fn new(
        registrar: Registrar,
        reconciler: Reconciler,
        bus: Arc<dyn EventBus>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            registrar,
            reconciler,
            bus,
            metrics,
        }
    }

    pub fn registrar(&self) -> &Registrar {
        &self.registrar
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// An install, reinstall or import: registers and renews the key.
    /// `will_retry`: whether the caller tries again on a failure that is
    /// not permanent (the failure event says so).
    pub async fn register<S, C, R>(
        &self,
        vendor: &TokenVendor<S, C, R>,
        eshop_id: ShoptetEshopId,
        renewal: KeyRenewal,
        will_retry: bool,
    ) -> Result<Registered, WebhookFailure>
    where
        S: InstallationStore,
        C: TokenCache,
        R: InstallationRegistry,
    {
        let result = self
            .registrar
            .register(vendor, eshop_id, renewal, false)
            .await;
        let now = SystemTime::now();
        let mut event = WebhookRegistrationEvent {
            schema_version: SCHEMA_VERSION,
            id: uuid::Uuid::new_v4().to_string(),
            platform: Platform::Shoptet,
            shop: eshop_id.to_string(),
            occurred_at: humantime::format_rfc3339_millis(now).to_string(),
            registered: Vec::new(),
            key_renewed: None,
            error_code: None,
            will_retry: None,
        };
        match &result {
            Ok(registered) => {
                self.metrics
                    .count(Metric::WebhookRegistrations, Dimensions::default());
                tracing::info!(shop = %eshop_id, added = registered.added.len(), present = registered.present, key_renewed = registered.key_renewed, "e-shop webhooks registered");
                if registered.added.is_empty() && !registered.key_renewed {
                    return result;
                }
                event.registered = registered.added.iter().map(|e| e.to_string()).collect();
                event.key_renewed = Some(registered.key_renewed);
            }
            Err(failure) => {
                self.metrics.count(
                    Metric::WebhookRegistrationFailures,
                    Dimensions::of(Dimension::Code, failure.code()),
                );
                let will_retry = will_retry && !failure.is_permanent();
                tracing::warn!(shop = %eshop_id, code = failure.code(), %failure, will_retry, "e-shop webhook registration failed");
                event.error_code = Some(failure.code().to_owned());
                event.will_retry = Some(will_retry);
            }
        }
        // The announcement is best effort: the metric and the log line
        // already tell, and a retry announces again.
        if let Err(error) = self.bus.put(&BusEntry::of_registration(&event)).await {
            tracing::warn!(%error, "the registration event was not published");
        }
        result
    }

    /// An install, reinstall or import event (`event_id`, delivered at
    /// least once): registers, and renews the key once per event. Of
    /// concurrent copies of one event only the one that claims it renews
    /// (two renewals racing could leave the first one's key stored while
    /// Shoptet signs with the second's); a copy that does not claim it
    /// registers what is missing and keeps the key. The claim lapses after
    /// [`RENEWAL_LEASE`] unless the renewal succeeded, so a failed one is
    /// renewed by the event's retry.
    pub async fn register_for_event<S, C, R>(
        &self,
        vendor: &TokenVendor<S, C, R>,
        eshop_id: ShoptetEshopId,
        event_id: &str,
        will_retry: bool,
    ) -> Result<Registered, WebhookFailure>
    where
        S: InstallationStore,
        C: TokenCache + DeliveryLog,
        R: InstallationRegistry,
    {
        let claim = fingerprint_of(&["key-renewal", &eshop_id.to_string(), event_id]);
        let log = &vendor.stores().tokens;
        let now = SystemTime::now();
        let claimed = log.claim(&claim, now + RENEWAL_LEASE).await?;
        let renewal = if claimed {
            KeyRenewal::Always
        } else {
            KeyRenewal::IfMissing
        };
        let registered = self.register(vendor, eshop_id, renewal, will_retry).await?;
        if claimed {
            log.record_forwarded(&claim, now + DEDUPLICATION_WINDOW)
                .await?;
        }
        Ok(registered)
    }

    /// One page of every active Shoptet installation, each registered
    /// (keys renewed only where none is kept); with `dry_run`, what would be.
    pub async fn reregister_page<S, C, R>(
        &self,
        vendor: &TokenVendor<S, C, R>,
        after: Option<ShoptetEshopId>,
        limit: usize,
        dry_run: bool,
    ) -> Result<ReregisterPage, StoreError>
    where
        S: InstallationStore,
        C: TokenCache,
        R: InstallationRegistry,
    {
        let (shops, next) = active_shops(&vendor.stores().registry, after, limit).await?;
        let outcomes = for_each_concurrently(shops, |eshop_id| async move {
            let result = if dry_run {
                self.registrar
                    .register(vendor, eshop_id, KeyRenewal::IfMissing, true)
                    .await
            } else {
                self.register(vendor, eshop_id, KeyRenewal::IfMissing, false)
                    .await
            };
            match result {
                Ok(registered) => ShopOutcome {
                    shop: eshop_id.to_string(),
                    added: registered.added.iter().map(|e| e.to_string()).collect(),
                    key_renewed: Some(registered.key_renewed),
                    error: None,
                },
                Err(failure) => ShopOutcome {
                    shop: eshop_id.to_string(),
                    added: Vec::new(),
                    key_renewed: None,
                    error: Some(failure.code().to_owned()),
                },
            }
        })
        .await;
        Ok(ReregisterPage {
            dry_run,
            installations: outcomes,
            next: next.map(|id| id.to_string()),
        })
    }

    /// One installation's catch-up, counted.
    pub async fn reconcile<S, C, R>(
        &self,
        vendor: &TokenVendor<S, C, R>,
        eshop_id: ShoptetEshopId,
    ) -> Result<Reconciled, WebhookFailure>
    where
        S: InstallationStore,
        C: TokenCache + DeliveryLog,
        R: InstallationRegistry,
    {
        let result = self
            .reconciler
            .reconcile(vendor, self.bus.as_ref(), eshop_id, SystemTime::now())
            .await;
        match &result {
            Ok(reconciled) => {
                self.metrics
                    .count(Metric::Reconciliations, Dimensions::default());
                if reconciled.forwarded > 0 {
                    self.metrics.add(
                        Metric::EshopWebhooksForwarded,
                        Dimensions::of(Dimension::Source, "reconciliation"),
                        reconciled.forwarded as u64,
                    );
                }
                tracing::info!(shop = %eshop_id, forwarded = reconciled.forwarded, duplicates = reconciled.duplicates, unreadable = reconciled.unreadable, "e-shop webhooks reconciled");
            }
            Err(failure) => {
                self.metrics.count(
                    Metric::ReconciliationFailures,
                    Dimensions::of(Dimension::Code, failure.code()),
                );
                tracing::warn!(shop = %eshop_id, code = failure.code(), %failure, "e-shop webhook reconciliation failed");
            }
        }
        result
    }
}

/// The e-shop whose webhooks a lifecycle event asks to register: a
/// Shoptet install, reinstall or import; `None` for any other event.
pub fn registering_eshop(event: &InstallationEvent) -> Option<ShoptetEshopId> {
    let registers = event.platform == Platform::Shoptet
        && matches!(event.kind, EventKind::Installed | EventKind::Imported);
    registers.then(|| event.shop.parse().ok()).flatten()
}

/// One page of the registry's active Shoptet installations, and where the
/// next page starts. Pages may come back short (DynamoDB filters after
/// reading): this keeps reading until it has `limit` or the end.
pub async fn active_shops(
    registry: &impl InstallationRegistry,
    after: Option<ShoptetEshopId>,
    limit: usize,
) -> Result<(Vec<ShoptetEshopId>, Option<ShoptetEshopId>), StoreError> {
    let limit = limit.clamp(1, MAX_PAGE);
    let mut shops = Vec::new();
    let mut cursor = after.map(ShopRef::Shoptet);
    loop {
        let page = registry
            .list(&RegistryQuery {
                platform: Some(Platform::Shoptet),
                status: Some(InstallationStatus::Active),
                limit: NonZeroUsize::new(limit - shops.len()).expect("below the limit"),
                after: cursor.clone(),
            })
            .await?;
        shops.extend(page.registrations.iter().filter_map(|r| match r.shop {
            ShopRef::Shoptet(id) => Some(id),
            ShopRef::Shoprenter(_) => None,
        }));
        cursor = page.next_after;
        if cursor.is_none() {
            return Ok((shops, None));
        }
        if shops.len() >= limit {
            let next = shops.last().copied();
            return Ok((shops, next));
        }
    }
}

/// `work` for each item, [`CONCURRENCY`] at a time, results in order.
pub async fn for_each_concurrently<T, F, Fut, O>(items: Vec<T>, work: F) -> Vec<O>
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = O>,
{
    use futures_util::StreamExt;
    futures_util::stream::iter(items.into_iter().map(work))
        .buffered(CONCURRENCY)
        .collect()
        .await
}
