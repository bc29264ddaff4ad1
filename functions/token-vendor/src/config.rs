//! The token vendor's configuration, read once per cold start.

use std::num::NonZeroUsize;

use broker_aws::config::{self as store_config, ShoprenterAppSecret};
use broker_aws::storage::AwsStoreNames;
use broker_platforms::config as platform_config;
use broker_platforms::shoprenter::ShoprenterApiUrl;
use broker_platforms::upstream::{HttpSettings, UpstreamUrl};
use broker_runtime::env::{ConfigError, Env};
use broker_runtime::metrics;
pub use broker_vending::{REMEMBERED_SHOPS, VendTiming};

/// What the vendor needs whatever its stores: the platforms, timeouts and
/// timing. Reads no store or secret variable, so the local server and tests
/// over SQLite need no AWS names.
#[derive(Debug, Clone)]
pub struct VendorConfig {
    /// The partner e-shop; without it (a Shoprenter-only stack) a Shoptet
    /// vend is `not_configured`.
    pub shoptet_oauth_url: Option<UpstreamUrl>,
    pub shoptet_api_url: UpstreamUrl,
    pub shoprenter_oauth_url: UpstreamUrl,
    pub shoprenter_api_url: ShoprenterApiUrl,
    pub http: HttpSettings,
    pub timing: VendTiming,
    /// The CloudWatch namespace of the EMF metrics (`METRICS_NAMESPACE`).
    pub metrics_namespace: String,
    /// Not read from the environment; [`REMEMBERED_SHOPS`].
    pub remembered_shops: NonZeroUsize,
}

impl VendorConfig {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let http = platform_config::http_settings(env)?;
        Ok(Self {
            shoptet_oauth_url: platform_config::shoptet_oauth_url(env)?,
            shoptet_api_url: platform_config::shoptet_api_url(env)?,
            shoprenter_oauth_url: platform_config::shoprenter_oauth_url(env)?,
            shoprenter_api_url: platform_config::shoprenter_api_url(env)?,
            timing: VendTiming::from_env(env, http.request_timeout)?,
            http,
            metrics_namespace: metrics::namespace_from_env(env),
            remembered_shops: REMEMBERED_SHOPS,
        })
    }
}

/// The vendor on AWS: its configuration, where the stores are, and the
/// Shoprenter app's secret if an app is configured. Exists only whole.
#[derive(Debug, Clone)]
pub struct AwsVendorConfig {
    pub vendor: VendorConfig,
    pub stores: AwsStoreNames,
    pub shoprenter_app: Option<ShoprenterAppSecret>,
}

impl AwsVendorConfig {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        Ok(Self {
            vendor: VendorConfig::from_env(env)?,
            stores: store_config::aws_store_names(env)?,
            shoprenter_app: store_config::shoprenter_app(env)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_credentials_without_their_secret_name_the_variable_at_start_up() {
        let env = |name: &str| {
            [
                ("TOKEN_TABLE", "tokens"),
                ("TOKEN_KEY_ID", "alias/broker/tokens"),
                ("REGISTRY_TABLE", "registry"),
                ("SHOPRENTER_CLIENT_ID", "app"),
            ]
            .iter()
            .find(|(variable, _)| *variable == name)
            .map(|(_, value)| (*value).to_owned())
        };

        let error = AwsVendorConfig::from_env(&env).unwrap_err();

        assert_eq!(error.variable, "SHOPRENTER_CLIENT_SECRET_ID");
    }

    #[test]
    fn the_vendors_own_configuration_names_no_table() {
        let config = VendorConfig::from_env(&|_: &str| None).unwrap();
        assert_eq!(config.shoptet_oauth_url, None);
        assert_eq!(config.timing, VendTiming::default());
    }
}
