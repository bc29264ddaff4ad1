//! The platforms' limits on tokens that the broker's core honours: the
//! protocol's own values, which the client also reads.

pub use shop_token_protocol::lifetimes::{
    DEFAULT_CAP_RETRY, DEFAULT_RATE_LIMIT_RETRY, SHOPRENTER_ACCESS_TOKEN_LIFETIME,
    SHOPTET_API_TOKEN_LIFETIME, SHOPTET_LIVE_TOKEN_CAP,
};

// A platform's longest token life is the protocol's `Platform::token_lifetime`.
