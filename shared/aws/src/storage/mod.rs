//! The AWS adapters of the storage ports, and where they are configured:
//! installations in Secrets Manager or in an envelope-encrypted DynamoDB
//! table, the token cache and the registry in DynamoDB.

mod aws_errors;
pub mod aws_installations;
mod dynamo_item;
pub mod dynamodb;
mod dynamodb_deliveries;
pub mod dynamodb_installations;
mod dynamodb_redirects;
pub mod dynamodb_registry;
mod envelope;
pub mod secrets_manager;
mod stores;

pub use envelope::KmsKeyId;
pub use secrets_manager::{DEFAULT_SECRET_PREFIX, SecretNames};
pub use stores::{AwsStoreNames, AwsStores, InstallationBackend};
