//! The install callback's configuration, read once per cold start.

use std::time::Duration;

use broker_shared::config::{self, ConfigError, Env};
use broker_shared::shoptet::ShoptetConfig;
use broker_shared::storage::AwsStoreNames;
use broker_shared::upstream::{HttpSettings, UpstreamUrl};

/// Shoptet gives up on an install callback after 5 s.
const SHOPTET_INSTALL_LIMIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct InstallConfig {
    /// The partner e-shop's OAuth server (required) and the API.
    pub shoptet: ShoptetConfig,
    pub shoptet_client_id: String,
    /// Name or ARN of the secret holding the add-on's client secret, if it has one.
    pub shoptet_client_secret_id: Option<String>,
    /// The install URL registered with Shoptet. Unset: the URL the install
    /// request arrived at (API Gateway's own host), which is what Shoptet called.
    pub shoptet_redirect_uri: Option<String>,
    pub shoprenter_oauth_url: UpstreamUrl,
    pub stores: AwsStoreNames,
    pub http: HttpSettings,
    /// The whole install request must answer before Shoptet gives up.
    pub install_deadline: Duration,
}

impl InstallConfig {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let http = config::http_settings(env)?;
        let install_deadline =
            config::millis(env, "INSTALL_DEADLINE_MS", Duration::from_millis(4_000))?;
        if install_deadline >= SHOPTET_INSTALL_LIMIT || install_deadline <= http.request_timeout {
            return Err(ConfigError::new(
                "INSTALL_DEADLINE_MS",
                "must be under 5000 (Shoptet's limit) and above UPSTREAM_TIMEOUT_MS",
            ));
        }
        let oauth_url = config::shoptet_oauth_url(env)?
            .ok_or_else(|| ConfigError::new("SHOPTET_OAUTH_URL", "is required but not set"))?;
        Ok(Self {
            shoptet: ShoptetConfig {
                oauth_url,
                api_url: config::shoptet_api_url(env)?,
            },
            shoptet_client_id: config::required(env, "SHOPTET_CLIENT_ID")?,
            shoptet_client_secret_id: config::optional(env, "SHOPTET_CLIENT_SECRET_ID"),
            shoptet_redirect_uri: config::optional(env, "SHOPTET_REDIRECT_URI"),
            shoprenter_oauth_url: config::shoprenter_oauth_url(env)?,
            stores: config::aws_store_names(env)?,
            http,
            install_deadline,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<InstallConfig, ConfigError> {
        let env = |name: &str| {
            // The last setting of a variable wins.
            vars.iter()
                .rfind(|(var, _)| *var == name)
                .map(|(_, value)| (*value).to_owned())
        };
        InstallConfig::from_env(&env)
    }

    const MINIMAL: [(&str, &str); 3] = [
        ("SHOPTET_OAUTH_URL", "https://12345.myshoptet.com"),
        ("SHOPTET_CLIENT_ID", "client"),
        ("TOKEN_TABLE", "tokens"),
    ];

    #[test]
    fn the_minimal_configuration_loads_with_documented_defaults() {
        let config = load(&MINIMAL).unwrap();
        assert_eq!(config.stores.secrets.prefix(), "shop-token-broker/");
        assert_eq!(config.install_deadline, Duration::from_millis(4000));
        assert_eq!(config.shoptet_redirect_uri, None);
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
