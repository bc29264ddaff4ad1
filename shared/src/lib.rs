//! The token broker's shared crate: platform protocol clients, token and
//! secret types, validated identifiers, upstream HTTP settings.

pub mod config;
pub mod http;
pub mod ids;
pub mod logging;
pub mod secret;
pub mod shoprenter;
pub mod shoptet;
pub mod storage;
pub mod upstream;
