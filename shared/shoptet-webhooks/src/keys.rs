//! Signature keys as the receiving route reads them: from the installation
//! store once, then from memory for a while, so a flood of deliveries for
//! one shop costs one store read; and the shops that have none (unknown,
//! uninstalled) are remembered too, so a flood of forged ids costs one
//! registry read each and no secret read.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use broker_domain::ids::ShoptetEshopId;
use broker_domain::secret::EshopSignatureKey;

/// How long a key read from the store is used before it is read again.
/// A key renewed meanwhile (a reinstall) is read at once when the cached
/// one fails to verify, so this only bounds how long a deleted key (an
/// uninstall's) still verifies in a warm instance.
pub(crate) const KEY_TTL: Duration = Duration::from_secs(60);
/// A key that failed to verify is read again from the store at most this
/// often per shop, so forged signatures cannot turn into store reads (and
/// a reinstall's new key is read within a second).
pub(crate) const RELOAD_AFTER: Duration = Duration::from_secs(1);
/// Shops remembered; beyond this the cache starts afresh (a flood of
/// distinct ids must not grow memory without bound).
const CAPACITY: usize = 10_000;

#[derive(Clone)]
pub(crate) enum Known {
    Key(EshopSignatureKey),
    /// No key: unknown shop, uninstalled, or webhooks not registered yet.
    None,
}

#[derive(Default)]
pub(crate) struct KeyCache {
    entries: Mutex<HashMap<ShoptetEshopId, (Known, Instant)>>,
}

impl KeyCache {
    /// The remembered answer and its age, while younger than [`KEY_TTL`].
    pub(crate) fn get(&self, eshop_id: ShoptetEshopId) -> Option<(Known, Duration)> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (known, at) = entries.get(&eshop_id)?;
        let age = at.elapsed();
        (age < KEY_TTL).then(|| (known.clone(), age))
    }

    pub(crate) fn put(&self, eshop_id: ShoptetEshopId, known: Known) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(eshop_id, (known, Instant::now()));
    }
}
