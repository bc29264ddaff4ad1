//! Reading configuration from the environment. Every problem names its
//! variable, so a bad deployment fails at start-up with one clear line.

use std::str::FromStr;
use std::time::Duration;

use crate::shoprenter::{self, ShoprenterApiUrl};
use crate::shoptet;
use crate::storage::{AwsStoreNames, DEFAULT_SECRET_PREFIX, InstallationBackend, SecretNames};
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

/// The installations' store ([`installation_backend`]), `TOKEN_TABLE` and
/// `REGISTRY_TABLE`.
pub fn aws_store_names(env: &impl Env) -> Result<AwsStoreNames, ConfigError> {
    Ok(AwsStoreNames {
        installations: installation_backend(env)?,
        token_table: required(env, "TOKEN_TABLE")?,
        registry_table: required(env, "REGISTRY_TABLE")?,
    })
}

/// `INSTALLATION_STORE`, spelled as the template's `InstallationStore`
/// parameter: `SecretsManager` (the default) with `SECRET_PREFIX` (default
/// `shop-token-broker/`), or `DynamoDB` with `INSTALLATION_TABLE` and
/// `INSTALLATION_KEY_ID` (both required). Each backend reads only its own
/// variables.
pub fn installation_backend(env: &impl Env) -> Result<InstallationBackend, ConfigError> {
    match optional(env, "INSTALLATION_STORE").as_deref() {
        None | Some("SecretsManager") => secrets_manager_backend(env),
        Some("DynamoDB") => dynamodb_backend(env),
        Some(other) => Err(ConfigError::new(
            "INSTALLATION_STORE",
            format!("{other:?} is neither SecretsManager nor DynamoDB"),
        )),
    }
}

/// The Secrets Manager installation store: `SECRET_PREFIX` (default
/// `shop-token-broker/`).
pub fn secrets_manager_backend(env: &impl Env) -> Result<InstallationBackend, ConfigError> {
    let prefix = optional(env, "SECRET_PREFIX").unwrap_or_else(|| DEFAULT_SECRET_PREFIX.to_owned());
    Ok(InstallationBackend::SecretsManager {
        secrets: SecretNames::new(&prefix)
            .map_err(|problem| ConfigError::new("SECRET_PREFIX", problem))?,
    })
}

/// The DynamoDB installation store: `INSTALLATION_TABLE` and
/// `INSTALLATION_KEY_ID`, both required.
pub fn dynamodb_backend(env: &impl Env) -> Result<InstallationBackend, ConfigError> {
    Ok(InstallationBackend::DynamoDb {
        table: required(env, "INSTALLATION_TABLE")?,
        key_id: required(env, "INSTALLATION_KEY_ID")?,
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
        assert_eq!(
            names.installations,
            InstallationBackend::SecretsManager {
                secrets: SecretNames::default()
            }
        );
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

    #[test]
    fn installations_stay_in_secrets_manager_under_the_prefix_unless_told_otherwise() {
        for store in [
            &[][..],
            &[("INSTALLATION_STORE", "")],
            &[("INSTALLATION_STORE", "SecretsManager")],
        ] {
            let vars: &'static [(&'static str, &'static str)] =
                Box::leak(Box::new([store, &[("SECRET_PREFIX", "acme/")]].concat()));
            assert_eq!(
                installation_backend(&env(vars)),
                Ok(InstallationBackend::SecretsManager {
                    secrets: SecretNames::new("acme/").unwrap()
                }),
                "{store:?}"
            );
        }
    }

    #[test]
    fn the_dynamodb_store_takes_its_table_and_key_and_no_secret_prefix() {
        let read = std::cell::RefCell::new(Vec::new());
        let vars = [
            ("INSTALLATION_STORE", "DynamoDB"),
            ("INSTALLATION_TABLE", "stack-InstallationTable-ABC"),
            (
                "INSTALLATION_KEY_ID",
                "1234abcd-12ab-34cd-56ef-1234567890ab",
            ),
            ("SECRET_PREFIX", "ignored/"),
        ];
        let recording = |name: &str| {
            read.borrow_mut().push(name.to_owned());
            vars.iter()
                .find(|(var, _)| *var == name)
                .map(|(_, value)| (*value).to_owned())
        };
        assert_eq!(
            installation_backend(&recording),
            Ok(InstallationBackend::DynamoDb {
                table: "stack-InstallationTable-ABC".to_owned(),
                key_id: "1234abcd-12ab-34cd-56ef-1234567890ab".to_owned(),
            })
        );
        assert!(!read.borrow().iter().any(|name| name == "SECRET_PREFIX"));
    }

    #[test]
    fn the_dynamodb_store_without_its_table_or_key_names_the_missing_variable() {
        let error = installation_backend(&env(&[
            ("INSTALLATION_STORE", "DynamoDB"),
            ("INSTALLATION_KEY_ID", "key"),
        ]))
        .unwrap_err();
        assert_eq!(error.variable, "INSTALLATION_TABLE");
        let error = installation_backend(&env(&[
            ("INSTALLATION_STORE", "DynamoDB"),
            ("INSTALLATION_TABLE", "table"),
            ("INSTALLATION_KEY_ID", "  "),
        ]))
        .unwrap_err();
        assert_eq!(error.variable, "INSTALLATION_KEY_ID");
    }

    #[test]
    fn an_unknown_installation_store_is_refused_by_name_and_spelling_counts() {
        for store in ["Dynamo", "dynamodb", "DYNAMODB", "secretsmanager", "S3"] {
            let vars: &'static [(&'static str, &'static str)] = Box::leak(Box::new([
                ("INSTALLATION_STORE", store),
                ("INSTALLATION_TABLE", "table"),
                ("INSTALLATION_KEY_ID", "key"),
            ]));
            let error = installation_backend(&env(vars)).unwrap_err();
            assert_eq!(error.variable, "INSTALLATION_STORE", "{store}");
            assert!(error.problem.contains(store), "{error}");
        }
    }

    #[test]
    fn a_bad_installation_store_fails_the_whole_store_configuration() {
        let error = aws_store_names(&env(&[
            ("TOKEN_TABLE", "t"),
            ("REGISTRY_TABLE", "r"),
            ("INSTALLATION_STORE", "DynamoDB"),
        ]))
        .unwrap_err();
        assert_eq!(error.variable, "INSTALLATION_TABLE");
    }
}
