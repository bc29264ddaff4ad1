//! How long the platforms' tokens live, how many may live at once, and how
//! long a refusal that does not say so asks a caller to wait.
//!
//! The broker refuses a `min_ttl` of a token's whole lifetime or more; a
//! client keeps its asks below it.

use std::time::Duration;

use crate::ids::Platform;

/// Shoptet API access tokens live 30 minutes.
pub const SHOPTET_API_TOKEN_LIFETIME: Duration = Duration::from_secs(1800);

/// Shoprenter access tokens live an hour.
pub const SHOPRENTER_ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// At most this many Shoptet API access tokens may live at once per
/// installation; Shoptet answers `maximum_tokens_reached` beyond it, and the
/// broker `token_cap_reached`.
pub const SHOPTET_LIVE_TOKEN_CAP: usize = 5;

/// The wait of a `token_cap_reached` refusal that does not say how long
/// (the broker's, when the platform's cap refusal says nothing either).
pub const DEFAULT_CAP_RETRY: Duration = Duration::from_secs(60);

/// The wait of a `rate_limited` refusal that does not say how long.
pub const DEFAULT_RATE_LIMIT_RETRY: Duration = Duration::from_secs(1);

impl Platform {
    /// The longest life a token of this platform has (Shoptet API access
    /// tokens 30 minutes, Shoprenter access tokens 1 hour): the broker
    /// refuses a `min_ttl` of this or more.
    ///
    /// ```
    /// use shop_token_protocol::ids::Platform;
    ///
    /// assert_eq!(Platform::Shoptet.token_lifetime().as_secs(), 1800);
    /// assert_eq!(Platform::Shoprenter.token_lifetime().as_secs(), 3600);
    /// ```
    pub const fn token_lifetime(self) -> Duration {
        match self {
            Platform::Shoptet => SHOPTET_API_TOKEN_LIFETIME,
            Platform::Shoprenter => SHOPRENTER_ACCESS_TOKEN_LIFETIME,
        }
    }

    /// How many of this platform's tokens may live at once per
    /// installation, where the platform caps them (Shoptet: 5).
    pub const fn live_token_cap(self) -> Option<usize> {
        match self {
            Platform::Shoptet => Some(SHOPTET_LIVE_TOKEN_CAP),
            Platform::Shoprenter => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lifetimes_are_the_platforms() {
        assert_eq!(
            Platform::Shoptet.token_lifetime(),
            Duration::from_secs(30 * 60)
        );
        assert_eq!(
            Platform::Shoprenter.token_lifetime(),
            Duration::from_secs(60 * 60)
        );
        assert_eq!(Platform::Shoptet.live_token_cap(), Some(5));
        assert_eq!(Platform::Shoprenter.live_token_cap(), None);
        assert_eq!(DEFAULT_CAP_RETRY, Duration::from_secs(60));
    }
}
