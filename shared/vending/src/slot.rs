//! What one instance keeps per shop (L1, the remembered OAuth token, the
//! single flight) and what makes a cached token good enough for a request.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::limits::SHOPTET_API_TOKEN_LIFETIME;
use crate::model::CachedToken;
use crate::secret::{ApiAccessToken, OAuthAccessToken};

/// What this instance keeps for one shop.
#[derive(Default)]
pub(crate) struct ShopSlot {
    remembered: Mutex<Remembered>,
    /// One L2 read or mint per shop per instance at a time; the others then
    /// find L1 filled.
    pub(crate) flight: tokio::sync::Mutex<()>,
}

#[derive(Default)]
pub(crate) struct Remembered {
    /// L1: the token this instance last served for the shop, and when it
    /// was last confirmed against L2 (or minted).
    pub(crate) token: Option<(CachedToken, Instant)>,
    /// The installation's OAuth access token (Shoptet), as last read.
    pub(crate) oauth: Option<OAuthAccessToken>,
}

impl ShopSlot {
    pub(crate) fn remembered(&self) -> MutexGuard<'_, Remembered> {
        locked(&self.remembered)
    }

    /// The L1 token, if it was confirmed within `trust` and suits `need`.
    pub(crate) fn usable(
        &self,
        need: &Need<'_>,
        trust: Duration,
        now: SystemTime,
    ) -> Option<CachedToken> {
        let remembered = self.remembered();
        remembered
            .token
            .as_ref()
            .filter(|(token, checked)| checked.elapsed() < trust && need.accepts(token, now))
            .map(|(token, _)| token.clone())
    }
}

/// Every critical section leaves its data consistent, so a panic elsewhere
/// poisons nothing worth refusing a request for.
pub(crate) fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What makes a cached token good enough for one request.
pub(crate) struct Need<'a> {
    pub(crate) remaining: Duration,
    pub(crate) not: Option<&'a ApiAccessToken>,
    /// Only a token minted after this proves what the caller needs to know.
    pub(crate) minted_after: Option<SystemTime>,
    /// No cached token will do: the caller's own mint is the proof.
    pub(crate) fresh: bool,
}

impl Need<'_> {
    pub(crate) fn accepts(&self, token: &CachedToken, now: SystemTime) -> bool {
        !self.fresh
            && token.expires_at >= now + self.remaining
            && self.not != Some(&token.access_token)
            && self
                .minted_after
                .is_none_or(|after| minted_at(token) > after)
    }
}

/// When a Shoptet token was minted, from its expiry: never later than the
/// truth, because a cached expiry is at most 1800 s after the mint
/// (`grant_token` clamps a longer `expires_in`, which Shoptet does not
/// send today *(unconfirmed for the future)*). A shorter lifetime makes a
/// token look older than it is, which only costs a confirmation a mint.
pub(crate) fn minted_at(token: &CachedToken) -> SystemTime {
    token.expires_at - SHOPTET_API_TOKEN_LIFETIME
}
