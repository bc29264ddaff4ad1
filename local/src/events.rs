//! Lifecycle events in local mode: the SQLite registry's outbox, read
//! every moment, each event printed and, with `--events-url`, delivered to
//! it signed exactly as the cloud publisher signs (`broker_events`). An
//! event stays in the outbox until the endpoint takes it; a refusal is
//! retried after a pause, in order.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use broker_domain::events::InstallationEvent;
use broker_domain::secret::EventSigningSecret;
use broker_domain::storage::EventOutbox;
use broker_events::{WebhookSender, body_of};

/// How often the outbox is read when idle.
const POLL: Duration = Duration::from_millis(200);
/// The pause after a refused delivery, doubling up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Where local events go besides stdout.
pub struct Delivery {
    pub sender: WebhookSender,
    pub secret: EventSigningSecret,
}

/// What an event sets off locally before it is delivered (the e-shop
/// webhooks' registration on a Shoptet install); `Err` retries the event.
pub trait OnEvent: Send + Sync {
    fn on_event(
        &self,
        event: &InstallationEvent,
    ) -> impl std::future::Future<Output = Result<(), String>> + Send;
}

/// Nothing to set off.
impl OnEvent for () {
    async fn on_event(&self, _: &InstallationEvent) -> Result<(), String> {
        Ok(())
    }
}

/// Reads `outbox` for ever: prints each event once (`event: <json>`, as
/// soon as it is committed), lets `on_event` act on it, delivers it if
/// `delivery` is set, and marks it delivered.
pub async fn run(
    outbox: impl EventOutbox,
    delivery: Option<Arc<Delivery>>,
    on_event: Arc<impl OnEvent>,
) {
    let mut backoff = FIRST_BACKOFF;
    let mut printed = HashSet::new();
    loop {
        match step(
            &outbox,
            delivery.as_deref(),
            on_event.as_ref(),
            &mut printed,
        )
        .await
        {
            Step::Idle => {
                backoff = FIRST_BACKOFF;
                tokio::time::sleep(POLL).await;
            }
            Step::Busy => backoff = FIRST_BACKOFF,
            Step::Refused => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

enum Step {
    Idle,
    Busy,
    Refused,
}

async fn step(
    outbox: &impl EventOutbox,
    delivery: Option<&Delivery>,
    on_event: &impl OnEvent,
    printed: &mut HashSet<String>,
) -> Step {
    let pending = match outbox.pending(50).await {
        Ok(pending) if pending.is_empty() => return Step::Idle,
        Ok(pending) => pending,
        Err(error) => {
            eprintln!("events: reading the outbox failed: {error}");
            return Step::Refused;
        }
    };
    for event in pending {
        if printed.insert(event.id.clone()) {
            println!("event: {}", body_of(&event));
        }
        if let Err(problem) = deliver(delivery, &event).await {
            eprintln!("events: {} not delivered ({problem}); retrying", event.id);
            return Step::Refused;
        }
        // After the delivery, as on AWS (where the bus's event sets it
        // off): what it sets off announces itself after it. A failure
        // retries both (the endpoint deduplicates on the event's id).
        if let Err(problem) = on_event.on_event(&event).await {
            eprintln!("events: {problem}; retrying");
            return Step::Refused;
        }
        printed.remove(&event.id);
        if let Err(error) = outbox.delivered(&event.id).await {
            eprintln!("events: marking {} delivered failed: {error}", event.id);
            return Step::Refused;
        }
    }
    Step::Busy
}

async fn deliver(delivery: Option<&Delivery>, event: &InstallationEvent) -> Result<(), String> {
    match delivery {
        None => Ok(()),
        Some(delivery) => delivery
            .sender
            .deliver(&delivery.secret, event)
            .await
            .map_err(|error| error.to_string()),
    }
}
