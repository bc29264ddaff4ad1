//! The token-vendor function. `main.rs` only wires; the local server hosts
//! the same handler.

pub mod config;
pub mod error;
pub mod handler;
pub mod vendor;

use aws_config::SdkConfig;
use broker_shared::config::ConfigError;
use broker_shared::model::ShoprenterCredentials;
use broker_shared::shoprenter::ShoprenterClient;
use broker_shared::shoptet::{ShoptetClient, ShoptetConfig};
use broker_shared::storage::dynamodb::DynamoTokenCache;
use broker_shared::storage::secrets_manager::{SecretsManagerStore, read_client_secret};
use broker_shared::storage::{InstallationStore, Stores, TokenCache};

pub use config::VendorConfig;
pub use error::VendError;
pub use handler::{ApiBases, TokenResponse, VendHandler};
pub use vendor::{Source, TokenVendor, VendRequest, Vended};

pub type AwsVendHandler = VendHandler<SecretsManagerStore, DynamoTokenCache>;

/// The handler over any storage adapters. The Shoprenter app credentials are
/// resolved by the caller (they live in a secret).
pub fn build<S: InstallationStore, C: TokenCache>(
    config: VendorConfig,
    shoprenter_app_credentials: Option<ShoprenterCredentials>,
    stores: Stores<S, C>,
) -> VendHandler<S, C> {
    let http = config.http.build_client();
    let api_bases = ApiBases {
        shoptet: config
            .shoptet_api_url
            .as_str()
            .trim_end_matches('/')
            .to_owned(),
        shoprenter: config.shoprenter_api_url,
    };
    let shoptet = config.shoptet_oauth_url.map(|oauth_url| {
        let api_url = config.shoptet_api_url;
        ShoptetClient::new(http.clone(), ShoptetConfig { oauth_url, api_url })
    });
    let shoprenter = ShoprenterClient::new(http, config.shoprenter_oauth_url);
    let vendor = TokenVendor::new(
        shoptet,
        shoprenter,
        shoprenter_app_credentials,
        stores,
        config.timing,
        config.remembered_shops,
    );
    VendHandler { vendor, api_bases }
}

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
    Ok(build(config, app_credentials, stores))
}
