//! Forwarding a notification to the bus once within the window, at least
//! once: the delivery log is asked first, the bus is given the event, then
//! the log records it. A crash between the bus and the log forwards it
//! again on the next copy, with the same event id (subscribers deduplicate
//! on it); the other order would lose it for good.

use std::time::{Duration, SystemTime};

use broker_domain::bus::{BusEntry, BusUnavailable, EventBus};
use broker_domain::events::{DeliveryPath, EshopWebhookEvent, SCHEMA_VERSION};
use broker_domain::ids::Platform;
use broker_domain::storage::{DeliveryLog, StoreError};
use broker_platforms::shoptet_eshop_webhooks::EshopDelivery;

/// How long a forwarded notification is remembered: Shoptet keeps 7 days
/// of history (the reconciliation reads all of it) and retries within
/// that, so any copy of a notification arrives within 7 days of the
/// first; one day more covers a reconciliation run late by a day.
pub const DEDUPLICATION_WINDOW: Duration = Duration::from_secs(8 * 24 * 3600);

/// What forwarding a copy came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarded {
    /// The bus has it now.
    Sent,
    /// An earlier copy was forwarded: nothing sent.
    Duplicate,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ForwardError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bus(#[from] BusUnavailable),
}

pub(crate) async fn forward(
    log: &impl DeliveryLog,
    bus: &dyn EventBus,
    delivery: &EshopDelivery,
    body: String,
    path: DeliveryPath,
    now: SystemTime,
) -> Result<Forwarded, ForwardError> {
    let fingerprint = delivery.fingerprint();
    if log.was_forwarded(&fingerprint).await? {
        return Ok(Forwarded::Duplicate);
    }
    let hex = fingerprint.to_hex();
    let event = EshopWebhookEvent {
        schema_version: SCHEMA_VERSION,
        // The fingerprint, shaped as a UUID: every copy of the notification
        // has the same id.
        id: format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        ),
        platform: Platform::Shoptet,
        shop: delivery.eshop_id.to_string(),
        event: delivery.event.clone(),
        event_instance: delivery.event_instance.clone(),
        event_created: delivery.event_created.clone(),
        received_at: humantime::format_rfc3339_millis(now).to_string(),
        delivery: path,
        body,
    };
    bus.put(&BusEntry::of_webhook(&event)).await?;
    log.record_forwarded(&fingerprint, now + DEDUPLICATION_WINDOW)
        .await?;
    Ok(Forwarded::Sent)
}
