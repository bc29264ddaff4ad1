//! The token vendor's configuration, read once per cold start.

use std::num::NonZeroUsize;

use broker_shared::config::{self, ConfigError, Env};
use broker_shared::shoprenter::ShoprenterApiUrl;
use broker_shared::storage::AwsStoreNames;
use broker_shared::upstream::{HttpSettings, UpstreamUrl};
pub use broker_shared::vending::{REMEMBERED_SHOPS, VendTiming};

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

impl VendorConfig {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let http = config::http_settings(env)?;
        let shoprenter_client_id = config::optional(env, "SHOPRENTER_CLIENT_ID");
        let shoprenter_client_secret_id = config::optional(env, "SHOPRENTER_CLIENT_SECRET_ID");
        if shoprenter_client_id.is_some() != shoprenter_client_secret_id.is_some() {
            return Err(ConfigError::new(
                "SHOPRENTER_CLIENT_SECRET_ID",
                "SHOPRENTER_CLIENT_ID and SHOPRENTER_CLIENT_SECRET_ID go together",
            ));
        }
        Ok(Self {
            shoptet_oauth_url: config::shoptet_oauth_url(env)?,
            shoptet_api_url: config::shoptet_api_url(env)?,
            shoprenter_oauth_url: config::shoprenter_oauth_url(env)?,
            shoprenter_api_url: config::shoprenter_api_url(env)?,
            shoprenter_client_id,
            shoprenter_client_secret_id,
            stores: config::aws_store_names(env)?,
            timing: VendTiming::from_env(env, &http)?,
            http,
            remembered_shops: REMEMBERED_SHOPS,
        })
    }
}
