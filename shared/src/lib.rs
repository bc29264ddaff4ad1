//! The token broker's shared crate: platform protocol clients and facts,
//! the records the broker keeps, secret types, validated identifiers,
//! upstream HTTP settings, storage ports and adapters, and the one HTTP
//! error contract.

pub mod aws_http;
pub mod config;
pub mod http;
pub mod ids;
pub mod lazy_secret;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod secret;
pub mod shoprenter;
pub mod shoprenter_app;
pub mod shoptet;
pub mod shoptet_webhook;
pub mod storage;
pub mod tls;
pub mod upstream;
pub mod vending;
