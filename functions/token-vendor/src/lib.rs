//! The token-vendor function. `main.rs` only wires; the local server hosts
//! the same handler.

pub mod config;
pub mod handler;

use aws_config::SdkConfig;
use broker_aws::storage::aws_installations::AwsInstallationStore;
use broker_aws::storage::dynamodb::DynamoTokenCache;
use broker_aws::storage::dynamodb_registry::DynamoRegistry;
use broker_aws::storage::secrets_manager::read_client_secret;
use broker_domain::lazy_secret::LazySecret;
use broker_domain::model::ShoprenterCredentials;
use broker_runtime::env::ConfigError;

pub use broker_vending::{Source, TokenVendor, VendError, VendRequest, Vended};
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

/// A refusal as a Lambda function error over direct invocation: the stable
/// code is the `errorType`, and the retry hint is in the message.
pub fn diagnostic(error: VendError) -> lambda_http::lambda_runtime::Diagnostic {
    use broker_domain::http::HttpError;
    let message = match error.retry_after_seconds() {
        Some(seconds) => format!("{error} (retry after {seconds} s)"),
        None => error.to_string(),
    };
    lambda_http::lambda_runtime::Diagnostic {
        error_type: error.code().to_owned(),
        error_message: message,
    }
}
