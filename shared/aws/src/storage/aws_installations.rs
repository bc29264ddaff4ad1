//! The installation store a deployed function uses, chosen by the
//! `InstallationStore` template parameter (`INSTALLATION_STORE`) at start-up:
//! one type, so the functions' handler types do not depend on the choice.

use super::dynamodb_installations::DynamoInstallationStore;
use super::secrets_manager::SecretsManagerStore;
use crate::ids::{ShopRef, ShoptetEshopId};
use crate::secret::EshopSignatureKey;
use broker_domain::storage::{
    InstallationInventory, InstallationStore, InventoryPage, InventoryQuery, RecoveryWindow,
    SaveOutcome, StoreError,
};

pub enum AwsInstallationStore {
    /// One secret per shop (the default).
    SecretsManager(SecretsManagerStore),
    /// One envelope-encrypted item per shop.
    DynamoDb(DynamoInstallationStore),
}

impl InstallationStore for AwsInstallationStore {
    async fn save_document(&self, shop: &ShopRef, json: String) -> Result<SaveOutcome, StoreError> {
        match self {
            Self::SecretsManager(store) => store.save_document(shop, json).await,
            Self::DynamoDb(store) => store.save_document(shop, json).await,
        }
    }

    async fn load_document(&self, shop: &ShopRef) -> Result<Option<String>, StoreError> {
        match self {
            Self::SecretsManager(store) => store.load_document(shop).await,
            Self::DynamoDb(store) => store.load_document(shop).await,
        }
    }

    async fn schedule_deletion(
        &self,
        shop: &ShopRef,
        recovery: RecoveryWindow,
    ) -> Result<(), StoreError> {
        match self {
            Self::SecretsManager(store) => store.schedule_deletion(shop, recovery).await,
            Self::DynamoDb(store) => store.schedule_deletion(shop, recovery).await,
        }
    }

    async fn save_signature_key(
        &self,
        eshop_id: ShoptetEshopId,
        key: &EshopSignatureKey,
    ) -> Result<(), StoreError> {
        match self {
            Self::SecretsManager(store) => store.save_signature_key(eshop_id, key).await,
            Self::DynamoDb(store) => store.save_signature_key(eshop_id, key).await,
        }
    }

    async fn load_signature_key(
        &self,
        eshop_id: ShoptetEshopId,
    ) -> Result<Option<EshopSignatureKey>, StoreError> {
        match self {
            Self::SecretsManager(store) => store.load_signature_key(eshop_id).await,
            Self::DynamoDb(store) => store.load_signature_key(eshop_id).await,
        }
    }
}

impl InstallationInventory for AwsInstallationStore {
    async fn list_installations(
        &self,
        query: &InventoryQuery,
    ) -> Result<InventoryPage, StoreError> {
        match self {
            Self::SecretsManager(store) => store.list_installations(query).await,
            Self::DynamoDb(store) => store.list_installations(query).await,
        }
    }
}
