//! The token-vendor function. `main.rs` only wires; the local server hosts
//! the same handler.

pub mod config;
pub mod handler;

use aws_config::SdkConfig;
use broker_shared::config::ConfigError;
use broker_shared::model::ShoprenterCredentials;
use broker_shared::storage::dynamodb::DynamoTokenCache;
use broker_shared::storage::dynamodb_registry::DynamoRegistry;
use broker_shared::storage::secrets_manager::{SecretsManagerStore, read_client_secret};

pub use broker_shared::vending::{Source, TokenVendor, VendError, VendRequest, Vended};
pub use config::VendorConfig;
pub use handler::{ApiBases, TokenResponse, VendHandler};

pub type AwsVendHandler = VendHandler<SecretsManagerStore, DynamoTokenCache, DynamoRegistry>;

/// The handler on Secrets Manager + DynamoDB; reads the Shoprenter app's
/// client secret once, here.
pub async fn build_on_aws(
    config: VendorConfig,
    aws: &SdkConfig,
) -> Result<AwsVendHandler, ConfigError> {
    const SECRET_VARIABLE: &str = "SHOPRENTER_CLIENT_SECRET_ID";
    let stores = config.stores.open(aws);
    let app_credentials = match (
        &config.shoprenter_client_id,
        &config.shoprenter_client_secret_id,
    ) {
        (Some(client_id), Some(secret_id)) => Some(ShoprenterCredentials {
            client_id: client_id.clone(),
            client_secret: read_client_secret(&aws_sdk_secretsmanager::Client::new(aws), secret_id)
                .await
                .map_err(|error| ConfigError::new(SECRET_VARIABLE, error.to_string()))?,
        }),
        (None, None) => None,
        _ => {
            return Err(ConfigError::new(
                SECRET_VARIABLE,
                "SHOPRENTER_CLIENT_ID and SHOPRENTER_CLIENT_SECRET_ID go together",
            ));
        }
    };
    Ok(VendHandler::new(config, app_credentials, stores))
}
