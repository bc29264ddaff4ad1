//! Storage ports: what the functions need from storage, one small trait per
//! capability, and the records they exchange. The in-memory adapters live
//! beside this file; the others in their own crates (`broker-aws`,
//! `broker-sqlite`), which use the helpers for adapters below.

use std::future::Future;
use std::time::SystemTime;

use serde::Serialize;
use serde::de::DeserializeOwned;

use std::num::NonZeroUsize;

use crate::events::{InstallationEvent, MintOutcome};
use crate::ids::{Platform, ShopRef, ShoprenterShopName, ShoptetEshopId};
use crate::model::{
    AcceptedRedirect, CacheEntry, CachedToken, DeliveryFingerprint, InstallationStatus,
    Registration, ShoprenterCredentials, ShoptetInstallationRecord, StatusChange,
};
use crate::secret::EshopSignatureKey;
pub mod memory;
pub mod raw;

/// Why a store call failed. The detail is for logs and never holds secret
/// material (adapters keep only error codes from their backend).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// Another writer holds the store (SQLite's lock); the same call may
    /// succeed once it lets go.
    #[error("the store is busy: another writer holds it")]
    Busy,
    #[error("a stored record is unreadable: {0}")]
    Corrupt(String),
    /// A listing was asked to continue from a cursor this store never gave
    /// (or, for Secrets Manager, one it no longer takes).
    #[error("{0:?} is not (or no longer) a listing cursor of this store")]
    ForeignCursor(String),
}

/// Logs a store failure where it turns into a caller's `store_unavailable`:
/// the one place store errors are logged (their detail holds no secret).
pub fn log_failure(error: &StoreError) {
    tracing::error!(%error, "store call failed");
}

/// Whether a save created the record or replaced an earlier one (a reinstall).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveOutcome {
    Created,
    Replaced,
}

/// Installations and credentials: secrets that live as long as the install,
/// one JSON document per shop. Adapters store documents; the typed methods
/// are shared.
pub trait InstallationStore: Send + Sync {
    /// Creates the shop's document, or adds a new version if the shop has one
    /// (a reinstall). Never deletes.
    fn save_document(
        &self,
        shop: &ShopRef,
        json: String,
    ) -> impl Future<Output = Result<SaveOutcome, StoreError>> + Send;

    /// The shop's current document, if any. A document scheduled for
    /// deletion is gone.
    fn load_document(
        &self,
        shop: &ShopRef,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Deletes the shop's document after `recovery`, never at once where the
    /// backend can keep it (a later save within the window restores it).
    /// Idempotent: an absent or already scheduled document is `Ok`.
    fn schedule_deletion(
        &self,
        shop: &ShopRef,
        recovery: RecoveryWindow,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Keeps a Shoptet installation's e-shop webhook signature key beside
    /// its document (never inside it: a registration racing a reinstall
    /// would write the old OAuth token back), replacing any earlier key.
    /// [`Self::schedule_deletion`] deletes it with the installation; a shop
    /// listing never meets it. A store may refuse it for a shop without a
    /// live installation (Secrets Manager keeps it in the installation's
    /// secret).
    fn save_signature_key(
        &self,
        eshop_id: ShoptetEshopId,
        key: &EshopSignatureKey,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The installation's current signature key, if it has one (none once
    /// the installation is scheduled for deletion).
    fn load_signature_key(
        &self,
        eshop_id: ShoptetEshopId,
    ) -> impl Future<Output = Result<Option<EshopSignatureKey>, StoreError>> + Send;

    fn save_shoptet_installation(
        &self,
        record: &ShoptetInstallationRecord,
    ) -> impl Future<Output = Result<SaveOutcome, StoreError>> + Send {
        let json = to_document(record);
        async move {
            self.save_document(&ShopRef::Shoptet(record.installation.eshop_id), json?)
                .await
        }
    }

    fn load_shoptet_installation(
        &self,
        eshop_id: ShoptetEshopId,
    ) -> impl Future<Output = Result<Option<ShoptetInstallationRecord>, StoreError>> + Send {
        async move {
            let shop = ShopRef::Shoptet(eshop_id);
            from_document(&shop, self.load_document(&shop).await?)
        }
    }

    fn save_shoprenter_credentials(
        &self,
        shop: &ShoprenterShopName,
        credentials: &ShoprenterCredentials,
    ) -> impl Future<Output = Result<SaveOutcome, StoreError>> + Send {
        let json = to_document(credentials);
        async move {
            self.save_document(&ShopRef::Shoprenter(shop.clone()), json?)
                .await
        }
    }

    fn load_shoprenter_credentials(
        &self,
        shop: &ShoprenterShopName,
    ) -> impl Future<Output = Result<Option<ShoprenterCredentials>, StoreError>> + Send {
        async move {
            let shop = ShopRef::Shoprenter(shop.clone());
            from_document(&shop, self.load_document(&shop).await?)
        }
    }
}

fn to_document(value: &impl Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|_| StoreError::Corrupt("record does not serialize".into()))
}

/// serde's message could quote a secret: only the shop is named.
fn from_document<T: DeserializeOwned>(
    shop: &ShopRef,
    json: Option<String>,
) -> Result<Option<T>, StoreError> {
    json.map(|json| {
        serde_json::from_str(&json)
            .map_err(|_| StoreError::Corrupt(format!("the record of {} is unreadable", shop.key())))
    })
    .transpose()
}

/// How long a deleted installation's secret stays restorable: Secrets
/// Manager's recovery window, 7 to 30 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryWindow(u8);

impl RecoveryWindow {
    pub const DEFAULT: Self = Self(7);

    pub fn days(days: u64) -> Option<Self> {
        (7..=30).contains(&days).then_some(Self(days as u8))
    }

    pub fn in_days(self) -> i64 {
        i64::from(self.0)
    }

    pub fn duration(self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.0) * 86_400)
    }
}

impl Default for RecoveryWindow {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The e-shop webhook notifications already forwarded to the bus, so a
/// platform's retry, a reconciled copy of a live delivery, or a replay
/// forwards nothing twice. Kept in the token table's backend (TTL), under
/// keys no shop lookup meets.
pub trait DeliveryLog: Send + Sync {
    /// Whether the notification was forwarded (and not yet forgotten).
    fn was_forwarded(
        &self,
        delivery: &DeliveryFingerprint,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Records it forwarded; the backend may forget it after `keep_until`.
    /// Idempotent.
    fn record_forwarded(
        &self,
        delivery: &DeliveryFingerprint,
        keep_until: SystemTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records it until `keep_until` only if no live record exists (none,
    /// or one whose `keep_until` has passed), in one conditional write:
    /// `true` for exactly one of any number of concurrent callers. A lease
    /// for work that must happen once per occasion (renewing an
    /// installation's key once per install event, however often the event
    /// is delivered); [`Self::record_forwarded`] then keeps it longer.
    fn claim(
        &self,
        delivery: &DeliveryFingerprint,
        keep_until: SystemTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// The key a table adapter keeps a forwarded delivery under, beside (never
/// equal to) any [`ShopRef::key`].
pub fn delivery_key(delivery: &DeliveryFingerprint) -> String {
    format!("eshop-webhook#{}", delivery.to_hex())
}

/// The name an installation store keeps a Shoptet installation's signature
/// key under, beside its document: the DynamoDB store's item key suffix
/// (Secrets Manager keeps it as a labelled version of the installation's
/// own secret).
pub const SIGNATURE_KEY_SUFFIX: &str = "webhook-signature-key";

/// Which shops have an installation document: what copying one store into
/// another (the migration command) needs, and nothing a request asks. A
/// separate port so that the functions' stores need not offer it.
pub trait InstallationInventory: Send + Sync {
    /// One page of the shops whose document is live (a document scheduled
    /// for deletion is gone, as for [`InstallationStore::load_document`]).
    /// Pages may hold fewer than `limit` shops, even none (backends filter
    /// after reading); only `next: None` ends a listing. Order is the
    /// adapter's own. A shop saved while a listing runs may be missed.
    fn list_installations(
        &self,
        query: &InventoryQuery,
    ) -> impl Future<Output = Result<InventoryPage, StoreError>> + Send;
}

/// What page of the inventory to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryQuery {
    /// At most this many shops, capped at [`MAX_PAGE`].
    pub limit: NonZeroUsize,
    /// Where the previous page ended; `None` starts from the beginning.
    pub after: Option<InventoryCursor>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InventoryPage {
    pub shops: Vec<ShopRef>,
    /// Where the next page starts; `None` when the listing is complete.
    pub next: Option<InventoryCursor>,
}

/// Where a listing continues: opaque to the caller, and meaningful only to
/// the adapter (and the store) that gave it. Text, so a command can print it
/// and take it back to resume a run. Holds no secret: a shop's key, or the
/// backend's pagination token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InventoryCursor(String);

impl InventoryCursor {
    pub fn new(cursor: impl Into<String>) -> Self {
        Self(cursor.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for InventoryCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A cursor the adapter cannot have given (a typo in a resumed command).
pub fn foreign_cursor(cursor: &InventoryCursor) -> StoreError {
    StoreError::ForeignCursor(cursor.as_str().to_owned())
}

/// The shop a key-ordered adapter (memory, SQLite, the DynamoDB table)
/// stored under `key`: those stores key documents by [`ShopRef::key`] only,
/// so any other key is damage, not another kind of record.
pub fn shop_of_key(key: &str) -> Result<ShopRef, StoreError> {
    ShopRef::from_key(key)
        .map_err(|_| StoreError::Corrupt(format!("an installation is keyed {key:?}")))
}

/// Where a key-ordered listing resumes: after the shop the cursor names.
pub fn key_after(cursor: &InventoryCursor) -> Result<String, StoreError> {
    ShopRef::from_key(cursor.as_str())
        .map(|shop| shop.key())
        .map_err(|_| foreign_cursor(cursor))
}

/// A page's limit as the backends take it, capped at [`MAX_PAGE`].
pub fn page_limit(query: &InventoryQuery) -> usize {
    query.limit.get().min(MAX_PAGE)
}

/// The installation registry: every shop's status, without secrets, so
/// checking or listing installations costs no secret read.
pub trait InstallationRegistry: Send + Sync {
    fn registration(
        &self,
        shop: &ShopRef,
    ) -> impl Future<Output = Result<Option<Registration>, StoreError>> + Send;

    /// Records a confirmed change in one atomic write, with the lifecycle
    /// event it is ([`crate::events::apply_change`]) in the same write, and
    /// returns the registration it replaced, so concurrent callers can tell
    /// which one made the change (and exactly one event is written).
    fn record(
        &self,
        shop: &ShopRef,
        change: &StatusChange,
    ) -> impl Future<Output = Result<Option<Registration>, StoreError>> + Send;

    /// Counts a vend's mint for a shop the registry knows
    /// ([`crate::events::apply_mint`]), with its event in the same atomic
    /// write; the event written, if any. An unknown shop: nothing.
    fn record_mint(
        &self,
        shop: &ShopRef,
        outcome: &MintOutcome,
        at: SystemTime,
    ) -> impl Future<Output = Result<Option<InstallationEvent>, StoreError>> + Send;

    /// Claims a suspended shop's due re-check: `true` for exactly one caller
    /// while the shop is `Suspended` with `recheck_at` missing or not after
    /// `now`, moving `recheck_at` to `next`.
    fn claim_recheck(
        &self,
        shop: &ShopRef,
        now: SystemTime,
        next: SystemTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// One page of registrations. Pages may hold fewer than `limit` items
    /// (DynamoDB filters after reading); only `next_cursor: None` ends a
    /// listing. Order is the adapter's own.
    fn list(
        &self,
        query: &RegistryQuery,
    ) -> impl Future<Output = Result<RegistryPage, StoreError>> + Send;
}

/// Lifecycle events committed by a registry that has no stream of its own
/// (SQLite, memory), oldest first, until delivered. The DynamoDB registry
/// needs none: its table's stream is its outbox.
pub trait EventOutbox: Send + Sync {
    /// Up to `limit` undelivered events, in the order they were committed.
    fn pending(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<InstallationEvent>, StoreError>> + Send;

    /// Marks an event delivered; it is not offered again. Idempotent.
    fn delivered(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// What to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryQuery {
    pub platform: Option<Platform>,
    pub status: Option<InstallationStatus>,
    pub limit: NonZeroUsize,
    /// Continue after this shop (the last one of the previous page).
    pub after: Option<ShopRef>,
}

/// The most a page may hold.
pub const MAX_PAGE: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegistryPage {
    pub registrations: Vec<Registration>,
    /// Where the next page starts; `None` when the listing is complete.
    pub next_after: Option<ShopRef>,
}

/// The outcome of asking for a shop's refresh lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseAttempt {
    /// The caller holds the lease; the entry as it is now.
    Acquired(CacheEntry),
    /// Someone else holds a live lease; the entry as it was.
    Busy(CacheEntry),
}

/// The per-shop API token cache shared by every instance. Writes that race
/// are decided by the backend's conditional writes, never by the caller.
pub trait TokenCache: Send + Sync {
    /// A strongly consistent read of the shop's entry.
    fn load(
        &self,
        shop: &ShopRef,
    ) -> impl Future<Output = Result<Option<CacheEntry>, StoreError>> + Send;

    /// Takes the lease for `owner` until `until`, unless another owner holds
    /// one that is still live at `now`. An expired lease is taken over.
    fn try_lease(
        &self,
        shop: &ShopRef,
        owner: &str,
        now: SystemTime,
        until: SystemTime,
    ) -> impl Future<Output = Result<LeaseAttempt, StoreError>> + Send;

    /// Stores a freshly minted token with the shop's new ledger and releases
    /// the lease, in one write that succeeds only while `owner` still holds
    /// the lease. `Ok(false)`: the lease was lost, nothing was written.
    fn store_and_release(
        &self,
        shop: &ShopRef,
        owner: &str,
        token: &CachedToken,
        ledger: &[SystemTime],
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Gives the lease up without storing anything (the mint failed).
    fn release(
        &self,
        shop: &ShopRef,
        owner: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Drops whatever is cached for the shop (its credentials changed).
    fn forget(&self, shop: &ShopRef) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// What became of a signed redirect offered to [`SignedRedirects::accept_once`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedirectAcceptance {
    /// Newer than anything accepted for the shop: act on it. `previous` is
    /// the record it replaced, for [`SignedRedirects::withdraw`].
    Accepted { previous: Option<AcceptedRedirect> },
    /// The very redirect accepted last (same signed time, same signature),
    /// on whichever route: a reload or a replay. Nothing to do.
    Repeat,
    /// Signed no later than the redirect accepted last, and not it: an old
    /// query (replayed, or overtaken by a newer one). Nothing to do.
    Outdated,
}

/// Signed lifecycle redirects accepted once, shared by every instance: per
/// shop, the newest accepted redirect. Accepting is one conditional write
/// (the redirect must be signed strictly later than the one recorded), so
/// of concurrent or repeated offers exactly one is accepted, and an older
/// redirect never undoes a newer one. A record may be forgotten after its
/// `expires_at` (DynamoDB's TTL): by then every redirect it orders fails
/// the timestamp check anyway.
pub trait SignedRedirects: Send + Sync {
    fn accept_once(
        &self,
        shop: &ShopRef,
        redirect: &AcceptedRedirect,
    ) -> impl Future<Output = Result<RedirectAcceptance, StoreError>> + Send;

    /// Undoes an acceptance whose action failed, so the platform's retry
    /// (or the merchant's reload) is accepted: puts `previous` back (none:
    /// no record), only while `redirect` is still the shop's record.
    fn withdraw(
        &self,
        shop: &ShopRef,
        redirect: &AcceptedRedirect,
        previous: Option<&AcceptedRedirect>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The decision every adapter makes, given the shop's current record.
pub fn redirect_acceptance(
    current: Option<&AcceptedRedirect>,
    offered: &AcceptedRedirect,
) -> RedirectAcceptance {
    match current {
        None => RedirectAcceptance::Accepted { previous: None },
        Some(current) if current.signed_at < offered.signed_at => RedirectAcceptance::Accepted {
            previous: Some(current.clone()),
        },
        Some(current)
            if current.signed_at == offered.signed_at && current.digest == offered.digest =>
        {
            RedirectAcceptance::Repeat
        }
        Some(_) => RedirectAcceptance::Outdated,
    }
}

/// The key under which a table adapter keeps a shop's accepted redirect,
/// beside (never equal to) [`ShopRef::key`], so no shop listing or lookup
/// of the token table meets it.
pub fn redirect_key(shop: &ShopRef) -> String {
    format!("signed-redirect#{}", shop.key())
}

/// Cache items outlive their newest token by this much before the backend's
/// TTL may delete them, so the ledger is kept while any minted token lives.
pub const EXPIRY_GRACE: std::time::Duration = std::time::Duration::from_secs(3600);

/// When the backend may delete the shop's entry.
pub fn entry_expiry(token: &CachedToken, ledger: &[SystemTime]) -> SystemTime {
    ledger
        .iter()
        .copied()
        .chain([token.expires_at])
        .max()
        .unwrap_or(token.expires_at)
        + EXPIRY_GRACE
}

/// The three ports a function works with, over one backend or several.
#[derive(Debug, Clone, Default)]
pub struct Stores<I, C, R> {
    pub installations: I,
    pub tokens: C,
    pub registry: R,
}

impl<S: Clone> Stores<S, S, S> {
    /// Every port on one backend (e.g. one SQLite file).
    pub fn all(store: S) -> Self {
        Self {
            installations: store.clone(),
            tokens: store.clone(),
            registry: store,
        }
    }
}
