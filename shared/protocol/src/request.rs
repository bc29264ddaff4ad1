//! What a caller asks the token vendor: the optional body of
//! `POST /tokens/{platform}/{shop}`, or a direct invocation's payload (which
//! also names the platform and the shop).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ids::ShopRef;

/// `{"min_ttl_seconds"?, "stale_token"?}`, plus `platform` and `shop` for a
/// direct invocation. Unknown fields are refused, so a misspelt option is
/// an error, not a silent default. `Debug` never shows the stale token.
///
/// ```
/// use std::time::Duration;
/// use shop_token_protocol::ids::ShopRef;
/// use shop_token_protocol::request::VendRequest;
///
/// let body = VendRequest::options(Some(Duration::from_millis(60_001)), Some("old"));
/// assert_eq!(
///     serde_json::to_string(&body).unwrap(),
///     r#"{"min_ttl_seconds":61,"stale_token":"old"}"#
/// );
/// let shop = ShopRef::parse("shoptet", "222651").unwrap();
/// let payload = VendRequest::direct(&shop, None, None);
/// assert_eq!(
///     serde_json::to_string(&payload).unwrap(),
///     r#"{"platform":"shoptet","shop":"222651"}"#
/// );
/// assert!(!format!("{body:?}").contains("old"));
/// ```
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VendRequest {
    /// Direct invocation only: the shop's platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Direct invocation only: the shop's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shop: Option<String>,
    /// The least life, in whole seconds, the token must have left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ttl_seconds: Option<u64>,
    /// A token the platform just refused: never served again. A secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_token: Option<String>,
}

impl VendRequest {
    /// The body of `POST /tokens/{platform}/{shop}`: `min_ttl` in whole
    /// seconds, rounded up (never less than asked for).
    pub fn options(min_ttl: Option<Duration>, stale_token: Option<&str>) -> Self {
        Self {
            platform: None,
            shop: None,
            min_ttl_seconds: min_ttl
                .map(|ttl| u64::try_from(ttl.as_millis().div_ceil(1000)).unwrap_or(u64::MAX)),
            stale_token: stale_token.map(str::to_owned),
        }
    }

    /// A direct invocation's payload for `shop`.
    pub fn direct(shop: &ShopRef, min_ttl: Option<Duration>, stale_token: Option<&str>) -> Self {
        Self {
            platform: Some(shop.platform().as_str().to_owned()),
            shop: Some(shop.id()),
            ..Self::options(min_ttl, stale_token)
        }
    }

    /// Whether the payload names a shop (direct invocation) at all.
    pub fn names_a_shop(&self) -> bool {
        self.platform.is_some() || self.shop.is_some()
    }
}

impl fmt::Debug for VendRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VendRequest")
            .field("platform", &self.platform)
            .field("shop", &self.shop)
            .field("min_ttl_seconds", &self.min_ttl_seconds)
            .field(
                "stale_token",
                &self.stale_token.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_field_is_refused_and_absent_fields_are_none() {
        let read: VendRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(read, VendRequest::default());
        assert!(serde_json::from_str::<VendRequest>(r#"{"min_ttl":5}"#).is_err());
        let direct: VendRequest =
            serde_json::from_str(r#"{"platform":"shoptet","shop":"1","stale_token":"t"}"#).unwrap();
        assert!(direct.names_a_shop());
        assert_eq!(direct.stale_token.as_deref(), Some("t"));
    }
}
