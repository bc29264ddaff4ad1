//! The token-vendor function. `main.rs` only wires; the local server hosts
//! the same handler.

pub mod config;
pub mod error;
pub mod handler;
pub mod vendor;

use aws_config::SdkConfig;
use broker_shared::config::ConfigError;
use broker_shared::shoprenter::{ShoprenterClient, ShoprenterCredentials};
use broker_shared::shoptet::{ShoptetClient, ShoptetConfig};
use broker_shared::storage::dynamodb::DynamoTokenCache;
use broker_shared::storage::secrets_manager::{SecretsManagerStore, read_client_secret};
use broker_shared::storage::{InstallationStore, TokenCache};

pub use config::VendorConfig;
pub use error::VendError;
pub use handler::{ApiBases, VendHandler};
pub use vendor::{Source, TokenVendor, VendRequest, Vended};

pub type AwsVendHandler = VendHandler<SecretsManagerStore, DynamoTokenCache>;

/// The handler over any storage adapters. The Shoprenter app credentials are
/// resolved by the caller (they live in a secret).
pub fn build<S: InstallationStore, C: TokenCache>(
    config: VendorConfig,
    shoprenter_app_credentials: Option<ShoprenterCredentials>,
    installations: S,
    cache: C,
) -> VendHandler<S, C> {
    let http = config.http.build_client();
    let shoptet = config.shoptet_oauth_url.map(|oauth_url| {
        ShoptetClient::new(
            http.clone(),
            ShoptetConfig {
                oauth_url,
                api_url: config.shoptet_api_url.clone(),
            },
        )
    });
    let api_bases = ApiBases {
        shoptet: config
            .shoptet_api_url
            .as_str()
            .trim_end_matches('/')
            .to_owned(),
        shoprenter: config.shoprenter_api_url,
    };
    VendHandler {
        vendor: TokenVendor::new(
            shoptet,
            ShoprenterClient::new(http, config.shoprenter_oauth_url),
            shoprenter_app_credentials,
            installations,
            cache,
            config.timing,
        ),
        api_bases,
    }
}

/// The handler on Secrets Manager + DynamoDB; reads the Shoprenter app's
/// client secret once, here.
pub async fn build_on_aws(config: VendorConfig, aws: &SdkConfig) -> Result<AwsVendHandler, String> {
    let secrets = aws_sdk_secretsmanager::Client::new(aws);
    let app_credentials = match (
        &config.shoprenter_client_id,
        &config.shoprenter_client_secret_id,
    ) {
        (Some(client_id), Some(secret_id)) => Some(ShoprenterCredentials {
            client_id: client_id.clone(),
            client_secret: read_client_secret(&secrets, secret_id)
                .await
                .map_err(|error| format!("SHOPRENTER_CLIENT_SECRET_ID: {error}"))?,
        }),
        (None, None) => None,
        _ => {
            return Err(ConfigError::new(
                "SHOPRENTER_CLIENT_SECRET_ID",
                "SHOPRENTER_CLIENT_ID and SHOPRENTER_CLIENT_SECRET_ID go together",
            )
            .to_string());
        }
    };
    let installations = SecretsManagerStore::new(secrets, config.secret_names.clone());
    let cache = DynamoTokenCache::new(
        aws_sdk_dynamodb::Client::new(aws),
        config.token_table.clone(),
    );
    Ok(build(config, app_credentials, installations, cache))
}
