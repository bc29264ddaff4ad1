//! In-memory adapters for unit tests and examples. Nothing survives the process.
//!
//! Cloning a store gives another handle on the same data, as another
//! instance of the broker would open the same table.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use super::{
    DeliveryLog, EventOutbox, InstallationInventory, InstallationRegistry, InstallationStore,
    InventoryCursor, InventoryPage, InventoryQuery, LeaseAttempt, RecoveryWindow,
    RedirectAcceptance, RegistryPage, RegistryQuery, SaveOutcome, SignedRedirects, StoreError,
    TokenCache, key_after, page_limit, redirect_acceptance, shop_of_key,
};
use crate::events::{InstallationEvent, MintOutcome, apply_change, apply_mint};
use crate::ids::{ShopRef, ShoptetEshopId};
use crate::model::{
    AcceptedRedirect, CacheEntry, CachedToken, DeliveryFingerprint, InstallationStatus, Lease,
    Registration, StatusChange,
};
use crate::secret::EshopSignatureKey;

/// Documents by [`ShopRef::key`], in key order (the order the inventory
/// pages in).
#[derive(Clone, Default)]
pub struct MemoryInstallationStore {
    documents: Arc<Mutex<BTreeMap<String, String>>>,
    signature_keys: Arc<Mutex<HashMap<ShoptetEshopId, EshopSignatureKey>>>,
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

    /// Nothing here outlives the process: the document goes at once.
    async fn schedule_deletion(
        &self,
        shop: &ShopRef,
        _recovery: RecoveryWindow,
    ) -> Result<(), StoreError> {
        locked(&self.documents).remove(&shop.key());
        if let ShopRef::Shoptet(eshop_id) = shop {
            locked(&self.signature_keys).remove(eshop_id);
        }
        Ok(())
    }

    async fn save_signature_key(
        &self,
        eshop_id: ShoptetEshopId,
        key: &EshopSignatureKey,
    ) -> Result<(), StoreError> {
        locked(&self.signature_keys).insert(eshop_id, key.clone());
        Ok(())
    }

    async fn load_signature_key(
        &self,
        eshop_id: ShoptetEshopId,
    ) -> Result<Option<EshopSignatureKey>, StoreError> {
        Ok(locked(&self.signature_keys).get(&eshop_id).cloned())
    }
}

impl InstallationInventory for MemoryInstallationStore {
    async fn list_installations(
        &self,
        query: &InventoryQuery,
    ) -> Result<InventoryPage, StoreError> {
        let start = match &query.after {
            Some(after) => Bound::Excluded(key_after(after)?),
            None => Bound::Unbounded,
        };
        let documents = locked(&self.documents);
        let mut keys = documents
            .range((start, Bound::Unbounded))
            .map(|(key, _)| key);
        let shops = keys
            .by_ref()
            .take(page_limit(query))
            .map(|key| shop_of_key(key))
            .collect::<Result<Vec<_>, _>>()?;
        let next = match (shops.last(), keys.next()) {
            (Some(last), Some(_)) => Some(InventoryCursor::new(last.key())),
            _ => None,
        };
        Ok(InventoryPage { shops, next })
    }
}

/// The installation registry in process memory, ordered by
/// [`ShopRef::key`] (the order [`InstallationRegistry::list`] pages in),
/// with its outbox of lifecycle events: both behind one lock, so a change
/// and its event are one write.
#[derive(Clone, Default)]
pub struct MemoryRegistry {
    state: Arc<Mutex<RegistryState>>,
}

#[derive(Default)]
struct RegistryState {
    registrations: BTreeMap<String, Registration>,
    /// Every event committed, oldest first, and whether it was delivered.
    outbox: Vec<(InstallationEvent, bool)>,
}

impl MemoryRegistry {
    /// Every event committed so far, oldest first (for tests).
    pub fn events(&self) -> Vec<InstallationEvent> {
        locked(&self.state)
            .outbox
            .iter()
            .map(|(event, _)| event.clone())
            .collect()
    }
}

impl InstallationRegistry for MemoryRegistry {
    async fn registration(&self, shop: &ShopRef) -> Result<Option<Registration>, StoreError> {
        Ok(locked(&self.state).registrations.get(&shop.key()).cloned())
    }

    async fn record(
        &self,
        shop: &ShopRef,
        change: &StatusChange,
    ) -> Result<Option<Registration>, StoreError> {
        let mut state = locked(&self.state);
        let previous = state.registrations.get(&shop.key()).cloned();
        let Some((next, event)) = apply_change(shop, previous.as_ref(), change) else {
            return Ok(previous);
        };
        state.registrations.insert(shop.key(), next);
        state.outbox.extend(event.map(|event| (event, false)));
        Ok(previous)
    }

    async fn record_mint(
        &self,
        shop: &ShopRef,
        outcome: &MintOutcome,
        at: SystemTime,
    ) -> Result<Option<InstallationEvent>, StoreError> {
        let mut state = locked(&self.state);
        let decided = (state.registrations.get(&shop.key()))
            .and_then(|previous| apply_mint(previous, outcome, at));
        let Some((next, event)) = decided else {
            return Ok(None);
        };
        state.registrations.insert(shop.key(), next);
        state
            .outbox
            .extend(event.clone().map(|event| (event, false)));
        Ok(event)
    }

    async fn claim_recheck(
        &self,
        shop: &ShopRef,
        now: SystemTime,
        next: SystemTime,
    ) -> Result<bool, StoreError> {
        match locked(&self.state).registrations.get_mut(&shop.key()) {
            Some(registration)
                if registration.status == InstallationStatus::Suspended
                    && registration.recheck_at.is_none_or(|at| at <= now) =>
            {
                registration.recheck_at = Some(next);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn list(&self, query: &RegistryQuery) -> Result<RegistryPage, StoreError> {
        let state = locked(&self.state);
        let registrations = &state.registrations;
        let start = match &query.after {
            Some(after) => Bound::Excluded(after.key()),
            None => Bound::Unbounded,
        };
        let mut matching = registrations
            .range((start, Bound::Unbounded))
            .map(|(_, registration)| registration)
            .filter(|registration| {
                query
                    .platform
                    .is_none_or(|platform| registration.shop.platform() == platform)
                    && query
                        .status
                        .is_none_or(|status| registration.status == status)
            });
        let page: Vec<Registration> = matching.by_ref().take(query.limit.get()).cloned().collect();
        let next_after = match (page.last(), matching.next()) {
            (Some(last), Some(_)) => Some(last.shop.clone()),
            _ => None,
        };
        Ok(RegistryPage {
            registrations: page,
            next_after,
        })
    }
}

impl EventOutbox for MemoryRegistry {
    async fn pending(&self, limit: usize) -> Result<Vec<InstallationEvent>, StoreError> {
        Ok(locked(&self.state)
            .outbox
            .iter()
            .filter(|(_, delivered)| !delivered)
            .take(limit)
            .map(|(event, _)| event.clone())
            .collect())
    }

    async fn delivered(&self, id: &str) -> Result<(), StoreError> {
        for (event, delivered) in &mut locked(&self.state).outbox {
            if event.id == id {
                *delivered = true;
            }
        }
        Ok(())
    }
}

/// The token cache in process memory, with the same conditional semantics
/// as the DynamoDB adapter (one lock stands in for conditional writes).
/// Like the token table, it also keeps the accepted signed redirects.
#[derive(Clone, Default)]
pub struct MemoryTokenCache {
    entries: Arc<Mutex<HashMap<String, CacheEntry>>>,
    redirects: Arc<Mutex<HashMap<String, AcceptedRedirect>>>,
    forwarded: Arc<Mutex<HashMap<DeliveryFingerprint, SystemTime>>>,
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

/// Records are kept past `expires_at`: a stale redirect fails its
/// timestamp check before it gets here, so forgetting is only housekeeping.
impl SignedRedirects for MemoryTokenCache {
    async fn accept_once(
        &self,
        shop: &ShopRef,
        redirect: &AcceptedRedirect,
    ) -> Result<RedirectAcceptance, StoreError> {
        let mut redirects = locked(&self.redirects);
        let acceptance = redirect_acceptance(redirects.get(&shop.key()), redirect);
        if let RedirectAcceptance::Accepted { .. } = acceptance {
            redirects.insert(shop.key(), redirect.clone());
        }
        Ok(acceptance)
    }

    async fn withdraw(
        &self,
        shop: &ShopRef,
        redirect: &AcceptedRedirect,
        previous: Option<&AcceptedRedirect>,
    ) -> Result<(), StoreError> {
        let mut redirects = locked(&self.redirects);
        let still_ours = redirects.get(&shop.key()).is_some_and(|current| {
            current.signed_at == redirect.signed_at && current.digest == redirect.digest
        });
        if still_ours {
            match previous {
                Some(previous) => redirects.insert(shop.key(), previous.clone()),
                None => redirects.remove(&shop.key()),
            };
        }
        Ok(())
    }
}

/// Records are kept past `keep_until`, as DynamoDB's TTL may keep them.
impl DeliveryLog for MemoryTokenCache {
    async fn was_forwarded(&self, delivery: &DeliveryFingerprint) -> Result<bool, StoreError> {
        Ok(locked(&self.forwarded).contains_key(delivery))
    }

    async fn record_forwarded(
        &self,
        delivery: &DeliveryFingerprint,
        keep_until: SystemTime,
    ) -> Result<(), StoreError> {
        locked(&self.forwarded).insert(*delivery, keep_until);
        Ok(())
    }

    async fn claim(
        &self,
        delivery: &DeliveryFingerprint,
        keep_until: SystemTime,
    ) -> Result<bool, StoreError> {
        let mut forwarded = locked(&self.forwarded);
        if forwarded
            .get(delivery)
            .is_some_and(|until| *until > SystemTime::now())
        {
            return Ok(false);
        }
        forwarded.insert(*delivery, keep_until);
        Ok(true)
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
