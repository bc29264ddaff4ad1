//! The wire protocol between shop-token-broker and its clients, written once
//! for both sides: what a shop is ([`ids`]), how long tokens live
//! ([`lifetimes`]), the token vendor's answer ([`answer`]), its error codes
//! and error body ([`error`]), `Retry-After` ([`retry_after`]) and where
//! plain HTTP is acceptable ([`loopback`]), and what a caller asks
//! ([`request`]).
//!
//! No I/O, no async runtime, no HTTP stack: the broker (AWS Lambda) and the
//! client (`shop-token-client`) each bring their own.
//!
//! ```
//! use shop_token_protocol::error::ErrorCode;
//! use shop_token_protocol::ids::{Platform, ShopRef};
//!
//! let shop = ShopRef::parse("shoprenter", "demo-shop").unwrap();
//! assert_eq!(shop.platform(), Platform::Shoprenter);
//! assert_eq!(shop.key(), "shoprenter#demo-shop");
//!
//! let code: ErrorCode = "not_installed".parse().unwrap();
//! assert_eq!((code.http_status(), code.is_retryable()), (404, false));
//! ```
#![warn(missing_docs)]

pub mod answer;
pub mod error;
pub mod events;
pub mod ids;
pub mod lifetimes;
pub mod loopback;
pub mod request;
pub mod retry_after;
