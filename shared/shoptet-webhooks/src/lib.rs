//! Shoptet e-shop webhooks, so that an add-on writes no webhook code: the
//! configured events are registered for every installation and its
//! signature key kept ([`Registrar`]); deliveries are verified with that
//! key, deduplicated and forwarded to the bus once ([`Receiver`]); what
//! never arrived is caught up on from the installation's 7-day
//! notification history ([`Reconciler`]).
//!
//! No AWS here: the functions and `broker-local` give it their stores,
//! their bus and a vendor for the installation's API tokens.

mod failure;
mod forward;
mod keys;
mod receive;
mod reconcile;
mod register;
mod service;
mod token;

pub use failure::WebhookFailure;
pub use forward::{DEDUPLICATION_WINDOW, Forwarded};
pub use receive::{Received, Receiver, Refused};
pub use reconcile::{Reconciled, Reconciler};
pub use register::{KeyRenewal, Registered, Registrar};
pub use service::{
    CONCURRENCY, EshopWebhooks, ReregisterPage, ShopOutcome, active_shops, for_each_concurrently,
    registering_eshop,
};
