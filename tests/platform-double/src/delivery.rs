//! Sends Shoptet's ordinary webhook notifications as the platform does: a
//! signed POST per registered webhook, [`ATTEMPTS`] attempts at most,
//! [`crate::DoubleConfig::webhook_retry_gap`] apart, each given
//! [`DELIVERY_TIMEOUT`] to be answered 2xx. Each notification is sent by
//! its own task, so deliveries run in parallel and in no particular order,
//! as Shoptet's do.

use std::sync::Arc;
use std::time::SystemTime;

use axum::http::header;
use tokio::sync::oneshot;

use crate::state::Shared;
use crate::webhooks::{
    ATTEMPTS, Attempt, DELIVERY_TIMEOUT, DeliveryReport, SIGNATURE_HEADER, Target,
};

/// How long [`deliver`] waits before reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Until every notification made its first attempt; retries carry on
    /// in the background (a failing receiver would otherwise hold the
    /// caller for twice the retry gap: 30 minutes with Shoptet's).
    FirstAttempt,
    /// Until every notification succeeded or used up its attempts.
    Settled,
}

/// The event happened in the e-shop: notifies every webhook of the
/// installation registered for it, and reports once `wait` is met.
pub(crate) async fn deliver(
    shared: &Arc<Shared>,
    eshop_id: u64,
    event: &str,
    event_instance: &str,
    wait: Wait,
) -> DeliveryReport {
    let ids =
        shared
            .lock()
            .shoptet
            .webhooks
            .notify(eshop_id, event, event_instance, SystemTime::now());
    let mut first_attempts = Vec::new();
    let mut tasks = Vec::new();
    for &id in &ids {
        let (attempted, first_attempt) = oneshot::channel();
        first_attempts.push(first_attempt);
        tasks.push(tokio::spawn(send_notification(
            shared.clone(),
            id,
            attempted,
        )));
    }
    match wait {
        Wait::FirstAttempt => {
            for first_attempt in first_attempts {
                // An error only means the task ended without attempting.
                let _ = first_attempt.await;
            }
        }
        Wait::Settled => {
            for task in tasks {
                let _ = task.await;
            }
        }
    }
    let state = shared.lock();
    DeliveryReport {
        eshop_id,
        event: event.to_owned(),
        event_instance: event_instance.to_owned(),
        notifications: ids
            .iter()
            .filter_map(|&id| state.shoptet.webhooks.notification(id))
            .collect(),
    }
}

/// Attempts notification `id` until it is settled or gone; `attempted`
/// fires after the first attempt.
async fn send_notification(shared: Arc<Shared>, id: u64, attempted: oneshot::Sender<()>) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(DELIVERY_TIMEOUT)
        .build()
        .unwrap_or_default();
    let per_addon = shared.config.signature_key_per_addon;
    let mut attempted = Some(attempted);
    for attempt in 1..=ATTEMPTS {
        if attempt > 1 {
            tokio::time::sleep(shared.config.webhook_retry_gap).await;
        }
        let Some(target) = shared.lock().shoptet.webhooks.target(id, per_addon) else {
            break;
        };
        let outcome = post(&client, target).await;
        let settled = shared.lock().shoptet.webhooks.record(id, outcome);
        if let Some(attempted) = attempted.take() {
            let _ = attempted.send(());
        }
        if settled {
            break;
        }
    }
}

/// One attempt: the notification's fixed bytes, signed when there is a key.
async fn post(client: &reqwest::Client, target: Target) -> Attempt {
    let mut request = client
        .post(&target.url)
        .header(header::CONTENT_TYPE, "application/json")
        .body(target.body);
    if let Some(signature) = &target.signature {
        request = request.header(SIGNATURE_HEADER, signature);
    }
    match request.send().await {
        Ok(response) => Attempt {
            status: Some(response.status().as_u16()),
            error: None,
            signature: target.signature,
        },
        Err(error) => Attempt {
            status: None,
            error: Some(if error.is_timeout() {
                format!("no answer within {} s", DELIVERY_TIMEOUT.as_secs())
            } else {
                error.to_string()
            }),
            signature: target.signature,
        },
    }
}
