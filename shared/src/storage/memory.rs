//! In-memory adapters for unit tests and examples. Nothing survives the process.

use std::collections::HashMap;
use std::sync::Mutex;

use std::time::SystemTime;

use super::{
    CacheEntry, CachedToken, InstallationStore, Lease, LeaseAttempt, SaveOutcome, StoreError,
    TokenCache,
};
use crate::ids::ShopRef;

#[derive(Default)]
pub struct MemoryInstallationStore {
    documents: Mutex<HashMap<String, String>>,
}

impl InstallationStore for MemoryInstallationStore {
    async fn save_document(&self, shop: &ShopRef, json: String) -> Result<SaveOutcome, StoreError> {
        let mut documents = self.documents.lock().expect("memory store lock");
        Ok(match documents.insert(shop.key(), json) {
            Some(_) => SaveOutcome::Replaced,
            None => SaveOutcome::Created,
        })
    }

    async fn load_document(&self, shop: &ShopRef) -> Result<Option<String>, StoreError> {
        Ok(self
            .documents
            .lock()
            .expect("memory store lock")
            .get(&shop.key())
            .cloned())
    }
}

/// The token cache in process memory, with the same conditional semantics
/// as the DynamoDB adapter (one lock stands in for conditional writes).
#[derive(Default)]
pub struct MemoryTokenCache {
    entries: Mutex<HashMap<String, CacheEntry>>,
}

impl TokenCache for MemoryTokenCache {
    async fn load(&self, shop: &ShopRef) -> Result<Option<CacheEntry>, StoreError> {
        Ok(self
            .entries
            .lock()
            .expect("memory cache lock")
            .get(&shop.key())
            .cloned())
    }

    async fn try_lease(
        &self,
        shop: &ShopRef,
        owner: &str,
        now: SystemTime,
        until: SystemTime,
    ) -> Result<LeaseAttempt, StoreError> {
        let mut entries = self.entries.lock().expect("memory cache lock");
        let entry = entries.entry(shop.key()).or_default();
        if entry
            .lease
            .as_ref()
            .is_some_and(|lease| lease.expires_at >= now)
        {
            return Ok(LeaseAttempt::Busy(entry.clone()));
        }
        entry.lease = Some(Lease {
            owner: owner.to_owned(),
            expires_at: until,
        });
        Ok(LeaseAttempt::Acquired(entry.clone()))
    }

    async fn store_and_release(
        &self,
        shop: &ShopRef,
        owner: &str,
        token: &CachedToken,
        ledger: &[SystemTime],
    ) -> Result<bool, StoreError> {
        let mut entries = self.entries.lock().expect("memory cache lock");
        match entries.get_mut(&shop.key()) {
            Some(entry) if holds(entry, owner) => {
                *entry = CacheEntry {
                    token: Some(token.clone()),
                    lease: None,
                    ledger: ledger.to_vec(),
                };
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release(&self, shop: &ShopRef, owner: &str) -> Result<(), StoreError> {
        let mut entries = self.entries.lock().expect("memory cache lock");
        if let Some(entry) = entries.get_mut(&shop.key())
            && holds(entry, owner)
        {
            entry.lease = None;
        }
        Ok(())
    }

    async fn forget(&self, shop: &ShopRef) -> Result<(), StoreError> {
        self.entries
            .lock()
            .expect("memory cache lock")
            .remove(&shop.key());
        Ok(())
    }
}

fn holds(entry: &CacheEntry, owner: &str) -> bool {
    entry
        .lease
        .as_ref()
        .is_some_and(|lease| lease.owner == owner)
}
