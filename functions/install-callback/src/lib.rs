//! The install-callback function: Shoptet installs and Shoprenter credentials.
//! `main.rs` only wires; the local server hosts the same handler.

mod browser;
pub mod config;
pub mod error;
pub mod handler;
pub mod operator;
pub mod outcome;
mod routes;
pub mod shoprenter_app;
pub mod webhook;

use aws_config::SdkConfig;
use broker_aws::storage::aws_installations::AwsInstallationStore;
use broker_aws::storage::dynamodb::DynamoTokenCache;
use broker_aws::storage::dynamodb_registry::DynamoRegistry;
use broker_aws::storage::secrets_manager::read_client_secret;
use broker_domain::lazy_secret::LazySecret;
use broker_domain::model::ShoprenterCredentials;
use broker_domain::secret::{ClientSecret, ExposeSecret, WebhookKey};
use broker_runtime::env::ConfigError;

pub use config::InstallConfig;
pub use error::InstallError;
pub use handler::{InstallCallback, InstallSecrets};
pub use operator::{InstallationList, InstallationView};
pub use outcome::{EventOutcome, InstallOutcome, LifecycleEvent, Stored, StoredStatus};

pub type AwsInstallCallback =
    InstallCallback<AwsInstallationStore, DynamoTokenCache, DynamoRegistry>;

/// Builds the handler on Secrets Manager + DynamoDB. Makes no network call:
/// each secret is read by the first request that needs it and then kept
/// (see [`LazySecret`]); `InstallConfig::from_env` has already checked what
/// can be checked without a network.
pub async fn build_on_aws(
    config: InstallConfig,
    aws: &SdkConfig,
) -> Result<AwsInstallCallback, ConfigError> {
    let secrets_manager = aws_sdk_secretsmanager::Client::new(aws);
    let client = &secrets_manager;
    let shoptet_client_secret = on_first_use(
        client,
        "SHOPTET_CLIENT_SECRET_ID",
        config.shoptet_client_secret_id.clone(),
        |secret| secret,
    );
    let webhook_key = on_first_use(
        client,
        "SHOPTET_WEBHOOK_KEY_SECRET_ID",
        config.shoptet_webhook_key_secret_id.clone(),
        |key| WebhookKey::new(key.expose_secret()),
    );
    let shoprenter_app = match config.shoprenter_client_id.clone() {
        Some(client_id) if config.shoprenter_client_secret_id.is_some() => on_first_use(
            client,
            "SHOPRENTER_CLIENT_SECRET_ID",
            config.shoprenter_client_secret_id.clone(),
            move |client_secret| ShoprenterCredentials {
                client_id: client_id.clone(),
                client_secret,
            },
        ),
        None if config.shoprenter_client_secret_id.is_none() => LazySecret::absent(),
        _ => {
            return Err(ConfigError::new(
                "SHOPRENTER_CLIENT_SECRET_ID",
                "SHOPRENTER_CLIENT_ID and SHOPRENTER_CLIENT_SECRET_ID go together",
            ));
        }
    };
    let secrets = InstallSecrets {
        shoptet_client_secret,
        webhook_key,
        shoprenter_app,
    };
    let stores = config.stores.open(aws);
    Ok(InstallCallback::new(config, secrets, stores))
}

/// The secret `secret_id` names (set by `variable`), read from Secrets
/// Manager by the first request that needs it, as `T`; absent when unset.
fn on_first_use<T: Send + Sync + 'static>(
    client: &aws_sdk_secretsmanager::Client,
    variable: &'static str,
    secret_id: Option<String>,
    into: impl Fn(ClientSecret) -> T + Clone + Send + Sync + 'static,
) -> LazySecret<T> {
    let Some(secret_id) = secret_id else {
        return LazySecret::absent();
    };
    let client = client.clone();
    LazySecret::on_first_use(variable, move || {
        let (client, secret_id, into) = (client.clone(), secret_id.clone(), into.clone());
        async move { read_client_secret(&client, &secret_id).await.map(into) }
    })
}
