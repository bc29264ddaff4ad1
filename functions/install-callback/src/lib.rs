//! The install-callback function: Shoptet installs and Shoprenter credentials.
//! `main.rs` only wires; the local server hosts the same handler.

pub mod config;
pub mod error;
pub mod handler;

use aws_config::SdkConfig;
use broker_shared::config::ConfigError;
use broker_shared::storage::dynamodb::DynamoTokenCache;
use broker_shared::storage::secrets_manager::{SecretsManagerStore, read_client_secret};

pub use config::InstallConfig;
pub use error::InstallError;
pub use handler::{InstallCallback, Stored};

pub type AwsInstallCallback = InstallCallback<SecretsManagerStore, DynamoTokenCache>;

/// Builds the handler on Secrets Manager + DynamoDB. Reads the add-on's
/// client secret once, here, so every request reuses it.
pub async fn build_on_aws(
    config: InstallConfig,
    aws: &SdkConfig,
) -> Result<AwsInstallCallback, ConfigError> {
    let client_secret = match &config.shoptet_client_secret_id {
        Some(id) => Some(
            read_client_secret(&aws_sdk_secretsmanager::Client::new(aws), id)
                .await
                .map_err(|error| ConfigError::new("SHOPTET_CLIENT_SECRET_ID", error.to_string()))?,
        ),
        None => None,
    };
    let stores = config.stores.open(aws);
    Ok(InstallCallback::new(config, client_secret, stores))
}
