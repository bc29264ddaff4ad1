//! The token client: an in-process cache of one token per shop, refreshed
//! by one vend at a time per shop.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use tokio::sync::Mutex;

use crate::error::ClientError;
use crate::shop::{Platform, Shop};
use crate::token::ShopToken;
use crate::transport::Transport;

/// How long before its expiry a cached token stops being served, unless
/// [`TokenClientBuilder::refresh_margin`] says otherwise.
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// Tokens for your shops, from the broker through a [`Transport`], cached
/// in this process.
///
/// - [`token`](Self::token) serves the cached token while it has more than
///   the refresh margin (default 60 s) of life left; otherwise it asks the
///   broker for one with at least that much life.
/// - Single-flight: however many tasks ask for the same shop at once, one
///   request per shop is in flight; the others wait for its outcome (its
///   token, or its error).
/// - When the platform refuses a token (`401`, Shoptet's `expired-token` /
///   `invalid-token`), [`report_stale`](Self::report_stale) gets its
///   replacement: one request however many callers report the same token.
/// - A failure is returned as an error, never hidden behind a cached token
///   past its margin.
///
/// Cheap to clone: clones share the cache. Keep one per process (e.g. in a
/// `static`/`OnceLock` or your Lambda handler's state) so the cache
/// survives between invocations. It holds one entry per shop asked for.
///
/// ```no_run
/// use shop_token_client::{HttpTransport, Shop, TokenClient};
///
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let client = TokenClient::new(HttpTransport::new("http://127.0.0.1:8787")?);
/// let shop = Shop::shoptet(222651)?;
/// let token = client.token(&shop).await?; // asks the broker
/// let again = client.token(&shop).await?; // from the cache
/// assert!(token.is_same_token(&again));
/// # Ok(()) }
/// ```
pub struct TokenClient<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Clone for TokenClient<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<T> {
    transport: T,
    refresh_margin: Duration,
    shops: RwLock<HashMap<Shop, Entry>>,
}

/// What the client holds for one shop.
struct Entry {
    /// Replaced only while the shop's [`Slot::flight`] is held.
    token: Option<ShopToken>,
    slot: Arc<Slot>,
}

/// One shop's single flight.
#[derive(Default)]
struct Slot {
    /// Held for the whole of a vend; holds the last vend's error (`None`
    /// after a success), for the callers that waited for it.
    flight: Mutex<Option<ClientError>>,
    /// Vends finished (successfully or not); a waiter that sees it move
    /// takes the outcome of the vend it waited for instead of asking again.
    finished: AtomicU64,
}

/// Builds a [`TokenClient`] with other settings than the defaults.
///
/// ```
/// use std::time::Duration;
/// use shop_token_client::{HttpTransport, TokenClient};
///
/// let client = TokenClient::builder(HttpTransport::new("http://127.0.0.1:8787")?)
///     .refresh_margin(Duration::from_secs(120))
///     .build();
/// assert_eq!(client.refresh_margin(), Duration::from_secs(120));
/// # Ok::<(), shop_token_client::ClientError>(())
/// ```
#[derive(Debug)]
pub struct TokenClientBuilder<T> {
    transport: T,
    refresh_margin: Duration,
}

impl<T: Transport> TokenClientBuilder<T> {
    /// How long before its expiry a cached token stops being served
    /// (default [`DEFAULT_REFRESH_MARGIN`], 60 s): the longest a request
    /// made with a token may take. Every vend asks the broker for a token
    /// with more life than this, so keep it well below a token's lifetime
    /// (Shoptet: 30 minutes).
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    /// The client.
    pub fn build(self) -> TokenClient<T> {
        TokenClient {
            inner: Arc::new(Inner {
                transport: self.transport,
                refresh_margin: self.refresh_margin,
                shops: RwLock::new(HashMap::new()),
            }),
        }
    }
}

impl<T: Transport> TokenClient<T> {
    /// A client asking the broker through `transport`, with the default
    /// refresh margin (60 s).
    pub fn new(transport: T) -> Self {
        Self::builder(transport).build()
    }

    /// A builder, for other settings than the defaults.
    pub fn builder(transport: T) -> TokenClientBuilder<T> {
        TokenClientBuilder {
            transport,
            refresh_margin: DEFAULT_REFRESH_MARGIN,
        }
    }

    /// A token for `shop` with more than the refresh margin of life left:
    /// the cached one, or a new one from the broker (one request per shop
    /// in flight, however many tasks ask).
    pub async fn token(&self, shop: &Shop) -> Result<ShopToken, ClientError> {
        let need = self.inner.refresh_margin;
        match self.fresh(shop, need) {
            Some(token) => Ok(token),
            None => self.refresh(shop, need).await,
        }
    }

    /// A token for `shop` with more than `min_ttl` (and more than the
    /// refresh margin) of life left, e.g. for a long export. The broker
    /// refuses a `min_ttl` of a token's whole lifetime or more
    /// ([`ClientError::InvalidRequest`]).
    pub async fn token_with_min_ttl(
        &self,
        shop: &Shop,
        min_ttl: Duration,
    ) -> Result<ShopToken, ClientError> {
        let need = min_ttl.max(self.inner.refresh_margin);
        match self.fresh(shop, need) {
            Some(token) => Ok(token),
            None => self.refresh(shop, need).await,
        }
    }

    /// The platform refused `stale` (`401`, Shoptet's `expired-token` or
    /// `invalid-token`): returns its replacement and caches it.
    ///
    /// If the cache already holds another fresh token for the shop (another
    /// task reported the same token first), that one is returned without a
    /// request. Otherwise the broker is asked with `stale` as
    /// `stale_token` (it never serves that token again), and the answer
    /// replaces `stale` in the cache. On an error the stale token is
    /// dropped from the cache all the same.
    pub async fn report_stale(&self, stale: &ShopToken) -> Result<ShopToken, ClientError> {
        let shop = stale.shop();
        let need = self.inner.refresh_margin;
        let slot = self.slot(shop);
        let mut last_error = slot.flight.lock().await;
        if let Some(current) = self.fresh(shop, need)
            && !current.is_same_token(stale)
        {
            return Ok(current);
        }
        let result = self.vend(shop, need, Some(stale)).await;
        self.settle(shop, Some(stale), &result);
        *last_error = result.as_ref().err().cloned();
        slot.finished.fetch_add(1, Ordering::Release);
        result
    }

    /// The token cached for `shop`, fresh or not, without asking the broker.
    pub fn cached_token(&self, shop: &Shop) -> Option<ShopToken> {
        self.read().get(shop)?.token.clone()
    }

    /// Drops the token cached for `shop`: the next [`token`](Self::token)
    /// asks the broker.
    pub fn forget(&self, shop: &Shop) {
        if let Some(entry) = self.write().get_mut(shop) {
            entry.token = None;
        }
    }

    /// The refresh margin in use.
    pub fn refresh_margin(&self) -> Duration {
        self.inner.refresh_margin
    }

    /// The transport the client asks the broker through.
    pub fn transport(&self) -> &T {
        &self.inner.transport
    }

    /// The cached token if it has more than `need` of life left: one read
    /// lock, one clock read, one reference count.
    fn fresh(&self, shop: &Shop, need: Duration) -> Option<ShopToken> {
        let shops = self.read();
        let token = shops.get(shop)?.token.as_ref()?;
        (token.expires_in_at(SystemTime::now()) > need).then(|| token.clone())
    }

    /// The slow path of [`token`](Self::token): wait for the shop's flight,
    /// then take what the vend before us brought, or vend.
    async fn refresh(&self, shop: &Shop, need: Duration) -> Result<ShopToken, ClientError> {
        let slot = self.slot(shop);
        let seen = slot.finished.load(Ordering::Acquire);
        let mut last_error = slot.flight.lock().await;
        if let Some(token) = self.fresh(shop, need) {
            return Ok(token);
        }
        if slot.finished.load(Ordering::Acquire) != seen
            && let Some(error) = last_error.as_ref()
        {
            // The vend we waited for failed: its error is ours too.
            return Err(error.clone());
        }
        let result = self.vend(shop, need, None).await;
        self.settle(shop, None, &result);
        *last_error = result.as_ref().err().cloned();
        slot.finished.fetch_add(1, Ordering::Release);
        result
    }

    async fn vend(
        &self,
        shop: &Shop,
        need: Duration,
        stale: Option<&ShopToken>,
    ) -> Result<ShopToken, ClientError> {
        let asked_at = SystemTime::now();
        let answer = self
            .inner
            .transport
            .vend(
                shop,
                Some(min_ttl_to_ask(shop.platform(), need)),
                stale.map(ShopToken::access_token),
            )
            .await?;
        ShopToken::from_answer(shop, answer, asked_at)
    }

    /// Records a vend's outcome in the cache (the shop's flight is held).
    /// A reported token's replacement replaces it only if the cache still
    /// holds it (or nothing, or an expiring token). An error
    /// saying the shop cannot have tokens, or a refusal of a reported
    /// token, drops the cached token.
    fn settle(
        &self,
        shop: &Shop,
        stale: Option<&ShopToken>,
        result: &Result<ShopToken, ClientError>,
    ) {
        let mut shops = self.write();
        let Some(entry) = shops.get_mut(shop) else {
            return;
        };
        match result {
            Ok(token) => {
                // Compare-and-swap: a report replaces only the token it
                // reports (or an expiring one); the flight being held, only
                // `forget` can have changed the entry since it was read.
                let replaceable = match (&entry.token, stale) {
                    (None, _) | (Some(_), None) => true,
                    (Some(current), Some(stale)) => {
                        current.is_same_token(stale)
                            || current.expires_in() <= self.inner.refresh_margin
                    }
                };
                if replaceable {
                    entry.token = Some(token.clone());
                }
            }
            Err(error) => {
                let unusable = matches!(error, ClientError::NotInstalled | ClientError::Suspended);
                let refused = stale.is_some_and(|stale| {
                    entry
                        .token
                        .as_ref()
                        .is_some_and(|current| current.is_same_token(stale))
                });
                if unusable || refused {
                    entry.token = None;
                }
            }
        }
    }

    fn slot(&self, shop: &Shop) -> Arc<Slot> {
        if let Some(entry) = self.read().get(shop) {
            return Arc::clone(&entry.slot);
        }
        let mut shops = self.write();
        let entry = shops.entry(shop.clone()).or_insert_with(|| Entry {
            token: None,
            slot: Arc::default(),
        });
        Arc::clone(&entry.slot)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Shop, Entry>> {
        self.inner
            .shops
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Shop, Entry>> {
        self.inner
            .shops
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The `min_ttl` to send for a token that must have more than `need` of
/// life left here: whole seconds rounded up, plus one second for the
/// broker's rounding of `expires_in` down and the trip back, unless that
/// reaches the platform's token lifetime (the broker would refuse it).
fn min_ttl_to_ask(platform: Platform, need: Duration) -> Duration {
    let whole = Duration::from_secs(need.as_millis().div_ceil(1000) as u64);
    let with_slack = whole + Duration::from_secs(1);
    if with_slack < platform.token_lifetime() {
        with_slack
    } else {
        whole
    }
}

impl<T: fmt::Debug> fmt::Debug for TokenClient<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shops = self
            .inner
            .shops
            .read()
            .map(|shops| shops.len())
            .unwrap_or_default();
        f.debug_struct("TokenClient")
            .field("transport", &self.inner.transport)
            .field("refresh_margin", &self.inner.refresh_margin)
            .field("shops", &shops)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_min_ttl_asked_covers_the_need_with_a_second_to_spare_within_the_lifetime() {
        let ask = |need_ms| min_ttl_to_ask(Platform::Shoptet, Duration::from_millis(need_ms));
        assert_eq!(ask(60_000), Duration::from_secs(61));
        assert_eq!(ask(60_001), Duration::from_secs(62));
        assert_eq!(ask(0), Duration::from_secs(1));
        assert_eq!(ask(1_799_000), Duration::from_secs(1799));
        assert_eq!(
            min_ttl_to_ask(Platform::Shoprenter, Duration::from_secs(1799)),
            Duration::from_secs(1800)
        );
    }
}
