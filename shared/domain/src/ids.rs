//! Validated identifiers: the broker and its client share one set of rules
//! (`shop-token-protocol`).

pub use shop_token_protocol::ids::*;
