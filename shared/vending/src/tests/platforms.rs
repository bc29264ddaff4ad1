//! A platform in memory behind the minting port: Shoptet's rules the core
//! must honour (at most five live tokens per installation, revoked OAuth
//! tokens, suspended add-ons), a mint that takes time on the paused clock,
//! and counters for what was asked.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::ids::{Platform, ShoprenterShopName};
use crate::limits::{SHOPTET_API_TOKEN_LIFETIME, SHOPTET_LIVE_TOKEN_CAP};
use crate::model::{InstallationStatus, ShoprenterCredentials};
use crate::secret::{ApiAccessToken, ExposeSecret, OAuthAccessToken};
use crate::{Clock, Grant, MintError, Minter, Minting, TokioClock, VendError};

pub struct InMemoryPlatforms {
    clock: Arc<TokioClock>,
    mint_time: Mutex<Duration>,
    mints: AtomicUsize,
    cap_refusals: AtomicUsize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Live OAuth tokens, each with the expiries of the API tokens minted with it.
    installations: HashMap<String, Vec<SystemTime>>,
    mints_by_oauth: HashMap<String, usize>,
    suspended: bool,
    /// The next getAccessToken calls answered with a bare 401.
    bare_401s: usize,
}

impl InMemoryPlatforms {
    pub fn new(clock: Arc<TokioClock>) -> Arc<Self> {
        Arc::new(Self {
            clock,
            mint_time: Mutex::new(Duration::ZERO),
            mints: AtomicUsize::new(0),
            cap_refusals: AtomicUsize::new(0),
            state: Mutex::default(),
        })
    }

    pub fn grant_installation(&self, oauth: &str) {
        self.state()
            .installations
            .entry(oauth.to_owned())
            .or_default();
    }

    pub fn revoke_installation(&self, oauth: &str) {
        self.state().installations.remove(oauth);
    }

    /// The next `times` getAccessToken calls answer a 401 without an error
    /// code (as a proxy might).
    pub fn answer_bare_401(&self, times: usize) {
        self.state().bare_401s = times;
    }

    pub fn suspend(&self) {
        self.state().suspended = true;
    }

    /// Every `getAccessToken` takes this long (on the paused clock).
    pub fn take_time_to_mint(&self, took: Duration) {
        *self.mint_time.lock().unwrap() = took;
    }

    /// Tokens issued.
    pub fn mints(&self) -> usize {
        self.mints.load(Ordering::SeqCst)
    }

    pub fn mints_with(&self, oauth: &str) -> usize {
        self.state().mints_by_oauth.get(oauth).copied().unwrap_or(0)
    }

    /// `maximum_tokens_reached` answers given.
    pub fn cap_refusals(&self) -> usize {
        self.cap_refusals.load(Ordering::SeqCst)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    async fn get_access_token(&self, oauth: &OAuthAccessToken) -> Result<Grant, MintError> {
        let took = *self.mint_time.lock().unwrap();
        let sent_at = self.clock.now();
        tokio::time::sleep(took).await;
        let now = self.clock.now();
        let mut state = self.state();
        if state.bare_401s > 0 {
            state.bare_401s -= 1;
            return Err(MintError::Revoked(crate::Revocation::StatusOnly));
        }
        if state.suspended {
            return Err(MintError::Verdict(InstallationStatus::Suspended));
        }
        let oauth = oauth.expose_secret().to_owned();
        let Some(live) = state.installations.get_mut(&oauth) else {
            return Err(MintError::Revoked(crate::Revocation::ErrorCode));
        };
        live.retain(|expires_at| *expires_at > now);
        if live.len() >= SHOPTET_LIVE_TOKEN_CAP {
            self.cap_refusals.fetch_add(1, Ordering::SeqCst);
            return Err(MintError::CapReached { retry_after: None });
        }
        live.push(now + SHOPTET_API_TOKEN_LIFETIME);
        *state.mints_by_oauth.entry(oauth).or_default() += 1;
        let n = self.mints.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(Grant {
            access_token: ApiAccessToken::new(format!("shoptet-api-{n}")),
            expires_at: sent_at + SHOPTET_API_TOKEN_LIFETIME,
            scopes: Vec::new(),
        })
    }
}

impl Minter for Arc<InMemoryPlatforms> {
    fn serves(&self, platform: Platform) -> bool {
        platform == Platform::Shoptet
    }

    fn mint_shoptet<'a>(&'a self, oauth: &'a OAuthAccessToken) -> Minting<'a> {
        Box::pin(self.get_access_token(oauth))
    }

    fn mint_shoprenter<'a>(
        &'a self,
        _shop: &'a ShoprenterShopName,
        _credentials: &'a ShoprenterCredentials,
    ) -> Minting<'a> {
        Box::pin(async { Err(MintError::Refused(VendError::NotInstalled)) })
    }
}
