//! One attempt to get a token, as the core decides it: why it is asked
//! ([`Purpose`]), what the registry allows ([`Admission`]), the state a mint
//! under a held lease is decided on ([`UnderLease`]), and the rules that
//! turn a platform's grant or refusal into what the caller sees, never past
//! Shoptet's cap of live tokens.

use std::time::{Duration, SystemTime};

use crate::VendError;
use crate::ids::ShopRef;
use crate::limits;
use crate::model::{CacheEntry, CachedToken, InstallationStatus};
use crate::port::{Grant, MintError, Revocation};
use crate::request::{Candidate, Doubt, Provenance};
use crate::slot::{Need, ShopSlot, minted_at};

/// Why a token is asked for.
#[derive(Clone, Copy)]
pub(crate) enum Purpose<'a> {
    /// A consumer's vend: the registry admits the shop, and what the
    /// platform answers updates it.
    Vend,
    /// A lifecycle question: the registry is neither consulted nor updated
    /// (the caller records what it learns). Its mints are budgeted
    /// ([`confirmation_budget`]).
    Confirm(Provenance),
    /// Proof that credentials not yet stored work.
    Verify(&'a Candidate),
}

/// A refusal, with what the platform said about the installation if it did.
pub(crate) struct Refusal {
    pub(crate) error: VendError,
    pub(crate) verdict: Option<InstallationStatus>,
    /// Why the verdict (or the lack of one) settles no lifecycle question:
    /// a bare 401, or a confirmation mint its budget withheld.
    pub(crate) doubt: Option<Doubt>,
}

impl From<VendError> for Refusal {
    fn from(error: VendError) -> Self {
        Self {
            error,
            verdict: None,
            doubt: None,
        }
    }
}

impl From<crate::storage::StoreError> for Refusal {
    fn from(error: crate::storage::StoreError) -> Self {
        VendError::from(error).into()
    }
}

/// What the registry lets a vend do.
pub(crate) struct Admission {
    /// Shoprenter: the app's own credentials serve only registered shops.
    pub(crate) app_credentials: bool,
    /// A due re-check of a suspended shop was claimed.
    pub(crate) rechecking: bool,
    /// Mints refused in a row before this one (the registry's count): a
    /// success resets it, and only then costs a registry write.
    pub(crate) mint_failures: u32,
}

/// One mint under a held lease: everything it is decided on.
#[derive(Clone, Copy)]
pub(crate) struct UnderLease<'a> {
    pub(crate) shop: &'a ShopRef,
    pub(crate) slot: &'a ShopSlot,
    pub(crate) owner: &'a str,
    /// The cache entry as the lease found it (the ledger counts toward the cap).
    pub(crate) entry: &'a CacheEntry,
    pub(crate) need: &'a Need<'a>,
    pub(crate) purpose: Purpose<'a>,
    pub(crate) admitted: &'a Admission,
}

/// A platform's grant as a cached token, or the refusal with its verdict.
pub(crate) fn grant_token(
    shop: &ShopRef,
    grant: Result<Grant, MintError>,
    entry: &CacheEntry,
    now: SystemTime,
) -> Result<CachedToken, Refusal> {
    let grant = grant.map_err(|error| {
        let verdict = error.verdict();
        let doubt = matches!(error, MintError::Revoked(Revocation::StatusOnly))
            .then_some(Doubt::UnexplainedRefusal);
        let error = match error {
            // Tokens minted outside the broker fill the cap: wait for ours to expire.
            MintError::CapReached { retry_after } => VendError::TokenCapReached {
                retry_after: retry_after
                    .or_else(|| {
                        let oldest_ours = live_ledger(entry, now).min()?;
                        oldest_ours.duration_since(now).ok()
                    })
                    .unwrap_or(limits::DEFAULT_CAP_RETRY),
            },
            error => error.to_vend_error(),
        };
        Refusal {
            error,
            verdict,
            doubt,
        }
    })?;
    let expires_at = match shop {
        // `now` was taken before the request: see `minted_at`.
        ShopRef::Shoptet(_) => grant
            .expires_at
            .min(now + limits::SHOPTET_API_TOKEN_LIFETIME),
        ShopRef::Shoprenter(_) => grant.expires_at,
    };
    Ok(CachedToken {
        access_token: grant.access_token,
        expires_at,
        scopes: grant.scopes,
    })
}

pub(crate) fn live_ledger(
    entry: &CacheEntry,
    now: SystemTime,
) -> impl Iterator<Item = SystemTime> + '_ {
    entry.ledger.iter().copied().filter(move |at| *at > now)
}

/// Never mint while Shoptet's cap of live tokens is reached: the caller
/// retries once the oldest of them expires.
pub(crate) fn check_cap(
    shop: &ShopRef,
    entry: &CacheEntry,
    now: SystemTime,
) -> Result<(), VendError> {
    if !matches!(shop, ShopRef::Shoptet(_)) {
        return Ok(());
    }
    let live: Vec<SystemTime> = live_ledger(entry, now).collect();
    if live.len() < limits::SHOPTET_LIVE_TOKEN_CAP {
        return Ok(());
    }
    let oldest = live.iter().min().copied().unwrap_or(now);
    Err(VendError::TokenCapReached {
        retry_after: oldest.duration_since(now).unwrap_or_default(),
    })
}

/// How often a confirmation asked by an unsigned event may mint for one
/// shop: never within this long after any mint recorded in the shop's
/// ledger (shared by every instance through the token table). A stream of
/// forged, freshly dated events therefore costs at most one
/// `getAccessToken` per shop per minute, and the token it mints is cached
/// and served, so consumers mint less in turn.
pub const CONFIRMATION_MINT_INTERVAL: Duration = Duration::from_secs(60);

/// At most this many of the shop's tokens live after an unsigned
/// confirmation's mint. A forged stream then holds the shop at two live
/// tokens; a consumer's ordinary refresh takes a third, and two slots stay
/// free for tokens reported stale. (Allowing more only makes the stream's
/// tokens outlive the cached one, so the consumers' refresh lands on the
/// last slot.)
pub const UNSIGNED_CONFIRMATION_LIVE_LIMIT: usize = 2;

/// Whether a confirmation may mint now, decided on the shop's ledger (the
/// entry as read, and again as the lease finds it). A signed one keeps the
/// last of Shoptet's five slots free for consumers; an unsigned one mints
/// only up to [`UNSIGNED_CONFIRMATION_LIVE_LIMIT`] live tokens and no
/// sooner than [`CONFIRMATION_MINT_INTERVAL`] after the shop's newest mint.
/// Shoprenter has no cap and no lifecycle webhooks: nothing to budget.
pub(crate) fn confirmation_budget(
    shop: &ShopRef,
    entry: &CacheEntry,
    provenance: Provenance,
    now: SystemTime,
) -> Result<(), Doubt> {
    if !matches!(shop, ShopRef::Shoptet(_)) {
        return Ok(());
    }
    let live: Vec<SystemTime> = live_ledger(entry, now).collect();
    let limit = match provenance {
        Provenance::Signed => limits::SHOPTET_LIVE_TOKEN_CAP - 1,
        Provenance::Unsigned => UNSIGNED_CONFIRMATION_LIVE_LIMIT,
    };
    if live.len() + 1 > limit {
        return Err(Doubt::ConsumerReserve);
    }
    let newest_mint = live
        .iter()
        .max()
        .map(|expires_at| *expires_at - limits::SHOPTET_API_TOKEN_LIFETIME);
    // The cached token's own mint time counts too (a ledger written by an
    // older version may lack it).
    let cached_mint = entry.token.as_ref().map(minted_at);
    let newest_mint = newest_mint.max(cached_mint);
    if provenance == Provenance::Unsigned
        && newest_mint.is_some_and(|at| at + CONFIRMATION_MINT_INTERVAL > now)
    {
        return Err(Doubt::MintedRecently);
    }
    Ok(())
}
