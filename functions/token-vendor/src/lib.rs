//! The token-vendor function. `main.rs` only wires; the local server hosts
//! the same handler.

pub mod config;
pub mod handler;

use aws_config::SdkConfig;
use broker_aws::secrets;
use broker_aws::storage::aws_installations::AwsInstallationStore;
use broker_aws::storage::dynamodb::DynamoTokenCache;
use broker_aws::storage::dynamodb_registry::DynamoRegistry;

pub use broker_vending::{Source, TokenVendor, VendError, VendRequest, Vended};
pub use config::{AwsVendorConfig, VendorConfig};
pub use handler::{ApiBases, TokenResponse, VendHandler};

pub type AwsVendHandler = VendHandler<AwsInstallationStore, DynamoTokenCache, DynamoRegistry>;

/// The handler on Secrets Manager + DynamoDB. Makes no network call: the
/// Shoprenter app's client secret is read by the first mint that needs it
/// (see [`broker_domain::lazy_secret::LazySecret`]); what can be checked
/// without a network was checked by [`AwsVendorConfig::from_env`].
pub fn build_on_aws(config: AwsVendorConfig, aws: &SdkConfig) -> AwsVendHandler {
    let secrets_manager = aws_sdk_secretsmanager::Client::new(aws);
    let app_credentials =
        secrets::shoprenter_app_credentials(&secrets_manager, config.shoprenter_app.as_ref());
    VendHandler::new(config.vendor, app_credentials, config.stores.open(aws))
}

/// A refusal as a Lambda function error over direct invocation, as the
/// protocol writes it: the stable code is the `errorType`, and the retry
/// hint ends the message.
pub fn diagnostic(error: VendError) -> lambda_http::lambda_runtime::Diagnostic {
    use broker_domain::http::HttpError;
    let function_error =
        shop_token_protocol::error::FunctionError::new(error.code(), &error, error.retry_after());
    lambda_http::lambda_runtime::Diagnostic {
        error_type: function_error.error_type,
        error_message: function_error.error_message,
    }
}
