//! The install-callback function: Shoptet installs and Shoprenter credentials.
//! `main.rs` only wires; the local server hosts the same handler.

pub mod config;
pub mod error;
pub mod handler;
pub mod operator;
pub mod shoprenter_app;
pub mod webhook;

use aws_config::SdkConfig;
use broker_shared::config::ConfigError;
use broker_shared::model::ShoprenterCredentials;
use broker_shared::secret::{ClientSecret, ExposeSecret, WebhookKey};
use broker_shared::storage::dynamodb::DynamoTokenCache;
use broker_shared::storage::dynamodb_registry::DynamoRegistry;
use broker_shared::storage::secrets_manager::{SecretsManagerStore, read_client_secret};

pub use config::InstallConfig;
pub use error::InstallError;
pub use handler::{InstallCallback, InstallSecrets, Stored};
pub use operator::{InstallationList, InstallationView};
pub use webhook::EventOutcome;

pub type AwsInstallCallback =
    InstallCallback<SecretsManagerStore, DynamoTokenCache, DynamoRegistry>;

/// Builds the handler on Secrets Manager + DynamoDB. Reads the secrets it
/// needs once, here, so every request reuses them.
pub async fn build_on_aws(
    config: InstallConfig,
    aws: &SdkConfig,
) -> Result<AwsInstallCallback, ConfigError> {
    let secrets_manager = aws_sdk_secretsmanager::Client::new(aws);
    let read = |variable: &'static str, id: Option<String>| {
        let client = &secrets_manager;
        async move {
            match id {
                Some(id) => read_client_secret(client, &id)
                    .await
                    .map(Some)
                    .map_err(|error| ConfigError::new(variable, error.to_string())),
                None => Ok(None),
            }
        }
    };
    let shoptet_client_secret = read(
        "SHOPTET_CLIENT_SECRET_ID",
        config.shoptet_client_secret_id.clone(),
    )
    .await?;
    let webhook_key = read(
        "SHOPTET_WEBHOOK_KEY_SECRET_ID",
        config.shoptet_webhook_key_secret_id.clone(),
    )
    .await?
    .map(|key: ClientSecret| WebhookKey::new(key.expose_secret()));
    let shoprenter_app = read(
        "SHOPRENTER_CLIENT_SECRET_ID",
        config.shoprenter_client_secret_id.clone(),
    )
    .await?
    .zip(config.shoprenter_client_id.clone())
    .map(|(client_secret, client_id)| ShoprenterCredentials {
        client_id,
        client_secret,
    });
    let secrets = InstallSecrets {
        shoptet_client_secret,
        webhook_key,
        shoprenter_app,
    };
    let stores = config.stores.open(aws);
    Ok(InstallCallback::new(config, secrets, stores))
}
