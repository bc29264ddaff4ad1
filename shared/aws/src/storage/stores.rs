//! Where the broker keeps its data on AWS, and the ports opened on it: the
//! SDK clients are built once, here.

use broker_domain::storage::Stores;

use super::aws_installations::AwsInstallationStore;
use super::envelope::KmsKeyId;
use super::secrets_manager::{SecretNames, SecretsManagerStore};
use super::{dynamodb, dynamodb_installations, dynamodb_registry};

/// Where the broker keeps its data on AWS: the installations' store, the
/// token table (and the KMS key its tokens are sealed under) and the registry
/// table, configured alike for every function.
#[derive(Debug, Clone)]
pub struct AwsStoreNames {
    pub installations: InstallationBackend,
    pub token_table: String,
    /// The KMS key (id, ARN or alias) that wraps the token cache's data keys.
    pub token_key_id: String,
    pub registry_table: String,
}

/// Where installations and per-shop credentials live on AWS: the template's
/// `InstallationStore` parameter (`INSTALLATION_STORE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallationBackend {
    /// `SecretsManager` (the default): one secret per shop under a prefix.
    SecretsManager { secrets: SecretNames },
    /// `DynamoDB`: one item per shop in `table`, its secrets sealed under data
    /// keys that the KMS key `key_id` (an id, ARN or alias) wraps.
    DynamoDb { table: String, key_id: String },
}

impl AwsStoreNames {
    /// Every port on AWS: installations in Secrets Manager or in the
    /// envelope-encrypted DynamoDB table (as configured), the token cache and
    /// the registry in DynamoDB. The clients are built once, here.
    pub fn open(&self, aws: &aws_types::SdkConfig) -> AwsStores {
        let dynamodb = aws_sdk_dynamodb::Client::new(aws);
        let kms = aws_sdk_kms::Client::new(aws);
        Stores {
            installations: self.installations.open_with(aws, &dynamodb, &kms),
            tokens: dynamodb::DynamoTokenCache::new(
                dynamodb.clone(),
                kms,
                self.token_table.clone(),
                KmsKeyId::new(self.token_key_id.clone()),
            ),
            registry: dynamodb_registry::DynamoRegistry::new(dynamodb, self.registry_table.clone()),
        }
    }
}

impl InstallationBackend {
    /// The installation store alone (the migration command opens two).
    pub fn open(&self, aws: &aws_types::SdkConfig) -> AwsInstallationStore {
        self.open_with(
            aws,
            &aws_sdk_dynamodb::Client::new(aws),
            &aws_sdk_kms::Client::new(aws),
        )
    }

    /// On the DynamoDB and KMS clients the other ports use, if it is the
    /// table.
    fn open_with(
        &self,
        aws: &aws_types::SdkConfig,
        dynamodb: &aws_sdk_dynamodb::Client,
        kms: &aws_sdk_kms::Client,
    ) -> AwsInstallationStore {
        match self {
            InstallationBackend::SecretsManager { secrets } => {
                AwsInstallationStore::SecretsManager(SecretsManagerStore::new(
                    aws_sdk_secretsmanager::Client::new(aws),
                    secrets.clone(),
                ))
            }
            InstallationBackend::DynamoDb { table, key_id } => AwsInstallationStore::DynamoDb(
                dynamodb_installations::DynamoInstallationStore::new(
                    dynamodb.clone(),
                    kms.clone(),
                    table.clone(),
                    KmsKeyId::new(key_id.clone()),
                ),
            ),
        }
    }
}

pub type AwsStores =
    Stores<AwsInstallationStore, dynamodb::DynamoTokenCache, dynamodb_registry::DynamoRegistry>;
