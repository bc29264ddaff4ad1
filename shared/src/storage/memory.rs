//! In-memory adapters for unit tests and examples. Nothing survives the process.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{InstallationStore, SaveOutcome, ShoptetInstallationRecord, StoreError, TokenCache};
use crate::ids::{ShopRef, ShoprenterShopName, ShoptetEshopId};
use crate::shoprenter::ShoprenterCredentials;

#[derive(Default)]
pub struct MemoryInstallationStore {
    shoptet: Mutex<HashMap<ShoptetEshopId, ShoptetInstallationRecord>>,
    shoprenter: Mutex<HashMap<ShoprenterShopName, ShoprenterCredentials>>,
}

fn upsert<K: std::hash::Hash + Eq, V>(map: &Mutex<HashMap<K, V>>, key: K, value: V) -> SaveOutcome {
    match map.lock().expect("memory store lock").insert(key, value) {
        Some(_) => SaveOutcome::Replaced,
        None => SaveOutcome::Created,
    }
}

impl InstallationStore for MemoryInstallationStore {
    async fn save_shoptet_installation(
        &self,
        record: &ShoptetInstallationRecord,
    ) -> Result<SaveOutcome, StoreError> {
        Ok(upsert(
            &self.shoptet,
            record.installation.eshop_id,
            record.clone(),
        ))
    }

    async fn load_shoptet_installation(
        &self,
        eshop_id: ShoptetEshopId,
    ) -> Result<Option<ShoptetInstallationRecord>, StoreError> {
        Ok(self
            .shoptet
            .lock()
            .expect("memory store lock")
            .get(&eshop_id)
            .cloned())
    }

    async fn save_shoprenter_credentials(
        &self,
        shop: &ShoprenterShopName,
        credentials: &ShoprenterCredentials,
    ) -> Result<SaveOutcome, StoreError> {
        Ok(upsert(&self.shoprenter, shop.clone(), credentials.clone()))
    }

    async fn load_shoprenter_credentials(
        &self,
        shop: &ShoprenterShopName,
    ) -> Result<Option<ShoprenterCredentials>, StoreError> {
        Ok(self
            .shoprenter
            .lock()
            .expect("memory store lock")
            .get(shop)
            .cloned())
    }
}

#[derive(Default)]
pub struct MemoryTokenCache {
    items: Mutex<HashMap<String, ()>>,
}

impl TokenCache for MemoryTokenCache {
    async fn forget(&self, shop: &ShopRef) -> Result<(), StoreError> {
        self.items
            .lock()
            .expect("memory cache lock")
            .remove(&shop.key());
        Ok(())
    }
}
