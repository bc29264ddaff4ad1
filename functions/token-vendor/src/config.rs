//! The token vendor's configuration, read once per cold start.

use std::time::Duration;

use broker_shared::config::{self, ConfigError, Env};
use broker_shared::storage::{DEFAULT_SECRET_PREFIX, SecretNames};
use broker_shared::upstream::{HttpSettings, UpstreamUrl};

pub const DEFAULT_SHOPTET_API_URL: &str = "https://api.myshoptet.com/api";
pub const DEFAULT_SHOPRENTER_OAUTH_URL: &str = "https://oauth.app.shoprenter.net";
pub const DEFAULT_SHOPRENTER_API_URL: &str = "https://{shop}.api2.myshoprenter.hu/api";

/// Documented lifetimes: Shoptet API access tokens live 1800 s, Shoprenter
/// tokens 3600 s. A caller cannot ask for more remaining life than that.
pub const SHOPTET_TOKEN_LIFETIME: Duration = Duration::from_secs(1800);
pub const SHOPRENTER_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone)]
pub struct VendorConfig {
    /// The partner e-shop; without it Shoptet shops are `not_installed`.
    pub shoptet_oauth_url: Option<UpstreamUrl>,
    pub shoptet_api_url: UpstreamUrl,
    pub shoprenter_oauth_url: UpstreamUrl,
    /// `{shop}` is replaced by the (validated) shop name.
    pub shoprenter_api_url: String,
    pub shoprenter_client_id: Option<String>,
    pub shoprenter_client_secret_id: Option<String>,
    pub secret_names: SecretNames,
    pub token_table: String,
    pub http: HttpSettings,
    pub timing: VendTiming,
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
        let defaults = VendTiming::default();
        let timing = VendTiming {
            refresh_margin: Duration::from_secs(config::parsed(
                env,
                "REFRESH_MARGIN_SECONDS",
                defaults.refresh_margin.as_secs(),
            )?),
            lease: Duration::from_secs(config::parsed(
                env,
                "LEASE_SECONDS",
                defaults.lease.as_secs(),
            )?),
            lease_wait: config::millis(env, "LEASE_WAIT_MS", defaults.lease_wait)?,
        };
        if timing.refresh_margin >= SHOPTET_TOKEN_LIFETIME {
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
        let shoprenter_api_url = config::optional(env, "SHOPRENTER_API_URL")
            .unwrap_or_else(|| DEFAULT_SHOPRENTER_API_URL.to_owned());
        UpstreamUrl::parse(&shoprenter_api_url.replace("{shop}", "shop"))
            .map_err(|problem| ConfigError::new("SHOPRENTER_API_URL", problem.to_string()))?;
        let secret_prefix = config::optional(env, "SECRET_PREFIX")
            .unwrap_or_else(|| DEFAULT_SECRET_PREFIX.to_owned());
        Ok(Self {
            shoptet_oauth_url: config::optional(env, "SHOPTET_OAUTH_URL")
                .map(|_| config::upstream_url(env, "SHOPTET_OAUTH_URL", None))
                .transpose()?,
            shoptet_api_url: config::upstream_url(
                env,
                "SHOPTET_API_URL",
                Some(DEFAULT_SHOPTET_API_URL),
            )?,
            shoprenter_oauth_url: config::upstream_url(
                env,
                "SHOPRENTER_OAUTH_URL",
                Some(DEFAULT_SHOPRENTER_OAUTH_URL),
            )?,
            shoprenter_api_url,
            shoprenter_client_id: config::optional(env, "SHOPRENTER_CLIENT_ID"),
            shoprenter_client_secret_id: config::optional(env, "SHOPRENTER_CLIENT_SECRET_ID"),
            secret_names: SecretNames::new(&secret_prefix)
                .map_err(|problem| ConfigError::new("SECRET_PREFIX", problem))?,
            token_table: config::required(env, "TOKEN_TABLE")?,
            http,
            timing,
        })
    }
}
