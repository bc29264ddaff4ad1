//! How the client reaches the token vendor.

mod http;
#[cfg(feature = "lambda")]
mod lambda;
#[cfg(feature = "http")]
mod sigv4;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::error::ClientError;
use crate::shop::Shop;
use crate::token::VendAnswer;

pub use self::http::HttpTransport;
#[cfg(feature = "lambda")]
pub use self::lambda::LambdaTransport;
#[cfg(feature = "http")]
pub use self::sigv4::SigV4Signer;

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

/// The vendor's options as JSON: `{"min_ttl_seconds"?, "stale_token"?}`,
/// plus `platform` and `shop` for a direct invocation.
#[derive(Serialize)]
struct VendBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shop: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_ttl_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stale_token: Option<&'a str>,
}

impl<'a> VendBody<'a> {
    fn new(min_ttl: Option<Duration>, stale_token: Option<&'a SecretString>) -> Self {
        Self {
            platform: None,
            shop: None,
            // Whole seconds, rounded up: never less than asked for.
            min_ttl_seconds: min_ttl.map(|ttl| ttl.as_millis().div_ceil(1000) as u64),
            stale_token: stale_token.map(|token| token.expose_secret()),
        }
    }

    #[cfg(any(feature = "lambda", test))]
    fn for_direct_invocation(
        shop: &'a Shop,
        min_ttl: Option<Duration>,
        stale_token: Option<&'a SecretString>,
    ) -> Self {
        Self {
            platform: Some(shop.platform().as_str()),
            shop: Some(shop.id()),
            ..Self::new(min_ttl, stale_token)
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("strings and numbers always serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_carries_only_what_was_given_with_whole_seconds_rounded_up() {
        assert_eq!(VendBody::new(None, None).to_bytes(), b"{}");
        let stale = SecretString::from("old");
        let body = VendBody::new(Some(Duration::from_millis(60_001)), Some(&stale));
        assert_eq!(
            String::from_utf8(body.to_bytes()).unwrap(),
            r#"{"min_ttl_seconds":61,"stale_token":"old"}"#
        );
        let shop = Shop::shoptet(222651).unwrap();
        let body = VendBody::for_direct_invocation(&shop, Some(Duration::from_secs(60)), None);
        assert_eq!(
            String::from_utf8(body.to_bytes()).unwrap(),
            r#"{"platform":"shoptet","shop":"222651","min_ttl_seconds":60}"#
        );
    }
}
