//! Catching up on what never arrived: an installation's notifications
//! Shoptet gave up on (`failed`) or has not delivered yet (`new`) are read
//! from its 7-day history and forwarded, deduplicated with the live
//! deliveries. Needs no signature: the history is read with the
//! installation's own API token, so it is the platform's word. This is
//! also what keeps deliveries whole if a key is ever wrong (a signature key
//! that turns out to be per add-on, renewed for another installation): the
//! route refuses them, Shoptet marks them failed, this forwards them.

use std::time::SystemTime;

use broker_domain::bus::EventBus;
use broker_domain::events::DeliveryPath;
use broker_domain::ids::ShoptetEshopId;
use broker_domain::storage::{DeliveryLog, InstallationRegistry, InstallationStore, TokenCache};
use broker_platforms::shoptet::ShoptetClient;
use broker_platforms::shoptet_eshop_webhooks::{
    EshopDelivery, HistoryNotification, NotificationStatus, body_text,
};
use broker_vending::TokenVendor;
use serde_json::Value;

use crate::failure::WebhookFailure;
use crate::forward::{Forwarded, forward};

/// Pages read per status and installation at most: 10 000 notifications
/// a run. An installation with more undelivered is caught up over runs.
const MAX_PAGES: u32 = 10;

/// What one installation's reconciliation found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Forwarded now: never received before.
    pub forwarded: usize,
    /// Already forwarded (live, or by an earlier run).
    pub duplicates: usize,
    /// History entries that are not a notification we can forward.
    pub unreadable: usize,
}

pub struct Reconciler {
    client: ShoptetClient,
}

impl Reconciler {
    pub fn new(client: ShoptetClient) -> Self {
        Self { client }
    }

    /// Reads the installation's failed and undelivered notifications and
    /// forwards each never forwarded before.
    pub async fn reconcile<S, C, R>(
        &self,
        vendor: &TokenVendor<S, C, R>,
        bus: &dyn EventBus,
        eshop_id: ShoptetEshopId,
        now: SystemTime,
    ) -> Result<Reconciled, WebhookFailure>
    where
        S: InstallationStore,
        C: TokenCache + DeliveryLog,
        R: InstallationRegistry,
    {
        crate::token::with_token(vendor, eshop_id, |token| async move {
            let token = &token;
            let log = &vendor.stores().tokens;
            let mut reconciled = Reconciled::default();
            for status in [NotificationStatus::Failed, NotificationStatus::New] {
                let mut page = 1;
                loop {
                    let history = self.client.webhook_history(token, status, page).await?;
                    for notification in &history.notifications {
                        let Some((delivery, body)) = readable(eshop_id, notification) else {
                            reconciled.unreadable += 1;
                            continue;
                        };
                        let path = DeliveryPath::Reconciliation;
                        match forward(log, bus, &delivery, body, path, now).await? {
                            Forwarded::Sent => reconciled.forwarded += 1,
                            Forwarded::Duplicate => reconciled.duplicates += 1,
                        }
                    }
                    if page >= history.page_count.min(MAX_PAGES) {
                        break;
                    }
                    page += 1;
                }
            }
            Ok(reconciled)
        })
        .await
    }
}

/// The notification's fields (the same a live delivery's body carries, so
/// both have one fingerprint) and its body as text.
fn readable(
    eshop_id: ShoptetEshopId,
    notification: &HistoryNotification,
) -> Option<(EshopDelivery, String)> {
    let instance = match &notification.event_instance {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        _ => return None,
    };
    let delivery = EshopDelivery {
        eshop_id,
        event: notification.event.clone(),
        event_created: notification.event_created.clone(),
        event_instance: instance,
    };
    let body = match &notification.data {
        Value::Object(_) => body_text(&notification.data),
        _ => return None,
    };
    Some((delivery, body))
}
