//! The token vendor's configuration, read once per cold start.

use std::num::NonZeroUsize;
use std::time::Duration;

use broker_shared::config::{self, ConfigError, Env};
use broker_shared::shoprenter::ShoprenterApiUrl;
use broker_shared::shoptet;
use broker_shared::storage::AwsStoreNames;
use broker_shared::upstream::{HttpSettings, UpstreamUrl};

/// How many shops an instance keeps tokens and OAuth tokens for, least
/// recently used evicted first: a few MB however many shops it serves.
pub const REMEMBERED_SHOPS: NonZeroUsize = NonZeroUsize::new(10_000).unwrap();

#[derive(Debug, Clone)]
pub struct VendorConfig {
    /// The partner e-shop; without it Shoptet shops are `not_installed`.
    pub shoptet_oauth_url: Option<UpstreamUrl>,
    pub shoptet_api_url: UpstreamUrl,
    pub shoprenter_oauth_url: UpstreamUrl,
    pub shoprenter_api_url: ShoprenterApiUrl,
    pub shoprenter_client_id: Option<String>,
    pub shoprenter_client_secret_id: Option<String>,
    pub stores: AwsStoreNames,
    pub http: HttpSettings,
    pub timing: VendTiming,
    /// Not read from the environment; [`REMEMBERED_SHOPS`].
    pub remembered_shops: NonZeroUsize,
}

/// How long tokens are kept before refresh, and how refreshes are coordinated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VendTiming {
    /// A cached token is served only with at least this much life left.
    pub refresh_margin: Duration,
    /// How long one instance may hold a shop's refresh lease.
    pub lease: Duration,
    /// How long a request waits for another instance's refresh.
    pub lease_wait: Duration,
}

impl Default for VendTiming {
    fn default() -> Self {
        Self {
            refresh_margin: Duration::from_secs(300),
            lease: Duration::from_secs(5),
            lease_wait: Duration::from_secs(9),
        }
    }
}

impl VendorConfig {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let http = config::http_settings(env)?;
        Ok(Self {
            shoptet_oauth_url: config::shoptet_oauth_url(env)?,
            shoptet_api_url: config::shoptet_api_url(env)?,
            shoprenter_oauth_url: config::shoprenter_oauth_url(env)?,
            shoprenter_api_url: config::shoprenter_api_url(env)?,
            shoprenter_client_id: config::optional(env, "SHOPRENTER_CLIENT_ID"),
            shoprenter_client_secret_id: config::optional(env, "SHOPRENTER_CLIENT_SECRET_ID"),
            stores: config::aws_store_names(env)?,
            timing: VendTiming::from_env(env, &http)?,
            http,
            remembered_shops: REMEMBERED_SHOPS,
        })
    }
}

impl VendTiming {
    fn from_env(env: &impl Env, http: &HttpSettings) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let seconds = |variable, default: Duration| {
            config::parsed(env, variable, default.as_secs()).map(Duration::from_secs)
        };
        let timing = Self {
            refresh_margin: seconds("REFRESH_MARGIN_SECONDS", defaults.refresh_margin)?,
            lease: seconds("LEASE_SECONDS", defaults.lease)?,
            lease_wait: config::millis(env, "LEASE_WAIT_MS", defaults.lease_wait)?,
        };
        if timing.refresh_margin >= shoptet::API_TOKEN_LIFETIME {
            return Err(ConfigError::new(
                "REFRESH_MARGIN_SECONDS",
                "must be shorter than a Shoptet token's 1800 s lifetime",
            ));
        }
        // A holder must finish its mint before its lease can be taken over.
        if timing.lease <= http.request_timeout + Duration::from_secs(1) {
            return Err(ConfigError::new(
                "LEASE_SECONDS",
                "must exceed UPSTREAM_TIMEOUT_MS by at least a second",
            ));
        }
        // Waiters must outlast a dead holder's lease to take over from it.
        if timing.lease_wait <= timing.lease {
            return Err(ConfigError::new(
                "LEASE_WAIT_MS",
                "must exceed LEASE_SECONDS",
            ));
        }
        Ok(timing)
    }
}
