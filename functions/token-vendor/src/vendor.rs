//! The token vendor's core: L1 (per instance) → L2 (shared cache) → one mint
//! per shop per refresh window, coordinated across instances by a lease.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use broker_shared::ids::{Platform, ShopRef, ShoprenterShopName, ShoptetEshopId};
use broker_shared::model::{CacheEntry, CachedToken, ShoprenterCredentials};
use broker_shared::secret::{ApiAccessToken, OAuthAccessToken};
use broker_shared::shoprenter::{self, ShoprenterClient};
use broker_shared::shoptet::{self, ShoptetClient, ShoptetError};
use broker_shared::storage::{InstallationStore, LeaseAttempt, Stores, TokenCache};
use lru::LruCache;
use tokio::time::Instant;

use crate::config::VendTiming;
use crate::error::VendError;

/// When an upstream cap refusal says nothing about when to come back.
const DEFAULT_CAP_RETRY: Duration = Duration::from_secs(60);

/// The longest life a platform's tokens have: no caller can ask for more.
fn token_lifetime(platform: Platform) -> Duration {
    match platform {
        Platform::Shoptet => shoptet::API_TOKEN_LIFETIME,
        Platform::Shoprenter => shoprenter::ACCESS_TOKEN_LIFETIME,
    }
}

#[derive(Debug, Clone)]
pub struct VendRequest {
    pub shop: ShopRef,
    /// The least remaining life the caller needs (the refresh margin applies anyway).
    pub min_ttl: Option<Duration>,
    /// A token the platform just refused: never serve it again.
    pub stale_token: Option<ApiAccessToken>,
}

/// Where a vended token came from, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    L1,
    L2,
    Minted,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::L1 => "l1",
            Source::L2 => "l2",
            Source::Minted => "minted",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Vended {
    pub token: CachedToken,
    pub source: Source,
}

pub struct TokenVendor<S, C> {
    /// `None` when no partner e-shop is configured.
    shoptet: Option<ShoptetClient>,
    shoprenter: ShoprenterClient,
    shoprenter_app_credentials: Option<ShoprenterCredentials>,
    stores: Stores<S, C>,
    timing: VendTiming,
    instance_id: String,
    leases_taken: AtomicU64,
    /// Bounded: a long-lived instance serving many shops forgets the least
    /// recently served. A slot evicted during a refresh only costs a second
    /// L2 read for that shop; the lease still allows one mint.
    shops: Mutex<LruCache<ShopRef, Arc<ShopSlot>>>,
}

/// What this instance keeps for one shop.
#[derive(Default)]
struct ShopSlot {
    remembered: Mutex<Remembered>,
    /// One L2 read or mint per shop per instance at a time; the others then
    /// find L1 filled.
    flight: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Remembered {
    /// L1: the token this instance last served for the shop.
    token: Option<CachedToken>,
    /// The installation's OAuth access token (Shoptet), as last read.
    oauth: Option<OAuthAccessToken>,
}

impl ShopSlot {
    fn remembered(&self) -> MutexGuard<'_, Remembered> {
        locked(&self.remembered)
    }

    fn usable(&self, need: &Need<'_>) -> Option<CachedToken> {
        let remembered = self.remembered();
        remembered
            .token
            .as_ref()
            .filter(|token| need.accepts(token, SystemTime::now()))
            .cloned()
    }
}

/// Every critical section leaves its data consistent, so a panic elsewhere
/// poisons nothing worth refusing a request for.
fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What makes a cached token good enough for one request.
struct Need<'a> {
    remaining: Duration,
    not: Option<&'a ApiAccessToken>,
}

impl Need<'_> {
    fn accepts(&self, token: &CachedToken, now: SystemTime) -> bool {
        token.expires_at >= now + self.remaining && self.not != Some(&token.access_token)
    }
}

impl<S: InstallationStore, C: TokenCache> TokenVendor<S, C> {
    pub fn new(
        shoptet: Option<ShoptetClient>,
        shoprenter: ShoprenterClient,
        shoprenter_app_credentials: Option<ShoprenterCredentials>,
        stores: Stores<S, C>,
        timing: VendTiming,
        remembered_shops: NonZeroUsize,
    ) -> Self {
        Self {
            shoptet,
            shoprenter,
            shoprenter_app_credentials,
            stores,
            timing,
            instance_id: format!("{:016x}", fastrand::u64(..)),
            leases_taken: AtomicU64::new(0),
            shops: Mutex::new(LruCache::new(remembered_shops)),
        }
    }

    pub async fn vend(&self, request: &VendRequest) -> Result<Vended, VendError> {
        let platform = request.shop.platform();
        let min_ttl = request.min_ttl.unwrap_or_default();
        let lifetime = token_lifetime(platform);
        if min_ttl >= lifetime {
            return Err(VendError::InvalidRequest(format!(
                "min_ttl_seconds must be below {} for {platform} tokens",
                lifetime.as_secs(),
            )));
        }
        let need = Need {
            remaining: min_ttl.max(self.timing.refresh_margin),
            not: request.stale_token.as_ref(),
        };
        let slot = self.slot(&request.shop);
        let from_l1 = |token| Vended {
            token,
            source: Source::L1,
        };
        if let Some(token) = slot.usable(&need) {
            return Ok(from_l1(token));
        }
        let _in_flight = slot.flight.lock().await;
        if let Some(token) = slot.usable(&need) {
            return Ok(from_l1(token));
        }
        let (token, source) = self.read_l2_or_mint(&request.shop, &slot, &need).await?;
        slot.remembered().token = Some(token.clone());
        Ok(Vended { token, source })
    }

    /// How many shops this instance holds state for (bounded).
    pub fn remembered_shops(&self) -> usize {
        locked(&self.shops).len()
    }

    fn slot(&self, shop: &ShopRef) -> Arc<ShopSlot> {
        let mut shops = locked(&self.shops);
        if let Some(slot) = shops.get(shop) {
            return Arc::clone(slot);
        }
        let slot = Arc::<ShopSlot>::default();
        shops.put(shop.clone(), Arc::clone(&slot));
        slot
    }

    async fn read_l2_or_mint(
        &self,
        shop: &ShopRef,
        slot: &ShopSlot,
        need: &Need<'_>,
    ) -> Result<(CachedToken, Source), VendError> {
        let give_up_at = Instant::now() + self.timing.lease_wait;
        loop {
            let now = SystemTime::now();
            let entry = self.stores.tokens.load(shop).await?.unwrap_or_default();
            if let Some(token) = entry.token.as_ref().filter(|t| need.accepts(t, now)) {
                return Ok((token.clone(), Source::L2));
            }
            check_cap(shop, &entry, now)?;
            let owner = format!(
                "{}-{}",
                self.instance_id,
                self.leases_taken.fetch_add(1, Ordering::Relaxed)
            );
            match self
                .stores
                .tokens
                .try_lease(shop, &owner, now, now + self.timing.lease)
                .await?
            {
                LeaseAttempt::Acquired(entry) => {
                    return self
                        .mint_under_lease(shop, slot, &owner, &entry, need)
                        .await;
                }
                LeaseAttempt::Busy(_) => {
                    if let Some(token) = self.await_other_refresh(shop, need, give_up_at).await? {
                        return Ok((token, Source::L2));
                    }
                    // The holder released or died: compete for the lease again.
                }
            }
        }
    }

    /// Polls the shared cache with jitter until another instance's refresh
    /// lands (`Some`), its lease ends without a usable token (`None`), or the
    /// wait bound passes (a lock timeout: `upstream_unavailable`, never a
    /// credentials error).
    async fn await_other_refresh(
        &self,
        shop: &ShopRef,
        need: &Need<'_>,
        give_up_at: Instant,
    ) -> Result<Option<CachedToken>, VendError> {
        loop {
            let pause = Duration::from_millis(fastrand::u64(20..=60));
            if Instant::now() + pause > give_up_at {
                tracing::warn!(platform = %shop.platform(), shop = %shop.id(), "gave up waiting for another instance's refresh");
                return Err(VendError::UpstreamUnavailable);
            }
            tokio::time::sleep(pause).await;
            let now = SystemTime::now();
            let entry = self.stores.tokens.load(shop).await?.unwrap_or_default();
            if let Some(token) = entry.token.filter(|t| need.accepts(t, now)) {
                return Ok(Some(token));
            }
            if entry.lease.is_none_or(|lease| lease.expires_at < now) {
                return Ok(None);
            }
        }
    }

    async fn mint_under_lease(
        &self,
        shop: &ShopRef,
        slot: &ShopSlot,
        owner: &str,
        entry: &CacheEntry,
        need: &Need<'_>,
    ) -> Result<(CachedToken, Source), VendError> {
        let now = SystemTime::now();
        // Someone may have stored a token between our read and our lease.
        if let Some(token) = entry.token.as_ref().filter(|t| need.accepts(t, now)) {
            self.stores.tokens.release(shop, owner).await?;
            return Ok((token.clone(), Source::L2));
        }
        let minted = match check_cap(shop, entry, now) {
            Ok(()) => self.mint(shop, slot, entry, now).await,
            Err(refusal) => Err(refusal),
        };
        match minted {
            Ok(token) => {
                self.share(shop, owner, entry, now, &token).await;
                Ok((token, Source::Minted))
            }
            Err(error) => {
                if let Err(release_error) = self.stores.tokens.release(shop, owner).await {
                    tracing::warn!(%release_error, "could not release the lease; it will expire");
                }
                Err(error)
            }
        }
    }

    /// Stores a minted token for every instance and releases the lease. The
    /// token is served either way: failing here only costs another mint.
    async fn share(
        &self,
        shop: &ShopRef,
        owner: &str,
        entry: &CacheEntry,
        now: SystemTime,
        token: &CachedToken,
    ) {
        let ledger: Vec<SystemTime> = match shop {
            ShopRef::Shoptet(_) => live_ledger(entry, now).chain([token.expires_at]).collect(),
            ShopRef::Shoprenter(_) => Vec::new(),
        };
        let (platform, id) = (shop.platform(), shop.id());
        match self
            .stores
            .tokens
            .store_and_release(shop, owner, token, &ledger)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(%platform, shop = %id, "lease lost while minting; token served but not shared")
            }
            Err(error) => {
                tracing::warn!(%platform, shop = %id, %error, "minted token could not be stored; served but not shared")
            }
        }
    }

    async fn mint(
        &self,
        shop: &ShopRef,
        slot: &ShopSlot,
        entry: &CacheEntry,
        now: SystemTime,
    ) -> Result<CachedToken, VendError> {
        match shop {
            ShopRef::Shoptet(eshop_id) => self.mint_shoptet(*eshop_id, slot, entry, now).await,
            ShopRef::Shoprenter(name) => self.mint_shoprenter(name).await,
        }
    }

    async fn mint_shoptet(
        &self,
        eshop_id: ShoptetEshopId,
        slot: &ShopSlot,
        entry: &CacheEntry,
        now: SystemTime,
    ) -> Result<CachedToken, VendError> {
        let client = self.shoptet.as_ref().ok_or(VendError::NotInstalled)?;
        let remembered = slot.remembered().oauth.clone();
        let oauth = match &remembered {
            Some(token) => token.clone(),
            None => self.read_oauth_token(eshop_id, slot).await?,
        };
        let mut grant = client.mint_api_token(&oauth).await;
        if remembered.is_some() && matches!(grant, Err(ShoptetError::InstallationRevoked)) {
            // A reinstall may have replaced the token we remember: re-read once.
            let fresh = self.read_oauth_token(eshop_id, slot).await?;
            if fresh == oauth {
                return Err(VendError::NotInstalled);
            }
            grant = client.mint_api_token(&fresh).await;
        }
        if matches!(grant, Err(ShoptetError::InstallationRevoked)) {
            slot.remembered().oauth = None;
        }
        let grant = grant.map_err(|error| match error {
            // Tokens minted outside the broker fill the cap: wait for ours to expire.
            ShoptetError::MaximumTokensReached { retry_after } => VendError::TokenCapReached {
                retry_after: retry_after
                    .or_else(|| {
                        let oldest_ours = live_ledger(entry, now).min()?;
                        oldest_ours.duration_since(now).ok()
                    })
                    .unwrap_or(DEFAULT_CAP_RETRY),
            },
            error => error.into(),
        })?;
        Ok(CachedToken {
            access_token: grant.access_token,
            expires_at: grant.expires_at,
            scopes: Vec::new(),
        })
    }

    async fn read_oauth_token(
        &self,
        eshop_id: ShoptetEshopId,
        slot: &ShopSlot,
    ) -> Result<OAuthAccessToken, VendError> {
        let record = self
            .stores
            .installations
            .load_shoptet_installation(eshop_id)
            .await?
            .ok_or(VendError::NotInstalled)?;
        let token = record.installation.oauth_access_token;
        slot.remembered().oauth = Some(token.clone());
        Ok(token)
    }

    async fn mint_shoprenter(&self, shop: &ShoprenterShopName) -> Result<CachedToken, VendError> {
        // A shop's own API client wins over the app-level credentials.
        let credentials = match self
            .stores
            .installations
            .load_shoprenter_credentials(shop)
            .await?
        {
            Some(credentials) => credentials,
            None => self
                .shoprenter_app_credentials
                .clone()
                .ok_or(VendError::NotInstalled)?,
        };
        let token = self.shoprenter.request_token(shop, &credentials).await?;
        Ok(CachedToken {
            access_token: token.access_token,
            expires_at: token.expires_at,
            scopes: token.scopes,
        })
    }
}

fn live_ledger(entry: &CacheEntry, now: SystemTime) -> impl Iterator<Item = SystemTime> + '_ {
    entry.ledger.iter().copied().filter(move |at| *at > now)
}

/// Never mint while Shoptet's cap of live tokens is reached: the caller
/// retries once the oldest of them expires.
fn check_cap(shop: &ShopRef, entry: &CacheEntry, now: SystemTime) -> Result<(), VendError> {
    if !matches!(shop, ShopRef::Shoptet(_)) {
        return Ok(());
    }
    let live: Vec<SystemTime> = live_ledger(entry, now).collect();
    if live.len() < shoptet::LIVE_TOKEN_CAP {
        return Ok(());
    }
    let oldest = live.iter().min().copied().unwrap_or(now);
    Err(VendError::TokenCapReached {
        retry_after: oldest.duration_since(now).unwrap_or_default(),
    })
}
