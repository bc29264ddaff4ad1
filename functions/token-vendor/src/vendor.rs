//! The token vendor's core: L1 (per instance) → L2 (shared cache) → one mint
//! per shop per refresh window, coordinated across instances by a lease.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use broker_shared::ids::{ShopRef, ShoprenterShopName, ShoptetEshopId};
use broker_shared::secret::{ApiAccessToken, OAuthAccessToken};
use broker_shared::shoprenter::{ShoprenterClient, ShoprenterCredentials};
use broker_shared::shoptet::{ShoptetClient, ShoptetError};
use broker_shared::storage::{
    CacheEntry, CachedToken, InstallationStore, LeaseAttempt, TokenCache,
};
use tokio::time::Instant;

use crate::config::{SHOPRENTER_TOKEN_LIFETIME, SHOPTET_TOKEN_LIFETIME, VendTiming};
use crate::error::VendError;

/// Shoptet allows at most this many live API access tokens per installation.
pub const SHOPTET_LIVE_TOKEN_CAP: usize = 5;

/// When an upstream cap refusal says nothing about when to come back.
const DEFAULT_CAP_RETRY: Duration = Duration::from_secs(60);

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
    installations: S,
    cache: C,
    timing: VendTiming,
    instance_id: String,
    leases_taken: AtomicU64,
    l1: Mutex<HashMap<ShopRef, CachedToken>>,
    flights: Mutex<HashMap<ShopRef, Arc<tokio::sync::Mutex<()>>>>,
    oauth_tokens: Mutex<HashMap<ShoptetEshopId, OAuthAccessToken>>,
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
        installations: S,
        cache: C,
        timing: VendTiming,
    ) -> Self {
        Self {
            shoptet,
            shoprenter,
            shoprenter_app_credentials,
            installations,
            cache,
            timing,
            instance_id: format!("{:016x}", fastrand::u64(..)),
            leases_taken: AtomicU64::new(0),
            l1: Mutex::default(),
            flights: Mutex::default(),
            oauth_tokens: Mutex::default(),
        }
    }

    pub async fn vend(&self, request: &VendRequest) -> Result<Vended, VendError> {
        let lifetime = match request.shop {
            ShopRef::Shoptet(_) => SHOPTET_TOKEN_LIFETIME,
            ShopRef::Shoprenter(_) => SHOPRENTER_TOKEN_LIFETIME,
        };
        let min_ttl = request.min_ttl.unwrap_or_default();
        if min_ttl >= lifetime {
            return Err(VendError::InvalidRequest(format!(
                "min_ttl_seconds must be below {} for {} tokens",
                lifetime.as_secs(),
                request.shop.platform()
            )));
        }
        let need = Need {
            remaining: min_ttl.max(self.timing.refresh_margin),
            not: request.stale_token.as_ref(),
        };
        if let Some(token) = self.usable_in_l1(&request.shop, &need) {
            return Ok(Vended {
                token,
                source: Source::L1,
            });
        }
        // One load per shop per instance at a time; the others then find L1 filled.
        let flight = self.flight(&request.shop);
        let _in_flight = flight.lock().await;
        if let Some(token) = self.usable_in_l1(&request.shop, &need) {
            return Ok(Vended {
                token,
                source: Source::L1,
            });
        }
        let (token, source) = self.read_l2_or_mint(&request.shop, &need).await?;
        self.l1
            .lock()
            .expect("l1 lock")
            .insert(request.shop.clone(), token.clone());
        Ok(Vended { token, source })
    }

    fn usable_in_l1(&self, shop: &ShopRef, need: &Need<'_>) -> Option<CachedToken> {
        let l1 = self.l1.lock().expect("l1 lock");
        l1.get(shop)
            .filter(|token| need.accepts(token, SystemTime::now()))
            .cloned()
    }

    fn flight(&self, shop: &ShopRef) -> Arc<tokio::sync::Mutex<()>> {
        let mut flights = self.flights.lock().expect("flights lock");
        flights.entry(shop.clone()).or_default().clone()
    }

    async fn read_l2_or_mint(
        &self,
        shop: &ShopRef,
        need: &Need<'_>,
    ) -> Result<(CachedToken, Source), VendError> {
        let give_up_at = Instant::now() + self.timing.lease_wait;
        loop {
            let now = SystemTime::now();
            let entry = self.cache.load(shop).await?.unwrap_or_default();
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
                .cache
                .try_lease(shop, &owner, now, now + self.timing.lease)
                .await?
            {
                LeaseAttempt::Acquired(entry) => {
                    return self.mint_under_lease(shop, &owner, &entry, need).await;
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
            let entry = self.cache.load(shop).await?.unwrap_or_default();
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
        owner: &str,
        entry: &CacheEntry,
        need: &Need<'_>,
    ) -> Result<(CachedToken, Source), VendError> {
        let now = SystemTime::now();
        // Someone may have stored a token between our read and our lease.
        let ready = entry.token.as_ref().filter(|t| need.accepts(t, now));
        let minted = match ready {
            Some(token) => Ok((token.clone(), Source::L2)),
            None => match check_cap(shop, entry, now) {
                Ok(()) => self
                    .mint(shop, entry, now)
                    .await
                    .map(|t| (t, Source::Minted)),
                Err(error) => Err(error),
            },
        };
        let (token, source) = match minted {
            Ok(minted) => minted,
            Err(error) => {
                if let Err(release_error) = self.cache.release(shop, owner).await {
                    tracing::warn!(%release_error, "could not release the lease; it will expire");
                }
                return Err(error);
            }
        };
        if source != Source::Minted {
            self.cache.release(shop, owner).await?;
            return Ok((token, source));
        }
        let ledger = match shop {
            ShopRef::Shoptet(_) => live_ledger(entry, now).chain([token.expires_at]).collect(),
            ShopRef::Shoprenter(_) => Vec::new(),
        };
        match self
            .cache
            .store_and_release(shop, owner, &token, &ledger)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(platform = %shop.platform(), shop = %shop.id(), "lease lost while minting; token served but not shared")
            }
            Err(error) => {
                tracing::warn!(platform = %shop.platform(), shop = %shop.id(), %error, "minted token could not be stored; served but not shared")
            }
        }
        Ok((token, Source::Minted))
    }

    async fn mint(
        &self,
        shop: &ShopRef,
        entry: &CacheEntry,
        now: SystemTime,
    ) -> Result<CachedToken, VendError> {
        match shop {
            ShopRef::Shoptet(eshop_id) => self.mint_shoptet(*eshop_id, entry, now).await,
            ShopRef::Shoprenter(name) => self.mint_shoprenter(name).await,
        }
    }

    async fn mint_shoptet(
        &self,
        eshop_id: ShoptetEshopId,
        entry: &CacheEntry,
        now: SystemTime,
    ) -> Result<CachedToken, VendError> {
        let client = self.shoptet.as_ref().ok_or(VendError::NotInstalled)?;
        let remembered = self
            .oauth_tokens
            .lock()
            .expect("oauth token lock")
            .get(&eshop_id)
            .cloned();
        let oauth = match remembered.clone() {
            Some(token) => token,
            None => self.read_oauth_token(eshop_id).await?,
        };
        let grant = match client.mint_api_token(&oauth).await {
            // A reinstall may have replaced the token we remember: re-read once.
            Err(ShoptetError::InstallationRevoked) if remembered.is_some() => {
                self.oauth_tokens
                    .lock()
                    .expect("oauth token lock")
                    .remove(&eshop_id);
                let fresh = self.read_oauth_token(eshop_id).await?;
                if fresh == oauth {
                    return Err(VendError::NotInstalled);
                }
                client.mint_api_token(&fresh).await
            }
            other => other,
        };
        match grant {
            Ok(grant) => Ok(CachedToken {
                access_token: grant.access_token,
                expires_at: grant.expires_at,
                scopes: Vec::new(),
            }),
            Err(ShoptetError::MaximumTokensReached { retry_after }) => {
                // Tokens minted outside the broker fill the cap: wait for ours to expire.
                let oldest_ours = live_ledger(entry, now).min();
                let retry_after = retry_after
                    .or_else(|| oldest_ours.and_then(|at| at.duration_since(now).ok()))
                    .unwrap_or(DEFAULT_CAP_RETRY);
                Err(VendError::TokenCapReached { retry_after })
            }
            Err(error) => {
                if matches!(error, ShoptetError::InstallationRevoked) {
                    self.oauth_tokens
                        .lock()
                        .expect("oauth token lock")
                        .remove(&eshop_id);
                }
                Err(error.into())
            }
        }
    }

    async fn read_oauth_token(
        &self,
        eshop_id: ShoptetEshopId,
    ) -> Result<OAuthAccessToken, VendError> {
        let record = self
            .installations
            .load_shoptet_installation(eshop_id)
            .await?
            .ok_or(VendError::NotInstalled)?;
        let token = record.installation.oauth_access_token;
        self.oauth_tokens
            .lock()
            .expect("oauth token lock")
            .insert(eshop_id, token.clone());
        Ok(token)
    }

    async fn mint_shoprenter(&self, shop: &ShoprenterShopName) -> Result<CachedToken, VendError> {
        // A shop's own API client wins over the app-level credentials.
        let credentials = match self.installations.load_shoprenter_credentials(shop).await? {
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
    if live.len() < SHOPTET_LIVE_TOKEN_CAP {
        return Ok(());
    }
    let oldest = live.iter().min().copied().unwrap_or(now);
    Err(VendError::TokenCapReached {
        retry_after: oldest.duration_since(now).unwrap_or_default(),
    })
}
