//! The AWS adapters of the storage ports, and where they are configured:
//! installations in Secrets Manager or in an envelope-encrypted DynamoDB
//! table, the token cache and the registry in DynamoDB.

use broker_domain::ids::ShopRef;
// The ports and the helpers for adapters, for the adapters below (`super::`).
use aws_installations::AwsInstallationStore;
use broker_domain::storage::*;

mod aws_errors;
pub mod aws_installations;
mod dynamo_item;
pub mod dynamodb;
pub mod dynamodb_installations;
pub mod dynamodb_registry;
pub mod secrets_manager;

/// Names of the secrets the broker owns, all under one configurable prefix
/// (IAM policies are scoped to `<prefix>*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretNames {
    prefix: String,
}

pub const DEFAULT_SECRET_PREFIX: &str = "shop-token-broker/";

impl SecretNames {
    /// Secrets Manager allows letters, digits and `/_+=.@-` in names.
    pub fn new(prefix: &str) -> Result<Self, &'static str> {
        let valid = prefix.len() <= 256
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b));
        if valid {
            Ok(Self {
                prefix: prefix.to_owned(),
            })
        } else {
            Err("letters, digits and /_+=.@- only, at most 256 characters")
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn installation(&self, shop: &ShopRef) -> String {
        format!("{}{}/{}", self.prefix, shop.platform(), shop.id())
    }

    /// The shop whose installation secret `name` is: the inverse of
    /// [`SecretNames::installation`]. `None` for any other name under the
    /// prefix (an add-on's client secret, say) or outside it.
    pub fn shop(&self, name: &str) -> Option<ShopRef> {
        let (platform, id) = name.strip_prefix(&self.prefix)?.split_once('/')?;
        let shop = ShopRef::parse(platform, id).ok()?;
        // Only the canonical spelling is the shop's secret.
        (self.installation(&shop) == name).then_some(shop)
    }
}

/// Where the broker keeps its data on AWS: the installations' store, the
/// token table and the registry table, configured alike for every function.
#[derive(Debug, Clone)]
pub struct AwsStoreNames {
    pub installations: InstallationBackend,
    pub token_table: String,
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
        Stores {
            installations: self.installations.open_with(aws, &dynamodb),
            tokens: dynamodb::DynamoTokenCache::new(dynamodb.clone(), self.token_table.clone()),
            registry: dynamodb_registry::DynamoRegistry::new(dynamodb, self.registry_table.clone()),
        }
    }
}

impl InstallationBackend {
    /// The installation store alone (the migration command opens two).
    pub fn open(&self, aws: &aws_types::SdkConfig) -> AwsInstallationStore {
        self.open_with(aws, &aws_sdk_dynamodb::Client::new(aws))
    }

    /// On the DynamoDB client the other ports use, if it is the table.
    fn open_with(
        &self,
        aws: &aws_types::SdkConfig,
        dynamodb: &aws_sdk_dynamodb::Client,
    ) -> AwsInstallationStore {
        match self {
            InstallationBackend::SecretsManager { secrets } => {
                AwsInstallationStore::SecretsManager(secrets_manager::SecretsManagerStore::new(
                    aws_sdk_secretsmanager::Client::new(aws),
                    secrets.clone(),
                ))
            }
            InstallationBackend::DynamoDb { table, key_id } => AwsInstallationStore::DynamoDb(
                dynamodb_installations::DynamoInstallationStore::new(
                    dynamodb.clone(),
                    aws_sdk_kms::Client::new(aws),
                    table.clone(),
                    dynamodb_installations::KmsKeyId::new(key_id.clone()),
                ),
            ),
        }
    }
}

pub type AwsStores =
    Stores<AwsInstallationStore, dynamodb::DynamoTokenCache, dynamodb_registry::DynamoRegistry>;

impl Default for SecretNames {
    fn default() -> Self {
        Self {
            prefix: DEFAULT_SECRET_PREFIX.to_owned(),
        }
    }
}
