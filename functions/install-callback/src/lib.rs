//! The install-callback function: Shoptet installs and Shoprenter credentials.
//! `main.rs` only wires; the local server hosts the same handler.

mod browser;
pub mod caller;
pub mod config;
pub mod error;
pub mod eshop_webhook;
pub mod handler;
pub mod operator;
pub mod outcome;
mod routes;
pub mod shoprenter_app;
pub mod webhook;

use std::sync::Arc;

use aws_config::SdkConfig;
use broker_aws::secrets;
use broker_aws::storage::aws_installations::AwsInstallationStore;
use broker_aws::storage::dynamodb::DynamoTokenCache;
use broker_aws::storage::dynamodb_registry::DynamoRegistry;
use broker_domain::secret::{ExposeSecret, WebhookKey};
use broker_events::eventbridge::EventBridgeBus;

pub use caller::OperatorGate;
pub use config::{AwsInstallConfig, InstallConfig};
pub use error::InstallError;
pub use handler::{InstallCallback, InstallSecrets};
pub use operator::{InstallationList, InstallationView};
pub use outcome::{EventOutcome, InstallOutcome, LifecycleEvent, Stored, StoredStatus};

pub type AwsInstallCallback =
    InstallCallback<AwsInstallationStore, DynamoTokenCache, DynamoRegistry>;

/// Builds the handler on Secrets Manager + DynamoDB. Makes no network call:
/// each secret is read by the first request that needs it and then kept
/// (see [`broker_domain::lazy_secret::LazySecret`]);
/// [`AwsInstallConfig::from_env`] has already checked what can be checked
/// without a network.
pub fn build_on_aws(config: AwsInstallConfig, aws: &SdkConfig) -> AwsInstallCallback {
    let client = &aws_sdk_secretsmanager::Client::new(aws);
    let secrets = InstallSecrets {
        shoptet_client_secret: secrets::on_first_use(
            client,
            "SHOPTET_CLIENT_SECRET_ID",
            config.shoptet_client_secret_id,
            |secret| secret,
        ),
        webhook_key: secrets::on_first_use(
            client,
            "SHOPTET_WEBHOOK_KEY_SECRET_ID",
            config.shoptet_webhook_key_secret_id,
            |key| WebhookKey::new(key.expose_secret()),
        ),
        shoprenter_app: secrets::shoprenter_app_credentials(client, config.shoprenter_app.as_ref()),
    };
    let handler = InstallCallback::new(config.install, secrets, config.stores.open(aws));
    match config.event_bus_name {
        Some(bus_name) => handler.with_eshop_webhooks(Arc::new(EventBridgeBus::new(
            aws_sdk_eventbridge::Client::new(aws),
            bus_name,
            BUS_TIMEOUT,
        ))),
        None => handler,
    }
}

/// The receiving route waits this long for EventBridge: Shoptet gives up
/// after 4 s, and a refused delivery is retried (and reconciled).
const BUS_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(2_000);
