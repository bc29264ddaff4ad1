//! The platforms' limits on tokens that the broker's core honours.

use std::time::Duration;

use crate::ids::Platform;

/// Shoptet API access tokens live 30 minutes; a caller cannot ask for more life.
pub const SHOPTET_API_TOKEN_LIFETIME: Duration = Duration::from_secs(1800);

/// Shoprenter access tokens live an hour; a caller cannot ask for more life.
pub const SHOPRENTER_ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// At most this many Shoptet API access tokens may live at once per
/// installation; `getAccessToken` answers `maximum_tokens_reached` beyond it.
pub const SHOPTET_LIVE_TOKEN_CAP: usize = 5;

/// When an upstream cap refusal says nothing about when to come back.
pub const DEFAULT_CAP_RETRY: Duration = Duration::from_secs(60);

/// The longest life a platform's tokens have: no caller can ask for more.
pub fn token_lifetime(platform: Platform) -> Duration {
    match platform {
        Platform::Shoptet => SHOPTET_API_TOKEN_LIFETIME,
        Platform::Shoprenter => SHOPRENTER_ACCESS_TOKEN_LIFETIME,
    }
}
