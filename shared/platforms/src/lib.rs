//! The platforms as the broker speaks to them: Shoptet's and Shoprenter's
//! OAuth and API clients, their lifecycle signatures (Shoptet's webhooks,
//! Shoprenter's signed redirects), the upstream HTTP settings they share,
//! and the readers of their configuration. Platform facts, with sources:
//! `docs/platforms.md` in this repository.

use broker_domain::{ids, limits, model, secret};
use broker_runtime::tls;

pub mod config;
pub mod minting;
pub mod shoprenter;
pub mod shoprenter_app;
pub mod shoptet;
pub mod shoptet_eshop_webhooks;
pub mod shoptet_webhook;
pub mod upstream;
