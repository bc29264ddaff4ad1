//! The token vendor's core: L1 (per instance) → L2 (shared cache) → one mint
//! per shop per refresh window, coordinated across instances by a lease.
//!
//! Both functions run it: the vendor to vend, the install callback to ask a
//! platform about an installation (a lifecycle event's confirmation, a
//! verification of credentials). Every `getAccessToken` goes through the
//! same lease and ledger, so confirmations never exceed Shoptet's cap and a
//! token they mint is cached and served like any other.

use broker_domain::{http, ids, lazy_secret, limits, model, secret, storage};
use broker_runtime::metrics;

mod attempt;
mod clock;
mod error;
mod port;
mod request;
mod slot;
mod timing;
mod wait;

#[cfg(test)]
mod tests;

pub use attempt::{CONFIRMATION_MINT_INTERVAL, UNSIGNED_CONFIRMATION_LIVE_LIMIT};
pub use clock::{Clock, SystemClock, TokioClock};
pub use error::VendError;
pub use port::{Grant, MintError, Minter, Minting, Revocation};
pub use request::{Candidate, Confirmation, Doubt, Provenance, Source, VendRequest, Vended};
pub use timing::{L1_TRUST, VendTiming};
pub use wait::{PollSchedule, WaitCounts};

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use lru::LruCache;
use tokio::time::Instant;

use crate::attempt::{
    Admission, Purpose, Refusal, UnderLease, check_cap, confirmation_budget, grant_token,
    live_ledger,
};
use crate::http::{ErrorCode, HttpError};
use crate::ids::{ShopRef, ShoprenterShopName, ShoptetEshopId};
use crate::lazy_secret::{LazySecret, SecretUnavailable};
use crate::metrics::{Dimension, Dimensions, Metric, Metrics, Service};
use crate::model::{
    CacheEntry, CachedToken, InstallationStatus, Lease, Origin, Registration,
    ShoprenterCredentials, StatusChange,
};
use crate::secret::OAuthAccessToken;
use crate::slot::{Need, ShopSlot, locked};
use crate::storage::{InstallationRegistry, InstallationStore, LeaseAttempt, Stores, TokenCache};
use broker_domain::events::MintOutcome;

/// How many shops an instance keeps tokens and OAuth tokens for, least
/// recently used evicted first: a few MB however many shops it serves.
pub const REMEMBERED_SHOPS: NonZeroUsize = NonZeroUsize::new(10_000).unwrap();

/// A cached token proves an event stale only when minted this long after
/// the event: `eventCreated` has whole seconds, and the platform's clock is
/// not ours.
const CONFIRMATION_SLACK: Duration = Duration::from_secs(5);

pub struct TokenVendor<S, C, R> {
    /// The platforms, behind the minting port.
    minter: Box<dyn Minter>,
    /// Token expiries, leases and ledgers are wall-clock times.
    clock: Arc<dyn Clock>,
    /// Read on the first mint (or redirect) that needs them, never at init.
    shoprenter_app_credentials: LazySecret<ShoprenterCredentials>,
    stores: Stores<S, C, R>,
    timing: VendTiming,
    instance_id: String,
    leases_taken: AtomicU64,
    /// Lease waits and their polls (the bench's reads per waiting request).
    waits: wait::WaitCounters,
    /// How long other instances' refreshes take, as waits here saw them.
    refreshes: wait::RefreshEstimate,
    /// Mints, failures, cap refusals, lease waits, store errors.
    metrics: Arc<Metrics>,
    /// Bounded: a long-lived instance serving many shops forgets the least
    /// recently served. A slot evicted during a refresh only costs a second
    /// L2 read for that shop; the lease still allows one mint.
    shops: Mutex<LruCache<ShopRef, Arc<ShopSlot>>>,
}

impl<S: InstallationStore, C: TokenCache, R: InstallationRegistry> TokenVendor<S, C, R> {
    pub fn new(
        minter: impl Minter + 'static,
        shoprenter_app_credentials: LazySecret<ShoprenterCredentials>,
        stores: Stores<S, C, R>,
        timing: VendTiming,
        remembered_shops: NonZeroUsize,
    ) -> Self {
        Self {
            minter: Box::new(minter),
            clock: Arc::new(SystemClock),
            shoprenter_app_credentials,
            stores,
            timing,
            instance_id: format!("{:016x}", fastrand::u64(..)),
            leases_taken: AtomicU64::new(0),
            waits: wait::WaitCounters::default(),
            refreshes: wait::RefreshEstimate::default(),
            metrics: Arc::new(Metrics::to_stdout(
                Service::TokenVendor,
                broker_runtime::metrics::DEFAULT_NAMESPACE,
            )),
            shops: Mutex::new(LruCache::new(remembered_shops)),
        }
    }

    /// Reads the wall clock from `clock` instead of the system's (tests on
    /// Tokio's paused clock).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Where the vendor's metrics go (stdout, `Service=token-vendor` unless
    /// set here): the function's handler shares it for its own metrics.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Counts a failed store call under its operation, for `inspect_err`.
    fn store_failed(&self, operation: &'static str) -> impl Fn(&crate::storage::StoreError) + '_ {
        move |_| {
            self.metrics.count(
                Metric::StoreErrors,
                Dimensions::of(Dimension::Operation, operation),
            )
        }
    }

    /// A confirmation's mint withheld by its budget: a refusal that carries
    /// the doubt (and, for a full ledger, the cap's retry time).
    fn confirmation_budgeted(
        &self,
        shop: &ShopRef,
        entry: &CacheEntry,
        purpose: Purpose<'_>,
        now: SystemTime,
    ) -> Result<(), Refusal> {
        let Purpose::Confirm(provenance) = purpose else {
            return Ok(());
        };
        confirmation_budget(shop, entry, provenance, now).map_err(|doubt| {
            tracing::info!(platform = %shop.platform(), shop = %shop.id(), ?provenance, doubt = doubt.as_str(), "confirmation mint withheld");
            let retry_after = live_ledger(entry, now)
                .min()
                .and_then(|oldest| oldest.duration_since(now).ok())
                .unwrap_or(limits::DEFAULT_CAP_RETRY);
            Refusal {
                error: VendError::TokenCapReached { retry_after },
                verdict: None,
                doubt: Some(doubt),
            }
        })
    }

    /// Counts a refusal to mint because Shoptet's cap of live tokens is
    /// reached (ours, or the platform's answer).
    fn cap_checked<T>(
        &self,
        shop: &ShopRef,
        checked: Result<T, VendError>,
    ) -> Result<T, VendError> {
        if let Err(VendError::TokenCapReached { .. }) = &checked {
            self.metrics
                .count(Metric::CapRefusals, Dimensions::platform(shop.platform()));
        }
        checked
    }

    pub fn stores(&self) -> &Stores<S, C, R> {
        &self.stores
    }

    pub fn timing(&self) -> &VendTiming {
        &self.timing
    }

    /// How many times this instance waited for another instance's refresh,
    /// and the token-cache reads those waits made.
    pub fn wait_counts(&self) -> WaitCounts {
        self.waits.counts()
    }

    /// The Shoprenter app's credentials (`None`: no app is configured),
    /// read from their secret on first use.
    pub async fn shoprenter_app_credentials(
        &self,
    ) -> Result<Option<&ShoprenterCredentials>, SecretUnavailable> {
        self.shoprenter_app_credentials.get().await
    }

    pub async fn vend(&self, request: &VendRequest) -> Result<Vended, VendError> {
        let platform = request.shop.platform();
        // Before any store is read: a platform this stack is not configured
        // for has no shop to look up.
        if !self.minter.serves(platform) {
            return Err(VendError::NotConfigured);
        }
        let min_ttl = request.min_ttl.unwrap_or_default();
        let lifetime = platform.token_lifetime();
        if min_ttl >= lifetime {
            return Err(VendError::InvalidRequest(format!(
                "min_ttl_seconds must be below {} for {platform} tokens",
                lifetime.as_secs(),
            )));
        }
        let need = Need {
            remaining: min_ttl.max(self.timing.refresh_margin),
            not: request.stale_token.as_ref(),
            minted_after: None,
            fresh: false,
        };
        self.serve(&request.shop, &need, Purpose::Vend)
            .await
            .map_err(|refusal| refusal.error)
    }

    /// Asks Shoptet whether the installation is live now, as of an event
    /// created at `created` (the platform's clock) and received at
    /// `received` (ours): a cached token minted after it answers without an
    /// upstream call; otherwise one `getAccessToken` under the lease, whose
    /// token is cached. Concurrent confirmations share that one mint: a
    /// token minted after an event's receipt is newer than the event
    /// whatever the clocks say.
    ///
    /// The mint is budgeted ([`CONFIRMATION_MINT_INTERVAL`] for unsigned
    /// events, and never the last free slot of the cap): when the budget
    /// withholds it, or an unsigned event meets a bare 401, the answer is
    /// [`Confirmation::Inconclusive`] and nothing may change.
    ///
    /// Why not ask the API with the cached token instead of minting: that
    /// call spends the shop's leaky bucket and one of the token's three
    /// connections, both shared with consumers, so a forged stream would
    /// cost them rate instead of slots; and a paused add-on's answer to it
    /// is not documented.
    pub async fn confirm(
        &self,
        shop: &ShopRef,
        created: SystemTime,
        received: SystemTime,
        provenance: Provenance,
    ) -> Result<Confirmation, VendError> {
        let need = Need {
            remaining: self.timing.refresh_margin,
            not: None,
            minted_after: Some((created + CONFIRMATION_SLACK).min(received)),
            fresh: false,
        };
        let refusal = match self.serve(shop, &need, Purpose::Confirm(provenance)).await {
            Ok(_) => return Ok(Confirmation::Live),
            Err(refusal) => refusal,
        };
        let unsigned = provenance == Provenance::Unsigned;
        match refusal {
            // A signed event met a full ledger: Shoptet retries it later.
            Refusal {
                doubt: Some(Doubt::ConsumerReserve),
                error,
                ..
            } if !unsigned => Err(error),
            // A bare 401 settles a signed event (the platform's own word
            // plus a refused token), never an unsigned one.
            Refusal {
                doubt: Some(doubt), ..
            } if unsigned || doubt != Doubt::UnexplainedRefusal => {
                Ok(Confirmation::Inconclusive(doubt))
            }
            // Tokens minted outside the broker fill the cap: an unsigned
            // event gets no 503 that only installed shops could cause.
            Refusal {
                error: VendError::TokenCapReached { .. },
                ..
            } if unsigned => Ok(Confirmation::Inconclusive(Doubt::CapReached)),
            Refusal {
                verdict: Some(InstallationStatus::Uninstalled),
                ..
            } => Ok(Confirmation::Uninstalled),
            Refusal {
                verdict: Some(InstallationStatus::Suspended),
                ..
            } => Ok(Confirmation::Suspended),
            Refusal {
                error: VendError::NotInstalled,
                ..
            } => Ok(Confirmation::Unknown),
            refusal => Err(refusal.error),
        }
    }

    /// Mints with credentials before they are stored: the proof they work.
    /// The token is cached (and, for Shoptet, counted in the ledger) like
    /// any other, so the first vend after it costs no second mint; it is
    /// returned for a caller that checks more with it (whose e-shop it is).
    pub async fn verify(
        &self,
        shop: &ShopRef,
        candidate: &Candidate,
    ) -> Result<CachedToken, VendError> {
        let need = Need {
            remaining: self.timing.refresh_margin,
            not: None,
            minted_after: None,
            fresh: true,
        };
        self.serve(shop, &need, Purpose::Verify(candidate))
            .await
            .map(|vended| vended.token)
            .map_err(|refusal| refusal.error)
    }

    /// Drops what this instance remembers for the shop (its installation changed).
    pub fn forget_locally(&self, shop: &ShopRef) {
        locked(&self.shops).pop(shop);
    }

    async fn serve(
        &self,
        shop: &ShopRef,
        need: &Need<'_>,
        purpose: Purpose<'_>,
    ) -> Result<Vended, Refusal> {
        let slot = self.slot(shop);
        let from_l1 = |token| Vended {
            token,
            source: Source::L1,
        };
        let trust = self.timing.l1_trust;
        if let Some(token) = slot.usable(need, trust, self.clock.now()) {
            return Ok(from_l1(token));
        }
        let _in_flight = slot.flight.lock().await;
        if let Some(token) = slot.usable(need, trust, self.clock.now()) {
            return Ok(from_l1(token));
        }
        let (token, source) = self.read_l2_or_mint(shop, &slot, need, purpose).await?;
        slot.remembered().token = Some((token.clone(), Instant::now()));
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
        purpose: Purpose<'_>,
    ) -> Result<(CachedToken, Source), Refusal> {
        let give_up_at = Instant::now() + self.timing.lease_wait;
        let mut admission = None;
        loop {
            let now = self.clock.now();
            let entry = self
                .stores
                .tokens
                .load(shop)
                .await
                .inspect_err(self.store_failed("TokenCacheRead"))?
                .unwrap_or_default();
            if let Some(token) = entry.token.as_ref().filter(|t| need.accepts(t, now)) {
                return Ok((token.clone(), Source::L2));
            }
            // The registry is read once per L2 miss, never on a cache hit.
            let admitted = match (&admission, purpose) {
                (Some(admitted), _) => admitted,
                (None, Purpose::Vend) => admission.insert(self.admit(shop, now).await?),
                (None, Purpose::Confirm(_) | Purpose::Verify(_)) => admission.insert(Admission {
                    app_credentials: false,
                    rechecking: false,
                    mint_failures: 0,
                }),
            };
            self.confirmation_budgeted(shop, &entry, purpose, now)?;
            self.cap_checked(shop, check_cap(shop, &entry, now))?;
            let owner = format!(
                "{}-{}",
                self.instance_id,
                self.leases_taken.fetch_add(1, Ordering::Relaxed)
            );
            match self
                .stores
                .tokens
                .try_lease(shop, &owner, now, now + self.timing.lease)
                .await
                .inspect_err(self.store_failed("Lease"))?
            {
                LeaseAttempt::Acquired(entry) => {
                    let attempt = UnderLease {
                        shop,
                        slot,
                        owner: &owner,
                        entry: &entry,
                        need,
                        purpose,
                        admitted,
                    };
                    let minted = self.mint_under_lease(attempt).await;
                    if matches!(purpose, Purpose::Vend) {
                        self.learn(shop, &minted, admitted).await;
                    }
                    return minted;
                }
                LeaseAttempt::Busy(busy) => {
                    let waiting_since = Instant::now();
                    let awaited = self
                        .await_other_refresh(shop, need, busy.lease.as_ref(), give_up_at)
                        .await;
                    self.lease_waited(shop, waiting_since.elapsed(), &awaited);
                    if let Some(token) = awaited? {
                        return Ok((token, Source::L2));
                    }
                    // The holder released or died: compete for the lease again.
                }
            }
        }
    }

    /// The registry's word on a vend: uninstalled shops and suspended ones
    /// (between re-checks) are refused without an upstream call or a secret
    /// read. A shop the registry does not know (installed before it
    /// existed) is served from its stored installation as before.
    async fn admit(&self, shop: &ShopRef, now: SystemTime) -> Result<Admission, Refusal> {
        let registration = self
            .stores
            .registry
            .registration(shop)
            .await
            .inspect_err(self.store_failed("RegistryRead"))?;
        let status = registration.as_ref().map(|r: &Registration| r.status);
        let mint_failures = registration.as_ref().map_or(0, |r| r.mint_failures);
        match status {
            Some(InstallationStatus::Uninstalled) => Err(VendError::NotInstalled.into()),
            Some(InstallationStatus::Suspended) => {
                let next = now + self.timing.suspended_recheck;
                let claimed = self.stores.registry.claim_recheck(shop, now, next).await;
                if claimed.inspect_err(self.store_failed("RegistryWrite"))? {
                    Ok(Admission {
                        app_credentials: true,
                        rechecking: true,
                        mint_failures,
                    })
                } else {
                    Err(VendError::AddonSuspended.into())
                }
            }
            Some(InstallationStatus::Active) => Ok(Admission {
                app_credentials: true,
                rechecking: false,
                mint_failures,
            }),
            None => Ok(Admission {
                app_credentials: false,
                rechecking: false,
                mint_failures: 0,
            }),
        }
    }

    /// Records what a vend's mint learned: an uninstall whose webhook was
    /// lost (later vends then fail fast; the secret is kept until a
    /// confirmed uninstall), a suspension, or a re-checked shop that is
    /// live again; and, for a registered shop, a refusal that is not
    /// transient or the success that ends a run of them (the registry
    /// announces `minting_failing` and `minting_recovered`). Best effort:
    /// the answer stands either way.
    async fn learn(
        &self,
        shop: &ShopRef,
        minted: &Result<(CachedToken, Source), Refusal>,
        admitted: &Admission,
    ) {
        let now = self.clock.now();
        let change = match minted {
            Ok(_) if admitted.rechecking => Some(StatusChange::to(
                InstallationStatus::Active,
                now,
                Origin::Vendor,
            )),
            Err(Refusal {
                verdict: Some(InstallationStatus::Suspended),
                ..
            }) => Some(StatusChange {
                recheck_at: Some(now + self.timing.suspended_recheck),
                ..StatusChange::to(InstallationStatus::Suspended, now, Origin::Vendor)
            }),
            Err(Refusal {
                verdict: Some(status),
                ..
            }) => Some(StatusChange::to(*status, now, Origin::Vendor)),
            _ => None,
        };
        if let Some(change) = change {
            let status = change.status;
            match self.stores.registry.record(shop, &change).await {
                Ok(_) => {
                    tracing::info!(platform = %shop.platform(), shop = %shop.id(), status = status.as_str(), "installation status learned from a mint")
                }
                Err(error) => {
                    tracing::warn!(platform = %shop.platform(), shop = %shop.id(), %error, "could not record the installation status a mint learned")
                }
            }
        }
        let outcome = match minted {
            Ok(_) if admitted.mint_failures > 0 => MintOutcome::Minted,
            // The platform refused the credentials themselves: every vend
            // will fail the same way until someone acts.
            Err(Refusal {
                error: VendError::UpstreamRejected { .. },
                verdict: None,
                ..
            }) => MintOutcome::Refused(ErrorCode::UpstreamRejected),
            _ => return,
        };
        match self.stores.registry.record_mint(shop, &outcome, now).await {
            Ok(Some(event)) => {
                tracing::warn!(platform = %shop.platform(), shop = %shop.id(), event = event.kind.as_str(), failures = ?event.minting.map(|m| m.consecutive_failures), "minting health changed")
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(platform = %shop.platform(), shop = %shop.id(), %error, "could not count the mint's outcome")
            }
        }
    }

    /// Polls the shared cache on [`PollSchedule::DEFAULT`] (after sleeping
    /// through most of the refresh `lease`'s holder is expected to take,
    /// then short polls backing off to 50 ms; its docs give the reads a
    /// wait costs) until another instance's refresh lands (`Some`), its
    /// lease ends without a usable token (`None`), or the wait bound passes
    /// (a lock timeout: `upstream_unavailable`, never a credentials error).
    async fn await_other_refresh(
        &self,
        shop: &ShopRef,
        need: &Need<'_>,
        lease: Option<&Lease>,
        give_up_at: Instant,
    ) -> Result<Option<CachedToken>, VendError> {
        self.waits.waited();
        // Every instance leases for the same time, so the expiry tells when
        // the holder took it (by the holder's clock).
        let taken_at = lease.and_then(|lease| lease.expires_at.checked_sub(self.timing.lease));
        let now = self.clock.now();
        let since_taken = taken_at.and_then(|at| now.duration_since(at).ok());
        let lease_left = lease.and_then(|lease| lease.expires_at.duration_since(now).ok());
        // Sleeping to the deadline still leaves one poll at it.
        let head_start = PollSchedule::head_start(
            self.refreshes.expected(),
            since_taken.unwrap_or_default(),
            lease_left.unwrap_or_default(),
        )
        .min(give_up_at.saturating_duration_since(Instant::now()));
        let pauses = PollSchedule::DEFAULT.pauses(head_start, fastrand::Rng::new());
        for pause in pauses {
            if Instant::now() + pause > give_up_at {
                break;
            }
            tokio::time::sleep(pause).await;
            let now = self.clock.now();
            self.waits.read();
            let entry = self.stores.tokens.load(shop).await?.unwrap_or_default();
            if let Some(token) = entry.token.filter(|t| need.accepts(t, now)) {
                if let Some(took) = taken_at.and_then(|at| now.duration_since(at).ok()) {
                    self.refreshes.observe(took);
                }
                return Ok(Some(token));
            }
            if entry.lease.is_none_or(|lease| lease.expires_at < now) {
                return Ok(None);
            }
        }
        tracing::warn!(platform = %shop.platform(), shop = %shop.id(), "gave up waiting for another instance's refresh");
        Err(VendError::UpstreamUnavailable)
    }

    async fn mint_under_lease(
        &self,
        attempt: UnderLease<'_>,
    ) -> Result<(CachedToken, Source), Refusal> {
        let UnderLease {
            shop,
            owner,
            entry,
            need,
            ..
        } = attempt;
        let now = self.clock.now();
        // Someone may have stored a token between our read and our lease.
        if let Some(token) = entry.token.as_ref().filter(|t| need.accepts(t, now)) {
            self.stores.tokens.release(shop, owner).await?;
            return Ok((token.clone(), Source::L2));
        }
        // The ledger as the lease found it decides, so instances that read
        // the same old entry cannot both spend the budget.
        if let Err(withheld) = self.confirmation_budgeted(shop, entry, attempt.purpose, now) {
            self.stores.tokens.release(shop, owner).await?;
            return Err(withheld);
        }
        let minted = match self.cap_checked(shop, check_cap(shop, entry, now)) {
            Ok(()) => {
                let started = Instant::now();
                let minted = self.mint(&attempt, now).await;
                self.minted(shop, started.elapsed(), &minted);
                minted
            }
            Err(refusal) => Err(refusal.into()),
        };
        match minted {
            Ok(token) => {
                self.share(shop, owner, entry, now, &token).await;
                Ok((token, Source::Minted))
            }
            Err(refusal) => {
                if let Err(release_error) = self.stores.tokens.release(shop, owner).await {
                    self.store_failed("Lease")(&release_error);
                    tracing::warn!(%release_error, "could not release the lease; it will expire");
                }
                Err(refusal)
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
                self.store_failed("TokenCacheWrite")(&error);
                tracing::warn!(%platform, shop = %id, %error, "minted token could not be stored; served but not shared")
            }
        }
    }

    /// Counts a mint and its latency, or writes its failure at once: an
    /// upstream that refuses or fails (not a verdict on the installation,
    /// which `learn` records, nor a cap refusal, counted apart, nor the
    /// platform's own rate limit: an answer the platform gives on purpose,
    /// passed on with its retry time, which pages no one; `VendErrors`
    /// counts it by code).
    fn minted(&self, shop: &ShopRef, took: Duration, minted: &Result<CachedToken, Refusal>) {
        let platform = || Dimensions::platform(shop.platform());
        match minted {
            Ok(_) => {
                self.metrics.count(Metric::Mints, platform());
                self.metrics.duration(Metric::MintLatency, platform(), took);
            }
            Err(Refusal { error, .. }) => match error {
                VendError::TokenCapReached { .. } => {
                    self.metrics.count(Metric::CapRefusals, platform());
                }
                VendError::UpstreamRejected { .. } | VendError::UpstreamUnavailable => {
                    let code = platform().with(Dimension::Code, error.code().as_str());
                    self.metrics.event(Metric::MintFailures, code);
                }
                _ => {}
            },
        }
    }

    /// Counts a wait for another instance's refresh and how long it took.
    fn lease_waited<T>(&self, shop: &ShopRef, took: Duration, awaited: &Result<T, VendError>) {
        let platform = || Dimensions::platform(shop.platform());
        self.metrics.count(Metric::LeaseWaits, platform());
        self.metrics
            .duration(Metric::LeaseWaitDuration, platform(), took);
        if let Err(VendError::StoreUnavailable) = awaited {
            self.metrics.count(
                Metric::StoreErrors,
                Dimensions::of(Dimension::Operation, "TokenCacheRead"),
            );
        }
    }

    async fn mint(
        &self,
        attempt: &UnderLease<'_>,
        now: SystemTime,
    ) -> Result<CachedToken, Refusal> {
        let UnderLease {
            shop,
            slot,
            entry,
            purpose,
            admitted,
            ..
        } = *attempt;
        if !self.minter.serves(shop.platform()) {
            return Err(VendError::NotConfigured.into());
        }
        match (shop, purpose) {
            (ShopRef::Shoptet(_), Purpose::Verify(Candidate::ShoptetOAuth(oauth))) => {
                let grant = self.minter.mint_shoptet(oauth).await;
                if grant.is_ok() {
                    // The installation's token from now on.
                    slot.remembered().oauth = Some(oauth.clone());
                }
                grant_token(shop, grant, entry, now)
            }
            (ShopRef::Shoptet(eshop_id), _) => self.mint_shoptet(*eshop_id, slot, entry, now).await,
            (ShopRef::Shoprenter(name), Purpose::Verify(Candidate::Shoprenter(credentials))) => {
                let grant = self.minter.mint_shoprenter(name, credentials).await;
                grant_token(shop, grant, entry, now)
            }
            (ShopRef::Shoprenter(name), _) => {
                let credentials = self
                    .shoprenter_credentials(name, admitted.app_credentials)
                    .await?;
                let grant = self.minter.mint_shoprenter(name, &credentials).await;
                grant_token(shop, grant, entry, now)
            }
        }
    }

    async fn mint_shoptet(
        &self,
        eshop_id: ShoptetEshopId,
        slot: &ShopSlot,
        entry: &CacheEntry,
        now: SystemTime,
    ) -> Result<CachedToken, Refusal> {
        let remembered = slot.remembered().oauth.clone();
        let oauth = match &remembered {
            Some(token) => token.clone(),
            None => self.read_oauth_token(eshop_id, slot).await?,
        };
        let mut grant = self.minter.mint_shoptet(&oauth).await;
        if remembered.is_some() && matches!(grant, Err(MintError::Revoked(_))) {
            // A reinstall may have replaced the token we remember: re-read once.
            let fresh = self.read_oauth_token(eshop_id, slot).await?;
            if fresh != oauth {
                grant = self.minter.mint_shoptet(&fresh).await;
            }
        }
        if matches!(grant, Err(MintError::Revoked(_))) {
            slot.remembered().oauth = None;
        }
        grant_token(&ShopRef::Shoptet(eshop_id), grant, entry, now)
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
            .await
            .inspect_err(self.store_failed("InstallationRead"))?
            .ok_or(VendError::NotInstalled)?;
        let token = record.installation.oauth_access_token;
        slot.remembered().oauth = Some(token.clone());
        Ok(token)
    }

    /// The credentials a Shoprenter mint uses: a shop's own API client wins
    /// over the app-level credentials, which serve only shops that
    /// installed the app (or were imported).
    async fn shoprenter_credentials(
        &self,
        shop: &ShoprenterShopName,
        app_credentials: bool,
    ) -> Result<ShoprenterCredentials, VendError> {
        // On a new instance the app's secret is read beside the shop's own,
        // so a cold mint waits for no more store round trips than a warm one.
        let (own, app) = tokio::join!(
            self.stores.installations.load_shoprenter_credentials(shop),
            async {
                match app_credentials {
                    true => self.shoprenter_app_credentials.get().await,
                    false => Ok(None),
                }
            },
        );
        match own.inspect_err(self.store_failed("InstallationRead"))? {
            Some(credentials) => Ok(credentials),
            None => app?.cloned().ok_or(VendError::NotInstalled),
        }
    }
}
