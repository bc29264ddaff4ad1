//! Where the broker keeps its data on AWS, read from the environment over
//! the [`broker_runtime::env`] primitives.

use broker_runtime::env::{ConfigError, Env, optional, required, together};

use crate::storage::{AwsStoreNames, DEFAULT_SECRET_PREFIX, InstallationBackend, SecretNames};

/// The installations' store ([`installation_backend`]), `TOKEN_TABLE`,
/// `TOKEN_KEY_ID` (the KMS key the cached tokens are sealed under: both
/// installation stores have one) and `REGISTRY_TABLE`.
pub fn aws_store_names(env: &impl Env) -> Result<AwsStoreNames, ConfigError> {
    Ok(AwsStoreNames {
        installations: installation_backend(env)?,
        token_table: required(env, "TOKEN_TABLE")?,
        token_key_id: required(env, "TOKEN_KEY_ID")?,
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

/// The Shoprenter app's client id and the Secrets Manager secret that holds
/// its client secret: a configuration that exists whole or not at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShoprenterAppSecret {
    pub client_id: String,
    /// The secret's name or ARN (`SHOPRENTER_CLIENT_SECRET_ID`).
    pub secret_id: String,
}

impl ShoprenterAppSecret {
    /// The variable that names the secret: what an operator fixes when it
    /// cannot be read.
    pub const VARIABLE: &'static str = "SHOPRENTER_CLIENT_SECRET_ID";
}

/// `SHOPRENTER_CLIENT_ID` and `SHOPRENTER_CLIENT_SECRET_ID`, both or neither.
pub fn shoprenter_app(env: &impl Env) -> Result<Option<ShoprenterAppSecret>, ConfigError> {
    Ok(
        together(env, "SHOPRENTER_CLIENT_ID", ShoprenterAppSecret::VARIABLE)?.map(
            |(client_id, secret_id)| ShoprenterAppSecret {
                client_id,
                secret_id,
            },
        ),
    )
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
    fn store_names_need_the_tables_the_token_key_and_a_valid_prefix() {
        assert_eq!(
            aws_store_names(&env(&[])).unwrap_err().variable,
            "TOKEN_TABLE"
        );
        assert_eq!(
            aws_store_names(&env(&[("TOKEN_TABLE", "tokens")]))
                .unwrap_err()
                .variable,
            "TOKEN_KEY_ID"
        );
        assert_eq!(
            aws_store_names(&env(&[("TOKEN_TABLE", "tokens"), ("TOKEN_KEY_ID", "k")]))
                .unwrap_err()
                .variable,
            "REGISTRY_TABLE"
        );
        let names = aws_store_names(&env(&[
            ("TOKEN_TABLE", "tokens"),
            ("TOKEN_KEY_ID", "alias/stack/tokens"),
            ("REGISTRY_TABLE", "r"),
        ]))
        .unwrap();
        assert_eq!(names.token_key_id, "alias/stack/tokens");
        assert_eq!(
            names.installations,
            InstallationBackend::SecretsManager {
                secrets: SecretNames::default()
            }
        );
        assert_eq!(
            aws_store_names(&env(&[
                ("TOKEN_TABLE", "t"),
                ("TOKEN_KEY_ID", "k"),
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

    #[test]
    fn the_shoprenter_app_exists_whole_or_not_at_all() {
        assert_eq!(shoprenter_app(&env(&[])), Ok(None));
        assert_eq!(
            shoprenter_app(&env(&[
                ("SHOPRENTER_CLIENT_ID", "app"),
                ("SHOPRENTER_CLIENT_SECRET_ID", "stack/app-secret")
            ])),
            Ok(Some(ShoprenterAppSecret {
                client_id: "app".to_owned(),
                secret_id: "stack/app-secret".to_owned()
            }))
        );
        let half = shoprenter_app(&env(&[("SHOPRENTER_CLIENT_ID", "app")])).unwrap_err();
        assert_eq!(half.variable, "SHOPRENTER_CLIENT_SECRET_ID");
        let other_half = shoprenter_app(&env(&[("SHOPRENTER_CLIENT_SECRET_ID", "s")])).unwrap_err();
        assert_eq!(other_half.variable, "SHOPRENTER_CLIENT_ID");
    }

    #[test]
    fn a_secret_prefix_must_end_in_a_slash() {
        for (prefix, accepted) in [
            ("acme/", true),
            ("a/b/", true),
            ("shop", false),
            ("acme/x", false),
            ("", false),
        ] {
            let vars: &'static [(&'static str, &'static str)] =
                Box::leak(Box::new([("SECRET_PREFIX", prefix)]));
            // An empty value counts as unset: the default prefix.
            let expected = accepted || prefix.is_empty();
            assert_eq!(
                installation_backend(&env(vars)).is_ok(),
                expected,
                "{prefix:?}"
            );
        }
    }
}
