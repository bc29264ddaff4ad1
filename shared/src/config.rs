//! Reading configuration from the environment. Every problem names its
//! variable, so a bad deployment fails at start-up with one clear line.

use std::str::FromStr;
use std::time::Duration;

use crate::shoprenter::{self, ShoprenterApiUrl};
use crate::shoptet;
use crate::storage::{AwsStoreNames, DEFAULT_SECRET_PREFIX, SecretNames};
use crate::upstream::{HttpSettings, UpstreamUrl};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration error: {variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

impl ConfigError {
    pub fn new(variable: &'static str, problem: impl Into<String>) -> Self {
        Self {
            variable,
            problem: problem.into(),
        }
    }
}

/// Where configuration comes from: the process environment in production, a
/// map in tests and in the local server.
pub trait Env {
    fn get(&self, variable: &str) -> Option<String>;
}

pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, variable: &str) -> Option<String> {
        std::env::var(variable).ok()
    }
}

impl<F: Fn(&str) -> Option<String>> Env for F {
    fn get(&self, variable: &str) -> Option<String> {
        self(variable)
    }
}

/// Empty values count as unset: SAM passes empty strings for blank parameters.
pub fn optional(env: &impl Env, variable: &'static str) -> Option<String> {
    env.get(variable)
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

pub fn required(env: &impl Env, variable: &'static str) -> Result<String, ConfigError> {
    optional(env, variable).ok_or_else(|| ConfigError::new(variable, "is required but not set"))
}

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

pub fn parsed<T: FromStr>(
    env: &impl Env,
    variable: &'static str,
    default: T,
) -> Result<T, ConfigError> {
    match optional(env, variable) {
        None => Ok(default),
        Some(raw) => raw
            .parse()
            .map_err(|_| ConfigError::new(variable, format!("{raw:?} is not a valid value"))),
    }
}

pub fn millis(
    env: &impl Env,
    variable: &'static str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let ms = parsed(env, variable, default.as_millis() as u64)?;
    if ms == 0 {
        return Err(ConfigError::new(variable, "must be greater than zero"));
    }
    Ok(Duration::from_millis(ms))
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

/// `SECRET_PREFIX` (default `shop-token-broker/`), `TOKEN_TABLE` and
/// `REGISTRY_TABLE`.
pub fn aws_store_names(env: &impl Env) -> Result<AwsStoreNames, ConfigError> {
    let prefix = optional(env, "SECRET_PREFIX").unwrap_or_else(|| DEFAULT_SECRET_PREFIX.to_owned());
    Ok(AwsStoreNames {
        secrets: SecretNames::new(&prefix)
            .map_err(|problem| ConfigError::new("SECRET_PREFIX", problem))?,
        token_table: required(env, "TOKEN_TABLE")?,
        registry_table: required(env, "REGISTRY_TABLE")?,
    })
}

/// Start-up failures end the process with one readable line (not a `Debug`
/// dump), which is what Lambda shows for a failed init.
pub fn or_exit<T, E: std::fmt::Display>(result: Result<T, E>) -> T {
    result.unwrap_or_else(|error| {
        eprintln!("{error}");
        std::process::exit(1)
    })
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

    #[test]
    fn store_names_need_a_table_and_a_valid_prefix() {
        assert_eq!(
            aws_store_names(&env(&[])).unwrap_err().variable,
            "TOKEN_TABLE"
        );
        assert_eq!(
            aws_store_names(&env(&[("TOKEN_TABLE", "tokens")]))
                .unwrap_err()
                .variable,
            "REGISTRY_TABLE"
        );
        let names =
            aws_store_names(&env(&[("TOKEN_TABLE", "tokens"), ("REGISTRY_TABLE", "r")])).unwrap();
        assert_eq!(names.secrets.prefix(), "shop-token-broker/");
        assert_eq!(
            aws_store_names(&env(&[
                ("TOKEN_TABLE", "t"),
                ("REGISTRY_TABLE", "r"),
                ("SECRET_PREFIX", "a b")
            ]))
            .unwrap_err()
            .variable,
            "SECRET_PREFIX"
        );
    }
}
