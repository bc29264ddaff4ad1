//! The event bus as the functions see it: a port that takes one event (a
//! forwarded e-shop webhook; lifecycle events reach the bus through the
//! registry's outbox instead), and the shape every event has on it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use crate::events::{
    ESHOP_WEBHOOK_DETAIL_TYPE, EshopWebhookEvent, InstallationEvent, SOURCE,
    WEBHOOK_REGISTRATION_FAILED_DETAIL_TYPE, WEBHOOKS_REGISTERED_DETAIL_TYPE,
    WebhookRegistrationEvent,
};

/// One event as EventBridge's `PutEvents` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusEntry {
    pub source: &'static str,
    pub detail_type: &'static str,
    /// The event's JSON: EventBridge's `detail`, and the HTTPS body.
    pub detail: String,
}

impl BusEntry {
    pub fn of(event: &InstallationEvent) -> Self {
        Self {
            source: SOURCE,
            detail_type: event.detail_type(),
            detail: body_of(event),
        }
    }

    pub fn of_webhook(event: &EshopWebhookEvent) -> Self {
        Self {
            source: SOURCE,
            detail_type: ESHOP_WEBHOOK_DETAIL_TYPE,
            detail: serde_json::to_string(event).expect("an event always serializes"),
        }
    }
}

impl BusEntry {
    pub fn of_registration(event: &WebhookRegistrationEvent) -> Self {
        Self {
            source: SOURCE,
            detail_type: if event.error_code.is_some() {
                WEBHOOK_REGISTRATION_FAILED_DETAIL_TYPE
            } else {
                WEBHOOKS_REGISTERED_DETAIL_TYPE
            },
            detail: serde_json::to_string(event).expect("an event always serializes"),
        }
    }
}

/// The JSON the broker sends of a lifecycle event: EventBridge's `detail`
/// and the HTTPS body alike.
pub fn body_of(event: &InstallationEvent) -> String {
    serde_json::to_string(event).expect("an event always serializes")
}

/// Why an event did not reach the bus. The detail is an error code, never
/// the event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the event bus did not take the event: {0}")]
pub struct BusUnavailable(pub String);

/// What [`EventBus::put`] returns.
pub type Put<'a> = Pin<Box<dyn Future<Output = Result<(), BusUnavailable>> + Send + 'a>>;

/// Puts events on the add-on's bus, each at least once. Object-safe (a
/// boxed future): the functions hold whichever bus their process has.
pub trait EventBus: Send + Sync {
    fn put<'a>(&'a self, entry: &'a BusEntry) -> Put<'a>;
}

/// A bus in process memory (unit tests): keeps every entry put, in order;
/// `refusing` makes it fail every put.
#[derive(Debug, Clone, Default)]
pub struct MemoryBus {
    entries: Arc<Mutex<Vec<BusEntry>>>,
    refusing: Arc<Mutex<bool>>,
}

impl MemoryBus {
    pub fn entries(&self) -> Vec<BusEntry> {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn refuse(&self, refusing: bool) {
        *self.refusing.lock().unwrap_or_else(PoisonError::into_inner) = refusing;
    }
}

impl EventBus for MemoryBus {
    fn put<'a>(&'a self, entry: &'a BusEntry) -> Put<'a> {
        Box::pin(async move {
            if *self.refusing.lock().unwrap_or_else(PoisonError::into_inner) {
                return Err(BusUnavailable("refused".into()));
            }
            self.entries
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(entry.clone());
            Ok(())
        })
    }
}
