//! In-memory adapters for unit tests and examples. Nothing survives the process.
//!
//! Cloning a store gives another handle on the same data, as another
//! instance of the broker would open the same table.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use super::{InstallationStore, LeaseAttempt, SaveOutcome, StoreError, TokenCache};
use crate::ids::ShopRef;
use crate::model::{CacheEntry, CachedToken, Lease};

#[derive(Clone, Default)]
pub struct MemoryInstallationStore {
    documents: Arc<Mutex<HashMap<String, String>>>,
}

impl InstallationStore for MemoryInstallationStore {
    async fn save_document(&self, shop: &ShopRef, json: String) -> Result<SaveOutcome, StoreError> {
        Ok(match locked(&self.documents).insert(shop.key(), json) {
            Some(_) => SaveOutcome::Replaced,
            None => SaveOutcome::Created,
        })
    }

    async fn load_document(&self, shop: &ShopRef) -> Result<Option<String>, StoreError> {
        Ok(locked(&self.documents).get(&shop.key()).cloned())
    }
}

/// The token cache in process memory, with the same conditional semantics
/// as the DynamoDB adapter (one lock stands in for conditional writes).
#[derive(Clone, Default)]
pub struct MemoryTokenCache {
    entries: Arc<Mutex<HashMap<String, CacheEntry>>>,
}

impl TokenCache for MemoryTokenCache {
    async fn load(&self, shop: &ShopRef) -> Result<Option<CacheEntry>, StoreError> {
        Ok(locked(&self.entries).get(&shop.key()).cloned())
    }

    async fn try_lease(
        &self,
        shop: &ShopRef,
        owner: &str,
        now: SystemTime,
        until: SystemTime,
    ) -> Result<LeaseAttempt, StoreError> {
        let mut entries = locked(&self.entries);
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
        match locked(&self.entries).get_mut(&shop.key()) {
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
        if let Some(entry) = locked(&self.entries).get_mut(&shop.key())
            && holds(entry, owner)
        {
            entry.lease = None;
        }
        Ok(())
    }

    async fn forget(&self, shop: &ShopRef) -> Result<(), StoreError> {
        locked(&self.entries).remove(&shop.key());
        Ok(())
    }
}

/// Every critical section above leaves the map consistent, so a panic in
/// another holder poisons nothing worth refusing.
fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn holds(entry: &CacheEntry, owner: &str) -> bool {
    entry
        .lease
        .as_ref()
        .is_some_and(|lease| lease.owner == owner)
}
