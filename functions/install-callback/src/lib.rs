//! The install-callback function: Shoptet installs and Shoprenter credentials.
//! `main.rs` only wires; the local server hosts the same handler.

pub mod config;
pub mod error;
pub mod handler;

use aws_config::SdkConfig;
use broker_shared::shoprenter::ShoprenterClient;
use broker_shared::shoptet::{ShoptetClient, ShoptetConfig};
use broker_shared::storage::dynamodb::DynamoTokenCache;
use broker_shared::storage::secrets_manager::{SecretsManagerStore, read_client_secret};

pub use config::InstallConfig;
pub use error::InstallError;
pub use handler::InstallCallback;

pub type AwsInstallCallback = InstallCallback<SecretsManagerStore, DynamoTokenCache>;

/// Builds the handler on Secrets Manager + DynamoDB. Reads the add-on's
/// client secret once, here, so every request reuses it.
pub async fn build_on_aws(
    config: InstallConfig,
    aws: &SdkConfig,
) -> Result<AwsInstallCallback, String> {
    let secrets = aws_sdk_secretsmanager::Client::new(aws);
    let client_secret = match &config.shoptet_client_secret_id {
        Some(id) => Some(
            read_client_secret(&secrets, id)
                .await
                .map_err(|error| format!("SHOPTET_CLIENT_SECRET_ID: {error}"))?,
        ),
        None => None,
    };
    let http = config.http.build_client();
    Ok(InstallCallback {
        shoptet: ShoptetClient::new(
            http.clone(),
            ShoptetConfig {
                oauth_url: config.shoptet_oauth_url,
                api_url: config.shoptet_api_url,
                client_id: config.shoptet_client_id,
                client_secret,
                redirect_uri: config.shoptet_redirect_uri,
            },
        ),
        shoprenter: ShoprenterClient::new(http, config.shoprenter_oauth_url),
        installations: SecretsManagerStore::new(secrets, config.secret_names),
        tokens: DynamoTokenCache::new(aws_sdk_dynamodb::Client::new(aws), config.token_table),
        deadline: config.install_deadline,
    })
}
