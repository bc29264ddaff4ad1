//! The token vendor's configuration, read once per cold start.

use std::num::NonZeroUsize;

use broker_aws::config as store_config;
use broker_aws::storage::AwsStoreNames;
use broker_platforms::config as platform_config;
use broker_platforms::shoprenter::ShoprenterApiUrl;
use broker_platforms::upstream::{HttpSettings, UpstreamUrl};
use broker_runtime::env::{self, ConfigError, Env};
pub use broker_vending::{REMEMBERED_SHOPS, VendTiming};

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
        let http = platform_config::http_settings(env)?;
        let shoprenter_client_id = env::optional(env, "SHOPRENTER_CLIENT_ID");
        let shoprenter_client_secret_id = env::optional(env, "SHOPRENTER_CLIENT_SECRET_ID");
        if shoprenter_client_id.is_some() != shoprenter_client_secret_id.is_some() {
            return Err(ConfigError::new(
                "SHOPRENTER_CLIENT_SECRET_ID",
                "SHOPRENTER_CLIENT_ID and SHOPRENTER_CLIENT_SECRET_ID go together",
            ));
        }
        Ok(Self {
            shoptet_oauth_url: platform_config::shoptet_oauth_url(env)?,
            shoptet_api_url: platform_config::shoptet_api_url(env)?,
            shoprenter_oauth_url: platform_config::shoprenter_oauth_url(env)?,
            shoprenter_api_url: platform_config::shoprenter_api_url(env)?,
            shoprenter_client_id,
            shoprenter_client_secret_id,
            stores: store_config::aws_store_names(env)?,
            timing: VendTiming::from_env(env, http.request_timeout)?,
            http,
            remembered_shops: REMEMBERED_SHOPS,
        })
    }
}
