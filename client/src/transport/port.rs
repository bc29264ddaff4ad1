//! What every transport does: one request to the token vendor, and the
//! body it sends (the protocol's request).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use shop_token_protocol::request::VendRequest;

use crate::error::ClientError;
use crate::shop::Shop;
use crate::token::VendAnswer;

/// One request to the token vendor: the broker's `GET|POST
/// /tokens/{platform}/{shop}` or a direct invocation.
///
/// [`TokenClient`](crate::TokenClient) caches and single-flights on top of
/// it; a transport only asks once and reads the answer, turning the broker's
/// error codes into [`ClientError`]s (see [`ClientError::from_code`]).
/// Wrapping a transport (to count, log or time vends) is implementing this
/// trait by forwarding:
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::time::Duration;
/// use shop_token_client::{ClientError, SecretString, Shop, Transport, VendAnswer};
///
/// struct Counting<T> {
///     inner: T,
///     vends: AtomicU64,
/// }
///
/// impl<T: Transport> Transport for Counting<T> {
///     async fn vend(
///         &self,
///         shop: &Shop,
///         min_ttl: Option<Duration>,
///         stale_token: Option<&SecretString>,
///     ) -> Result<VendAnswer, ClientError> {
///         self.vends.fetch_add(1, Ordering::Relaxed);
///         self.inner.vend(shop, min_ttl, stale_token).await
///     }
/// }
/// ```
pub trait Transport: Send + Sync + 'static {
    /// Asks the vendor for a token for `shop` with at least `min_ttl` of
    /// life left; `stale_token` is a token the platform refused (never
    /// served again).
    fn vend(
        &self,
        shop: &Shop,
        min_ttl: Option<Duration>,
        stale_token: Option<&SecretString>,
    ) -> impl Future<Output = Result<VendAnswer, ClientError>> + Send;
}

impl<T: Transport> Transport for Arc<T> {
    fn vend(
        &self,
        shop: &Shop,
        min_ttl: Option<Duration>,
        stale_token: Option<&SecretString>,
    ) -> impl Future<Output = Result<VendAnswer, ClientError>> + Send {
        (**self).vend(shop, min_ttl, stale_token)
    }
}

/// The vendor's options as JSON: `{"min_ttl_seconds"?, "stale_token"?}`.
pub(super) fn options_body(
    min_ttl: Option<Duration>,
    stale_token: Option<&SecretString>,
) -> Vec<u8> {
    let request = VendRequest::options(min_ttl, stale_token.map(|token| token.expose_secret()));
    serde_json::to_vec(&request).expect("strings and numbers always serialize")
}

/// A direct invocation's payload: the options plus `platform` and `shop`.
#[cfg(any(feature = "lambda", test))]
pub(super) fn direct_payload(
    shop: &Shop,
    min_ttl: Option<Duration>,
    stale_token: Option<&SecretString>,
) -> Vec<u8> {
    let request = VendRequest::direct(
        &shop.to_ref(),
        min_ttl,
        stale_token.map(|token| token.expose_secret()),
    );
    serde_json::to_vec(&request).expect("strings and numbers always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_carries_only_what_was_given_with_whole_seconds_rounded_up() {
        assert_eq!(options_body(None, None), b"{}");
        let stale = SecretString::from("old");
        let body = options_body(Some(Duration::from_millis(60_001)), Some(&stale));
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"min_ttl_seconds":61,"stale_token":"old"}"#
        );
        let shop = Shop::shoptet(222651).unwrap();
        let body = direct_payload(&shop, Some(Duration::from_secs(60)), None);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"platform":"shoptet","shop":"222651","min_ttl_seconds":60}"#
        );
    }
}
