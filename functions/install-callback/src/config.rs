//! The install callback's configuration, read once per cold start.

use std::time::Duration;

use broker_aws::config::{self as store_config, ShoprenterAppSecret};
use broker_aws::storage::AwsStoreNames;
use broker_domain::storage::RecoveryWindow;
use broker_platforms::config as platform_config;
use broker_platforms::shoprenter_app;
use broker_platforms::shoptet::ShoptetConfig;
use broker_platforms::upstream::{HttpSettings, UpstreamUrl};
use broker_runtime::env::{self, ConfigError, Env};
use broker_vending::VendTiming;

use crate::caller::SourceAllowlist;

/// Shoptet gives up on an install callback after 5 s.
const SHOPTET_INSTALL_LIMIT: Duration = Duration::from_secs(5);

/// What the install callback needs whatever its stores and wherever its
/// secrets are. Reads no store or secret variable: the local server and
/// tests over SQLite need no AWS names.
#[derive(Debug, Clone)]
pub struct InstallConfig {
    /// The Shoptet add-on; `None` on a Shoprenter-only stack, whose Shoptet
    /// routes then answer `not_configured`.
    pub shoptet: Option<ShoptetAddon>,
    pub shoprenter_oauth_url: UpstreamUrl,
    pub shoprenter_hmac_max_age: Duration,
    /// Where the merchant's browser goes after a Shoprenter install
    /// (`{shop}` replaced).
    pub shoprenter_app_entry_url: Option<AppEntryUrl>,
    pub uninstall_recovery: RecoveryWindow,
    pub http: HttpSettings,
    /// The same leases as the vendor's: confirmations mint through them.
    pub timing: VendTiming,
    /// The whole install request must answer before Shoptet gives up.
    pub install_deadline: Duration,
    /// The CloudWatch namespace of the EMF metrics (`METRICS_NAMESPACE`).
    pub metrics_namespace: String,
}

/// The Shoptet add-on this stack installs: its partner e-shop's OAuth server
/// and client ID (`SHOPTET_OAUTH_URL`, `SHOPTET_CLIENT_ID`, set together or
/// not at all) and what only matters with them. Exists only whole.
#[derive(Debug, Clone)]
pub struct ShoptetAddon {
    /// The partner e-shop's OAuth server and the API.
    pub endpoints: ShoptetConfig,
    pub client_id: String,
    /// The install URL registered with Shoptet. Unset: the URL the install
    /// request arrived at (API Gateway's own host), which is what Shoptet called.
    pub redirect_uri: Option<String>,
    /// Where Shoptet's install calls may come from; `None`: anywhere.
    pub install_sources: Option<SourceAllowlist>,
}

impl ShoptetAddon {
    /// `None` when neither `SHOPTET_OAUTH_URL` nor `SHOPTET_CLIENT_ID` is
    /// set; only one of them is an error naming the other.
    pub fn from_env(env: &impl Env) -> Result<Option<Self>, ConfigError> {
        let Some((_, client_id)) = env::together(env, "SHOPTET_OAUTH_URL", "SHOPTET_CLIENT_ID")?
        else {
            return Ok(None);
        };
        let oauth_url = platform_config::shoptet_oauth_url(env)?
            .ok_or_else(|| ConfigError::new("SHOPTET_OAUTH_URL", "is required but not set"))?;
        Ok(Some(Self {
            endpoints: ShoptetConfig {
                oauth_url,
                api_url: platform_config::shoptet_api_url(env)?,
            },
            client_id,
            redirect_uri: env::optional(env, "SHOPTET_REDIRECT_URI"),
            install_sources: SourceAllowlist::parse(
                &env::optional(env, "SHOPTET_INSTALL_SOURCE_CIDRS").unwrap_or_default(),
            )
            .map_err(|problem| ConfigError::new("SHOPTET_INSTALL_SOURCE_CIDRS", problem))?,
        }))
    }
}

/// `SHOPRENTER_APP_ENTRY_URL`: https (http only for loopback), `{shop}`
/// optional. Configuration, never a request, decides where browsers go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppEntryUrl(String);

impl AppEntryUrl {
    pub fn parse(template: &str) -> Result<Self, String> {
        UpstreamUrl::parse(&template.replace(SHOP_PLACEHOLDER, "shop"))
            .map_err(|problem| problem.to_string())?;
        Ok(Self(template.to_owned()))
    }

    pub fn for_shop(&self, shop: &str) -> String {
        self.0.replace(SHOP_PLACEHOLDER, shop)
    }
}

const SHOP_PLACEHOLDER: &str = broker_platforms::shoprenter::SHOP_PLACEHOLDER;

impl InstallConfig {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let http = platform_config::http_settings(env)?;
        let install_deadline =
            env::millis(env, "INSTALL_DEADLINE_MS", Duration::from_millis(4_000))?;
        if install_deadline >= SHOPTET_INSTALL_LIMIT || install_deadline <= http.request_timeout {
            return Err(ConfigError::new(
                "INSTALL_DEADLINE_MS",
                "must be under 5000 (Shoptet's limit) and above UPSTREAM_TIMEOUT_MS",
            ));
        }
        Ok(Self {
            shoptet: ShoptetAddon::from_env(env)?,
            shoprenter_oauth_url: platform_config::shoprenter_oauth_url(env)?,
            shoprenter_hmac_max_age: env::parsed(
                env,
                "SHOPRENTER_HMAC_MAX_AGE_SECONDS",
                shoprenter_app::DEFAULT_MAX_AGE.as_secs(),
            )
            .map(Duration::from_secs)?,
            shoprenter_app_entry_url: env::optional(env, "SHOPRENTER_APP_ENTRY_URL")
                .map(|template| {
                    AppEntryUrl::parse(&template)
                        .map_err(|problem| ConfigError::new("SHOPRENTER_APP_ENTRY_URL", problem))
                })
                .transpose()?,
            uninstall_recovery: env::parsed(env, "UNINSTALL_RECOVERY_DAYS", 7u64).and_then(
                |days| {
                    RecoveryWindow::days(days).ok_or_else(|| {
                        ConfigError::new("UNINSTALL_RECOVERY_DAYS", "must be 7 to 30 (days)")
                    })
                },
            )?,
            timing: VendTiming::from_env(env, http.request_timeout)?,
            http,
            install_deadline,
            metrics_namespace: broker_runtime::metrics::namespace_from_env(env),
        })
    }
}

/// The install callback on AWS: its configuration, where the stores are,
/// and the Secrets Manager secrets it reads on first use. Exists only whole.
#[derive(Debug, Clone)]
pub struct AwsInstallConfig {
    pub install: InstallConfig,
    pub stores: AwsStoreNames,
    /// Name or ARN of the secret holding the add-on's client secret, if it has one.
    pub shoptet_client_secret_id: Option<String>,
    /// Name or ARN of the secret holding Shoptet's webhook signature key.
    pub shoptet_webhook_key_secret_id: Option<String>,
    /// The Shoprenter app: its ClientSecret signs the install/uninstall
    /// redirects, and its credentials fetch tokens.
    pub shoprenter_app: Option<ShoprenterAppSecret>,
    /// The bus e-shop webhooks are forwarded to (`EVENT_BUS_NAME`); without
    /// it `POST /shoptet/eshop-webhook` is `not_configured`.
    pub event_bus_name: Option<String>,
}

impl AwsInstallConfig {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        Ok(Self {
            install: InstallConfig::from_env(env)?,
            stores: store_config::aws_store_names(env)?,
            shoptet_client_secret_id: env::optional(env, "SHOPTET_CLIENT_SECRET_ID"),
            shoptet_webhook_key_secret_id: env::optional(env, "SHOPTET_WEBHOOK_KEY_SECRET_ID"),
            shoprenter_app: store_config::shoprenter_app(env)?,
            event_bus_name: env::optional(env, "EVENT_BUS_NAME"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use broker_aws::storage::{InstallationBackend, SecretNames};

    fn load(vars: &[(&str, &str)]) -> Result<AwsInstallConfig, ConfigError> {
        let env = |name: &str| {
            // The last setting of a variable wins.
            vars.iter()
                .rfind(|(var, _)| *var == name)
                .map(|(_, value)| (*value).to_owned())
        };
        AwsInstallConfig::from_env(&env)
    }

    const MINIMAL: [(&str, &str); 5] = [
        ("SHOPTET_OAUTH_URL", "https://12345.myshoptet.com"),
        ("SHOPTET_CLIENT_ID", "client"),
        ("TOKEN_TABLE", "tokens"),
        ("TOKEN_KEY_ID", "alias/broker/tokens"),
        ("REGISTRY_TABLE", "registry"),
    ];

    #[test]
    fn the_minimal_configuration_loads_with_documented_defaults() {
        let config = load(&MINIMAL).unwrap();
        assert_eq!(
            config.stores.installations,
            InstallationBackend::SecretsManager {
                secrets: SecretNames::default()
            }
        );
        assert_eq!(config.install.install_deadline, Duration::from_millis(4000));
        let shoptet = config.install.shoptet.as_ref().unwrap();
        assert_eq!(shoptet.redirect_uri, None);
        assert_eq!(shoptet.install_sources, None);
        assert!(config.shoprenter_app.is_none());
        assert_eq!(config.install.uninstall_recovery, RecoveryWindow::DEFAULT);
        assert_eq!(
            config.install.shoprenter_hmac_max_age,
            Duration::from_secs(300)
        );
        assert_eq!(config.install.timing, VendTiming::default());
    }

    /// What a Shoprenter-only stack sets: no Shoptet variable at all.
    const SHOPRENTER_ONLY: [(&str, &str); 5] = [
        ("SHOPRENTER_CLIENT_ID", "app"),
        (
            "SHOPRENTER_CLIENT_SECRET_ID",
            "arn:aws:secretsmanager:eu-central-1:123456789012:secret:app-AbCdEf",
        ),
        ("TOKEN_TABLE", "tokens"),
        ("TOKEN_KEY_ID", "alias/broker/tokens"),
        ("REGISTRY_TABLE", "registry"),
    ];

    #[test]
    fn a_shoprenter_only_stack_starts_without_any_shoptet_setting() {
        let config = load(&SHOPRENTER_ONLY).unwrap();
        assert!(config.install.shoptet.is_none());
        assert!(config.shoprenter_app.is_some());
    }

    #[test]
    fn empty_shoptet_settings_are_no_shoptet_addon() {
        // CloudFormation passes an empty parameter as an empty string.
        let config = load(
            &[
                &SHOPRENTER_ONLY[..],
                &[("SHOPTET_OAUTH_URL", ""), ("SHOPTET_CLIENT_ID", " ")],
            ]
            .concat(),
        )
        .unwrap();
        assert!(config.install.shoptet.is_none());
    }

    #[test]
    fn every_problem_names_its_variable() {
        let without = |skip: &str| -> Vec<(&str, &str)> {
            MINIMAL
                .iter()
                .copied()
                .filter(|(var, _)| *var != skip)
                .collect()
        };
        for (vars, variable) in [
            (without("SHOPTET_OAUTH_URL"), "SHOPTET_OAUTH_URL"),
            (without("SHOPTET_CLIENT_ID"), "SHOPTET_CLIENT_ID"),
            (without("TOKEN_TABLE"), "TOKEN_TABLE"),
            (without("TOKEN_KEY_ID"), "TOKEN_KEY_ID"),
            (
                [
                    &MINIMAL[..],
                    &[("SHOPTET_OAUTH_URL", "http://12345.myshoptet.com")],
                ]
                .concat(),
                "SHOPTET_OAUTH_URL",
            ),
            (
                [&MINIMAL[..], &[("UPSTREAM_TIMEOUT_MS", "soon")]].concat(),
                "UPSTREAM_TIMEOUT_MS",
            ),
            (
                [&MINIMAL[..], &[("INSTALL_DEADLINE_MS", "6000")]].concat(),
                "INSTALL_DEADLINE_MS",
            ),
            (
                [&MINIMAL[..], &[("SECRET_PREFIX", "no spaces")]].concat(),
                "SECRET_PREFIX",
            ),
            (
                [
                    &MINIMAL[..],
                    &[("SHOPTET_INSTALL_SOURCE_CIDRS", "78.24.15.64/26,shoptet")],
                ]
                .concat(),
                "SHOPTET_INSTALL_SOURCE_CIDRS",
            ),
            (
                [&MINIMAL[..], &[("UNINSTALL_RECOVERY_DAYS", "6")]].concat(),
                "UNINSTALL_RECOVERY_DAYS",
            ),
            (
                [&MINIMAL[..], &[("UNINSTALL_RECOVERY_DAYS", "31")]].concat(),
                "UNINSTALL_RECOVERY_DAYS",
            ),
            (
                [&MINIMAL[..], &[("SHOPRENTER_CLIENT_ID", "app")]].concat(),
                "SHOPRENTER_CLIENT_SECRET_ID",
            ),
            (
                [
                    &MINIMAL[..],
                    &[("SHOPRENTER_APP_ENTRY_URL", "http://apps.example/{shop}")],
                ]
                .concat(),
                "SHOPRENTER_APP_ENTRY_URL",
            ),
        ] {
            let error = load(&vars).unwrap_err();
            assert_eq!(error.variable, variable);
            assert!(
                error
                    .to_string()
                    .starts_with(&format!("configuration error: {variable}: "))
            );
        }
    }
}
