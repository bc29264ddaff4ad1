//! Readers of the platforms' configuration, each over the
//! [`broker_runtime::env`] primitives.

use broker_runtime::env::{ConfigError, Env, millis, optional};

use crate::shoprenter::{self, ShoprenterApiUrl};
use crate::shoptet;
use crate::upstream::{HttpSettings, UpstreamUrl};

pub fn upstream_url(
    env: &impl Env,
    variable: &'static str,
    default: Option<&str>,
) -> Result<UpstreamUrl, ConfigError> {
    let raw = match (optional(env, variable), default) {
        (Some(value), _) => value,
        (None, Some(default)) => default.to_owned(),
        (None, None) => return Err(ConfigError::new(variable, "is required but not set")),
    };
    UpstreamUrl::parse(&raw).map_err(|problem| ConfigError::new(variable, problem.to_string()))
}

/// `UPSTREAM_CONNECT_TIMEOUT_MS` and `UPSTREAM_TIMEOUT_MS`.
pub fn http_settings(env: &impl Env) -> Result<HttpSettings, ConfigError> {
    let defaults = HttpSettings::default();
    let settings = HttpSettings {
        connect_timeout: millis(env, "UPSTREAM_CONNECT_TIMEOUT_MS", defaults.connect_timeout)?,
        request_timeout: millis(env, "UPSTREAM_TIMEOUT_MS", defaults.request_timeout)?,
    };
    if settings.connect_timeout > settings.request_timeout {
        return Err(ConfigError::new(
            "UPSTREAM_CONNECT_TIMEOUT_MS",
            "must not exceed UPSTREAM_TIMEOUT_MS",
        ));
    }
    Ok(settings)
}

/// `SHOPTET_OAUTH_URL`: the partner e-shop, whose OAuth server installs and
/// mints go to. No default: every add-on has its own.
pub fn shoptet_oauth_url(env: &impl Env) -> Result<Option<UpstreamUrl>, ConfigError> {
    optional(env, "SHOPTET_OAUTH_URL")
        .map(|_| upstream_url(env, "SHOPTET_OAUTH_URL", None))
        .transpose()
}

/// `SHOPTET_API_URL`, Shoptet's REST API by default.
pub fn shoptet_api_url(env: &impl Env) -> Result<UpstreamUrl, ConfigError> {
    upstream_url(env, "SHOPTET_API_URL", Some(shoptet::DEFAULT_API_URL))
}

/// `SHOPRENTER_OAUTH_URL`, Shoprenter's OAuth server by default.
pub fn shoprenter_oauth_url(env: &impl Env) -> Result<UpstreamUrl, ConfigError> {
    upstream_url(
        env,
        "SHOPRENTER_OAUTH_URL",
        Some(shoprenter::DEFAULT_OAUTH_URL),
    )
}

/// `SHOPRENTER_API_URL`, a template with `{shop}`; Shoprenter's by default.
pub fn shoprenter_api_url(env: &impl Env) -> Result<ShoprenterApiUrl, ConfigError> {
    let template = optional(env, "SHOPRENTER_API_URL")
        .unwrap_or_else(|| shoprenter::DEFAULT_API_URL.to_owned());
    ShoprenterApiUrl::parse(&template)
        .map_err(|problem| ConfigError::new("SHOPRENTER_API_URL", problem.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Env {
        |name: &str| {
            vars.iter()
                .find(|(var, _)| *var == name)
                .map(|(_, value)| (*value).to_owned())
        }
    }

    #[test]
    fn platform_urls_default_to_the_platforms_own() {
        let none = env(&[]);
        assert_eq!(shoptet_oauth_url(&none), Ok(None));
        assert_eq!(
            shoptet_api_url(&none).unwrap().as_str(),
            "https://api.myshoptet.com/api"
        );
        assert_eq!(
            shoprenter_oauth_url(&none).unwrap().as_str(),
            "https://oauth.app.shoprenter.net/"
        );
        assert_eq!(
            shoprenter_api_url(&none)
                .unwrap()
                .for_shop(&"demo".parse().unwrap()),
            "https://demo.api2.myshoprenter.hu/api"
        );
    }

    #[test]
    fn a_shoprenter_api_template_without_its_placeholder_names_the_variable() {
        for bad in [
            "https://api.example/api",
            "https://{shop}.example/{shop}",
            "http://{shop}.example/api",
        ] {
            let vars: &'static [(&'static str, &'static str)] =
                Box::leak(Box::new([("SHOPRENTER_API_URL", bad)]));
            let error = shoprenter_api_url(&env(vars)).unwrap_err();
            assert_eq!(error.variable, "SHOPRENTER_API_URL", "{bad}");
        }
    }
}
