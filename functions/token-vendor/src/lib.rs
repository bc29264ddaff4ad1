//! The token-vendor function. `main.rs` only wires; the local server hosts
//! the same handler.

pub mod config;
pub mod handler;

use aws_config::SdkConfig;
use broker_shared::config::ConfigError;
use broker_shared::lazy_secret::LazySecret;
use broker_shared::model::ShoprenterCredentials;
use broker_shared::storage::aws_installations::AwsInstallationStore;
use broker_shared::storage::dynamodb::DynamoTokenCache;
use broker_shared::storage::dynamodb_registry::DynamoRegistry;
use broker_shared::storage::secrets_manager::read_client_secret;

pub use broker_shared::vending::{Source, TokenVendor, VendError, VendRequest, Vended};
pub use config::VendorConfig;
pub use handler::{ApiBases, TokenResponse, VendHandler};

pub type AwsVendHandler = VendHandler<AwsInstallationStore, DynamoTokenCache, DynamoRegistry>;

/// The handler on Secrets Manager + DynamoDB. Makes no network call: the
/// Shoprenter app's client secret is read by the first mint that needs it
/// (see [`LazySecret`]); what can be checked without a network is checked
/// here, naming the variable.
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
        (Some(client_id), Some(secret_id)) => {
            let secrets_manager = aws_sdk_secretsmanager::Client::new(aws);
            let (client_id, secret_id) = (client_id.clone(), secret_id.clone());
            LazySecret::on_first_use(SECRET_VARIABLE, move || {
                let (client, client_id, secret_id) = (
                    secrets_manager.clone(),
                    client_id.clone(),
                    secret_id.clone(),
                );
                async move {
                    let client_secret = read_client_secret(&client, &secret_id).await?;
                    Ok(ShoprenterCredentials {
                        client_id,
                        client_secret,
                    })
                }
            })
        }
        (None, None) => LazySecret::absent(),
        _ => {
            return Err(ConfigError::new(
                SECRET_VARIABLE,
                "SHOPRENTER_CLIENT_ID and SHOPRENTER_CLIENT_SECRET_ID go together",
            ));
        }
    };
    Ok(VendHandler::new(config, app_credentials, stores))
}
