//! Installations, credentials, the token cache and the installation registry
//! in one SQLite file, for running the broker on one machine without AWS.
//!
//! The semantics are those of the Secrets Manager and DynamoDB adapters:
//! a save adds a version; a scheduled deletion removes the shop's versions
//! (there is no recovery window: a reinstall saves afresh), and with a
//! Shoptet shop's its e-shop webhook signature key; the lease, the
//! store-and-release, the registry's record and its re-check claim are
//! conditional writes, each decided inside one `BEGIN IMMEDIATE`
//! transaction, so several [`SqliteStore`]s (in one process or in several)
//! may share one file and still agree on who refreshes a shop.
//!
//! The file holds credentials in the clear, so it is created readable by its
//! owner only (0600, and so are SQLite's `-wal` and `-shm` companions).
//! rusqlite blocks, so every call runs on Tokio's blocking pool.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};

use broker_domain::events::{InstallationEvent, MintOutcome, apply_change, apply_mint};
use broker_domain::ids::{ShopRef, ShoptetEshopId};
use broker_domain::model::{
    AcceptedRedirect, CacheEntry, CachedToken, DeliveryFingerprint, InstallationStatus,
    Registration, SignatureDigest, StatusChange,
};
use broker_domain::secret::{EshopSignatureKey, ExposeSecret};
use broker_domain::storage::raw::{
    RawEntry, RawRegistration, from_millis, from_stored, millis, to_stored,
};
use broker_domain::storage::{
    DeliveryLog, EXPIRY_GRACE, EventOutbox, InstallationInventory, InstallationRegistry,
    InstallationStore, InventoryCursor, InventoryPage, InventoryQuery, LeaseAttempt,
    RecoveryWindow, RedirectAcceptance, RegistryPage, RegistryQuery, SaveOutcome, SignedRedirects,
    StoreError, TokenCache, delivery_key, entry_expiry, key_after, page_limit, redirect_acceptance,
    shop_of_key,
};

/// The schema this code writes (`PRAGMA user_version`): the number of
/// [`MIGRATIONS`] applied.
const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// How long a call waits for another connection's write to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Each step takes the schema from version `index` to `index + 1`; a file
/// of an older version gets the steps it lacks when it is opened.
const MIGRATIONS: [&str; 5] = [
    SCHEMA_V1,
    REGISTRY_V2,
    SIGNED_REDIRECTS_V3,
    EVENTS_V4,
    ESHOP_WEBHOOKS_V5,
];

const SCHEMA_V1: &str = "
CREATE TABLE secrets (
    name        TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    value       TEXT    NOT NULL,
    saved_at_ms INTEGER NOT NULL,
    PRIMARY KEY (name, version)
) STRICT;
CREATE TABLE token_cache (
    key              TEXT PRIMARY KEY NOT NULL,
    token            TEXT,
    token_expires_ms INTEGER,
    scopes           TEXT,
    ledger           TEXT,
    lease_owner      TEXT,
    lease_until_ms   INTEGER,
    ttl_ms           INTEGER
) STRICT;
";

/// The installation registry; times are epoch milliseconds.
const REGISTRY_V2: &str = "
CREATE TABLE registry (
    shop        TEXT    PRIMARY KEY NOT NULL,
    platform    TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    installed_at INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    recheck_at  INTEGER
) STRICT;
";

/// Per shop, the newest signed lifecycle redirect accepted (Shoprenter's
/// install and uninstall): its signed time in epoch milliseconds and the
/// SHA-256 of its signature in hex. A table of its own: no listing of
/// installations or registrations reads it.
const SIGNED_REDIRECTS_V3: &str = "
CREATE TABLE signed_redirects (
    shop         TEXT    PRIMARY KEY NOT NULL,
    signed_at    INTEGER NOT NULL,
    digest       TEXT    NOT NULL,
    expires_at   INTEGER NOT NULL
) STRICT;
";

/// Lifecycle events: each registration's sequence number and count of
/// refused mints, and the outbox the registry writes each event into in the
/// same transaction as its change (what DynamoDB's stream is in the cloud);
/// a delivered event's row is deleted.
const EVENTS_V4: &str = "
ALTER TABLE registry ADD COLUMN sequence INTEGER NOT NULL DEFAULT 0;
ALTER TABLE registry ADD COLUMN mint_failures INTEGER NOT NULL DEFAULT 0;
CREATE TABLE event_outbox (
    position     INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT    NOT NULL UNIQUE,
    event        TEXT    NOT NULL
) STRICT;
";

/// E-shop webhooks: each Shoptet installation's signature key, in a table
/// of its own beside the installation's document (never inside it: a key
/// registration that read the document, then raced a reinstall, would
/// write the old OAuth token back), so that no listing of installations
/// reads it; and the notifications already forwarded, by
/// [`broker_domain::storage::delivery_key`], with the time (epoch
/// milliseconds) after which they may be forgotten.
const ESHOP_WEBHOOKS_V5: &str = "
CREATE TABLE signature_keys (
    eshop_id     INTEGER PRIMARY KEY NOT NULL,
    key          TEXT    NOT NULL
) STRICT;
CREATE TABLE forwarded_deliveries (
    key          TEXT    PRIMARY KEY NOT NULL,
    keep_until   INTEGER NOT NULL
) STRICT;
";

const REGISTRATION_COLUMNS: &str = "shop, platform, status, installed_at, updated_at, recheck_at, \
     sequence, mint_failures FROM registry";

const ENTRY_COLUMNS: &str =
    "token, token_expires_ms, scopes, ledger, lease_owner, lease_until_ms FROM token_cache";

/// Every storage port over one SQLite database file. Cloning shares the
/// connection; opening the same path again gives an independent connection
/// to the same data (as another instance of the broker would have).
#[derive(Clone)]
pub struct SqliteStore {
    connection: Arc<Mutex<Connection>>,
    path: Arc<PathBuf>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens the database at `path`, creating it (and missing parent
    /// directories, owner-only) if needed. Blocks briefly: call it at start-up.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        prepare_file(&path)?;
        let mut connection = Connection::open(&path).map_err(|e| unavailable(&e))?;
        connection
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| unavailable(&e))?;
        retry_while_busy(|| init(&mut connection))?;
        restrict_companions(&path)?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
            path: Arc::new(path),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `call` on the blocking pool with this store's connection.
    async fn run<T, F>(&self, call: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let connection = Arc::clone(&self.connection);
        tokio::task::spawn_blocking(move || {
            // A panic mid-call rolled its transaction back when it unwound.
            let mut connection = connection.lock().unwrap_or_else(PoisonError::into_inner);
            call(&mut connection)
        })
        .await
        .map_err(|_| StoreError::Unavailable("sqlite: the database call did not finish".into()))?
    }
}

impl InstallationStore for SqliteStore {
    async fn save_document(&self, shop: &ShopRef, json: String) -> Result<SaveOutcome, StoreError> {
        let name = shop.key();
        let saved_at = millis(SystemTime::now());
        self.run(move |connection| {
            write(connection, |tx| {
                let latest: Option<i64> = tx.query_row(
                    "SELECT MAX(version) FROM secrets WHERE name = ?1",
                    [&name],
                    |row| row.get(0),
                )?;
                tx.execute(
                    "INSERT INTO secrets (name, version, value, saved_at_ms) VALUES (?1, ?2, ?3, ?4)",
                    params![name, latest.unwrap_or(0) + 1, json, saved_at],
                )?;
                Ok(match latest {
                    None => SaveOutcome::Created,
                    Some(_) => SaveOutcome::Replaced,
                })
            })
        })
        .await
    }

    async fn load_document(&self, shop: &ShopRef) -> Result<Option<String>, StoreError> {
        let name = shop.key();
        self.run(move |connection| {
            connection
                .query_row(
                    "SELECT value FROM secrets WHERE name = ?1 ORDER BY version DESC LIMIT 1",
                    [&name],
                    |row| row.get(0),
                )
                .optional()
                .map_err(|e| unavailable(&e))
        })
        .await
    }

    /// No recovery window here: the shop's versions go at once, and with a
    /// Shoptet shop's its signature key, in the same transaction.
    async fn schedule_deletion(
        &self,
        shop: &ShopRef,
        _recovery: RecoveryWindow,
    ) -> Result<(), StoreError> {
        let name = shop.key();
        let eshop_id = match shop {
            ShopRef::Shoptet(eshop_id) => Some(eshop_column(*eshop_id)),
            ShopRef::Shoprenter(_) => None,
        };
        self.run(move |connection| {
            write(connection, |tx| {
                tx.execute("DELETE FROM secrets WHERE name = ?1", [&name])?;
                if let Some(eshop_id) = eshop_id {
                    tx.execute("DELETE FROM signature_keys WHERE eshop_id = ?1", [eshop_id])?;
                }
                Ok(())
            })
        })
        .await
    }

    /// One row per e-shop, replaced whole; no versions kept.
    async fn save_signature_key(
        &self,
        eshop_id: ShoptetEshopId,
        key: &EshopSignatureKey,
    ) -> Result<(), StoreError> {
        let eshop_id = eshop_column(eshop_id);
        let key = key.clone();
        self.run(move |connection| {
            write(connection, |tx| {
                tx.execute(
                    "INSERT INTO signature_keys (eshop_id, key) VALUES (?1, ?2)
                     ON CONFLICT (eshop_id) DO UPDATE SET key = excluded.key",
                    params![eshop_id, key.expose_secret()],
                )?;
                Ok(())
            })
        })
        .await
    }

    async fn load_signature_key(
        &self,
        eshop_id: ShoptetEshopId,
    ) -> Result<Option<EshopSignatureKey>, StoreError> {
        let eshop_id = eshop_column(eshop_id);
        let key: Option<String> = self
            .run(move |connection| {
                connection
                    .query_row(
                        "SELECT key FROM signature_keys WHERE eshop_id = ?1",
                        [eshop_id],
                        |row| row.get(0),
                    )
                    .optional()
                    .map_err(|e| unavailable(&e))
            })
            .await?;
        Ok(key.map(EshopSignatureKey::new))
    }
}

/// An e-shop id as SQLite's INTEGER (i64); ids past `i64::MAX` (Shoptet's
/// are far below) are stored as their two's complement, one to one.
fn eshop_column(eshop_id: ShoptetEshopId) -> i64 {
    eshop_id.get() as i64
}

/// A record is kept until a later insert prunes it, past its `keep_until`:
/// by then the port allows forgetting it.
impl DeliveryLog for SqliteStore {
    async fn was_forwarded(&self, delivery: &DeliveryFingerprint) -> Result<bool, StoreError> {
        let key = delivery_key(delivery);
        self.run(move |connection| {
            connection
                .query_row(
                    "SELECT 1 FROM forwarded_deliveries WHERE key = ?1",
                    [&key],
                    |_| Ok(()),
                )
                .optional()
                .map(|row| row.is_some())
                .map_err(|e| unavailable(&e))
        })
        .await
    }

    async fn record_forwarded(
        &self,
        delivery: &DeliveryFingerprint,
        keep_until: SystemTime,
    ) -> Result<(), StoreError> {
        let key = delivery_key(delivery);
        let (keep_until, now) = (millis(keep_until), millis(SystemTime::now()));
        self.run(move |connection| {
            write(connection, |tx| {
                prune_forwarded(tx, now)?;
                tx.execute(
                    "INSERT OR REPLACE INTO forwarded_deliveries (key, keep_until) VALUES (?1, ?2)",
                    params![key, keep_until],
                )?;
                Ok(())
            })
        })
        .await
    }

    async fn claim(
        &self,
        delivery: &DeliveryFingerprint,
        keep_until: SystemTime,
    ) -> Result<bool, StoreError> {
        let key = delivery_key(delivery);
        let (keep_until, now) = (millis(keep_until), millis(SystemTime::now()));
        self.run(move |connection| {
            write(connection, |tx| {
                prune_forwarded(tx, now)?;
                let inserted = tx.execute(
                    "INSERT OR IGNORE INTO forwarded_deliveries (key, keep_until) VALUES (?1, ?2)",
                    params![key, keep_until],
                )?;
                Ok(inserted == 1)
            })
        })
        .await
    }
}

/// A shop has an installation while any version of its document is left
/// (a scheduled deletion removes them all).
impl InstallationInventory for SqliteStore {
    async fn list_installations(
        &self,
        query: &InventoryQuery,
    ) -> Result<InventoryPage, StoreError> {
        let after = query.after.as_ref().map(key_after).transpose()?;
        let limit = page_limit(query);
        // One more than asked for: whether another page follows.
        let fetch = i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1);
        let names: Vec<String> = self
            .run(move |connection| {
                let mut statement = connection
                    .prepare(
                        "SELECT DISTINCT name FROM secrets
                         WHERE (?1 IS NULL OR name > ?1)
                         ORDER BY name LIMIT ?2",
                    )
                    .map_err(|e| unavailable(&e))?;
                statement
                    .query_map(params![after, fetch], |row| row.get(0))
                    .and_then(Iterator::collect::<rusqlite::Result<Vec<_>>>)
                    .map_err(|e| unavailable(&e))
            })
            .await?;
        let more = names.len() > limit;
        let shops = names
            .iter()
            .take(limit)
            .map(|name| shop_of_key(name))
            .collect::<Result<Vec<_>, _>>()?;
        let next = match shops.last() {
            Some(last) if more => Some(InventoryCursor::new(last.key())),
            _ => None,
        };
        Ok(InventoryPage { shops, next })
    }
}

impl InstallationRegistry for SqliteStore {
    async fn registration(&self, shop: &ShopRef) -> Result<Option<Registration>, StoreError> {
        let key = shop.key();
        self.run(move |connection| {
            read_registration(connection, &key)
                .map_err(|e| unavailable(&e))?
                .map(RawRegistration::into_registration)
                .transpose()
        })
        .await
    }

    async fn record(
        &self,
        shop: &ShopRef,
        change: &StatusChange,
    ) -> Result<Option<Registration>, StoreError> {
        let (at_shop, change) = (shop.clone(), change.clone());
        let decide =
            move |previous: Option<&Registration>| apply_change(&at_shop, previous, &change);
        let (previous, _) = self.write_decided(shop, decide).await?;
        Ok(previous)
    }

    async fn record_mint(
        &self,
        shop: &ShopRef,
        outcome: &MintOutcome,
        at: SystemTime,
    ) -> Result<Option<InstallationEvent>, StoreError> {
        let outcome = outcome.clone();
        let decide = move |previous: Option<&Registration>| {
            previous.and_then(|previous| apply_mint(previous, &outcome, at))
        };
        let (_, event) = self.write_decided(shop, decide).await?;
        Ok(event)
    }

    async fn claim_recheck(
        &self,
        shop: &ShopRef,
        now: SystemTime,
        next: SystemTime,
    ) -> Result<bool, StoreError> {
        let key = shop.key();
        let (now, next) = (millis(now), millis(next));
        self.run(move |connection| {
            write(connection, |tx| {
                let changed = tx.execute(
                    "UPDATE registry SET recheck_at = ?2
                     WHERE shop = ?1 AND status = ?3
                       AND (recheck_at IS NULL OR recheck_at <= ?4)",
                    params![key, next, InstallationStatus::Suspended.as_str(), now],
                )?;
                Ok(changed == 1)
            })
        })
        .await
    }

    async fn list(&self, query: &RegistryQuery) -> Result<RegistryPage, StoreError> {
        let after = query.after.as_ref().map(ShopRef::key);
        let platform = query.platform.map(|platform| platform.as_str());
        let status = query.status.map(InstallationStatus::as_str);
        let limit = query.limit.get();
        // One more than asked for: whether another page follows.
        let fetch = i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1);
        let rows = self
            .run(move |connection| {
                let mut statement = connection
                    .prepare(&format!(
                        "SELECT {REGISTRATION_COLUMNS}
                         WHERE (?1 IS NULL OR shop > ?1)
                           AND (?2 IS NULL OR platform = ?2)
                           AND (?3 IS NULL OR status = ?3)
                         ORDER BY shop LIMIT ?4"
                    ))
                    .map_err(|e| unavailable(&e))?;
                statement
                    .query_map(params![after, platform, status, fetch], registration_row)
                    .and_then(Iterator::collect::<rusqlite::Result<Vec<_>>>)
                    .map_err(|e| unavailable(&e))
            })
            .await?;
        let more = rows.len() > limit;
        let registrations = rows
            .into_iter()
            .take(limit)
            .map(RawRegistration::into_registration)
            .collect::<Result<Vec<_>, _>>()?;
        let next_after = if more {
            registrations.last().map(|last| last.shop.clone())
        } else {
            None
        };
        Ok(RegistryPage {
            registrations,
            next_after,
        })
    }
}

impl SqliteStore {
    /// In one transaction: reads the shop's registration, lets `decide` say
    /// what to write (nothing, or a registration and its event) and writes
    /// it with its outbox row. The registration read and the event written.
    async fn write_decided(
        &self,
        shop: &ShopRef,
        decide: impl FnOnce(Option<&Registration>) -> Option<(Registration, Option<InstallationEvent>)>
        + Send
        + 'static,
    ) -> Result<(Option<Registration>, Option<InstallationEvent>), StoreError> {
        let key = shop.key();
        self.run(move |connection| {
            transact(connection, |tx| {
                let previous = read_registration(tx, &key)
                    .map_err(|e| unavailable(&e))?
                    .map(RawRegistration::into_registration)
                    .transpose()?;
                let Some((next, event)) = decide(previous.as_ref()) else {
                    return Ok((previous, None));
                };
                save_registration(tx, &next, event.as_ref())?;
                Ok((previous, event))
            })
        })
        .await
    }
}

impl EventOutbox for SqliteStore {
    async fn pending(&self, limit: usize) -> Result<Vec<InstallationEvent>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let stored: Vec<String> = self
            .run(move |connection| {
                let mut statement = connection
                    .prepare("SELECT event FROM event_outbox ORDER BY position LIMIT ?1")
                    .map_err(|e| unavailable(&e))?;
                let rows = statement
                    .query_map([limit], |row| row.get(0))
                    .map_err(|e| unavailable(&e))?;
                rows.collect::<rusqlite::Result<Vec<String>>>()
                    .map_err(|e| unavailable(&e))
            })
            .await?;
        stored.iter().map(|json| from_stored(json)).collect()
    }

    async fn delivered(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.run(move |connection| {
            write(connection, |tx| {
                // Gone once delivered: the outbox keeps no personal data
                // (an install's contact e-mail) longer than it must.
                tx.execute("DELETE FROM event_outbox WHERE id = ?1", params![id])?;
                Ok(())
            })
        })
        .await
    }
}

impl TokenCache for SqliteStore {
    async fn load(&self, shop: &ShopRef) -> Result<Option<CacheEntry>, StoreError> {
        let key = shop.key();
        self.run(move |connection| {
            read_entry(connection, &key)
                .map_err(|e| unavailable(&e))?
                .map(RawEntry::into_entry)
                .transpose()
        })
        .await
    }

    async fn try_lease(
        &self,
        shop: &ShopRef,
        owner: &str,
        now: SystemTime,
        until: SystemTime,
    ) -> Result<LeaseAttempt, StoreError> {
        let key = shop.key();
        let owner = owner.to_owned();
        let (now, until_ms, ttl) = (millis(now), millis(until), millis(until + EXPIRY_GRACE));
        let (acquired, row) = self
            .run(move |connection| {
                write(connection, |tx| {
                    let old = read_entry(tx, &key)?;
                    let live = old.as_ref().is_some_and(|row| {
                        row.lease_owner.is_some() && row.lease_until_ms.is_none_or(|at| at >= now)
                    });
                    if live {
                        return Ok((false, old));
                    }
                    tx.execute(
                        "INSERT INTO token_cache (key, lease_owner, lease_until_ms, ttl_ms)
                         VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (key) DO UPDATE SET
                             lease_owner = excluded.lease_owner,
                             lease_until_ms = excluded.lease_until_ms,
                             ttl_ms = COALESCE(ttl_ms, excluded.ttl_ms)",
                        params![key, owner, until_ms, ttl],
                    )?;
                    Ok((true, read_entry(tx, &key)?))
                })
            })
            .await?;
        let entry = row
            .map(RawEntry::into_entry)
            .transpose()?
            .unwrap_or_default();
        Ok(if acquired {
            LeaseAttempt::Acquired(entry)
        } else {
            LeaseAttempt::Busy(entry)
        })
    }

    async fn store_and_release(
        &self,
        shop: &ShopRef,
        owner: &str,
        token: &CachedToken,
        ledger: &[SystemTime],
    ) -> Result<bool, StoreError> {
        let key = shop.key();
        let owner = owner.to_owned();
        let value = token.access_token.expose_secret().to_owned();
        let expires = millis(token.expires_at);
        let scopes = serde_json::to_string(&token.scopes)
            .map_err(|_| StoreError::Corrupt("scopes do not serialize".into()))?;
        let ledger_ms: Vec<i64> = ledger.iter().copied().map(millis).collect();
        let ledger_json = serde_json::to_string(&ledger_ms)
            .map_err(|_| StoreError::Corrupt("ledger does not serialize".into()))?;
        let ttl = millis(entry_expiry(token, ledger));
        self.run(move |connection| {
            write(connection, |tx| {
                let changed = tx.execute(
                    "UPDATE token_cache SET
                         token = ?3, token_expires_ms = ?4, scopes = ?5, ledger = ?6, ttl_ms = ?7,
                         lease_owner = NULL, lease_until_ms = NULL
                     WHERE key = ?1 AND lease_owner = ?2",
                    params![key, owner, value, expires, scopes, ledger_json, ttl],
                )?;
                Ok(changed == 1)
            })
        })
        .await
    }

    async fn release(&self, shop: &ShopRef, owner: &str) -> Result<(), StoreError> {
        let key = shop.key();
        let owner = owner.to_owned();
        self.run(move |connection| {
            write(connection, |tx| {
                // Someone took over an expired lease: nothing of ours to release.
                tx.execute(
                    "UPDATE token_cache SET lease_owner = NULL, lease_until_ms = NULL
                     WHERE key = ?1 AND lease_owner = ?2",
                    params![key, owner],
                )?;
                Ok(())
            })
        })
        .await
    }

    async fn forget(&self, shop: &ShopRef) -> Result<(), StoreError> {
        let key = shop.key();
        self.run(move |connection| {
            write(connection, |tx| {
                tx.execute("DELETE FROM token_cache WHERE key = ?1", [&key])?;
                Ok(())
            })
        })
        .await
    }
}

/// Decided inside one `BEGIN IMMEDIATE` transaction, like the lease. Rows
/// are kept past `expires_at` (one per shop): a redirect they order fails
/// its timestamp check by then, so dropping them is only housekeeping.
impl SignedRedirects for SqliteStore {
    async fn accept_once(
        &self,
        shop: &ShopRef,
        redirect: &AcceptedRedirect,
    ) -> Result<RedirectAcceptance, StoreError> {
        let key = shop.key();
        let offered = redirect.clone();
        self.run(move |connection| {
            // A corrupt record is reported, and nothing is written.
            write(connection, |tx| {
                let current = read_redirect(tx, &key)?;
                let acceptance = match current.map(raw_redirect).transpose() {
                    Ok(current) => redirect_acceptance(current.as_ref(), &offered),
                    Err(corrupt) => return Ok(Err(corrupt)),
                };
                if let RedirectAcceptance::Accepted { .. } = acceptance {
                    upsert_redirect(tx, &key, &offered)?;
                }
                Ok(Ok(acceptance))
            })?
        })
        .await
    }

    async fn withdraw(
        &self,
        shop: &ShopRef,
        redirect: &AcceptedRedirect,
        previous: Option<&AcceptedRedirect>,
    ) -> Result<(), StoreError> {
        let key = shop.key();
        let ours = redirect.clone();
        let previous = previous.cloned();
        self.run(move |connection| {
            write(connection, |tx| {
                let still_ours = tx.execute(
                    "DELETE FROM signed_redirects
                     WHERE shop = ?1 AND signed_at = ?2 AND digest = ?3",
                    params![key, millis(ours.signed_at), ours.digest.to_hex()],
                )? == 1;
                if let (true, Some(previous)) = (still_ours, previous) {
                    upsert_redirect(tx, &key, &previous)?;
                }
                Ok(())
            })
        })
        .await
    }
}

type RedirectRow = (i64, String, i64);

fn read_redirect(connection: &Connection, key: &str) -> rusqlite::Result<Option<RedirectRow>> {
    connection
        .query_row(
            "SELECT signed_at, digest, expires_at FROM signed_redirects WHERE shop = ?1",
            [key],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()
}

fn raw_redirect(
    (signed_ms, digest, expires_ms): RedirectRow,
) -> Result<AcceptedRedirect, StoreError> {
    let bad = || StoreError::Corrupt("a signed redirect's record is unreadable".into());
    Ok(AcceptedRedirect {
        signed_at: from_millis(signed_ms).ok_or_else(bad)?,
        digest: SignatureDigest::from_hex(&digest).ok_or_else(bad)?,
        expires_at: from_millis(expires_ms).ok_or_else(bad)?,
    })
}

fn upsert_redirect(
    tx: &rusqlite::Transaction<'_>,
    key: &str,
    redirect: &AcceptedRedirect,
) -> rusqlite::Result<usize> {
    tx.execute(
        "INSERT INTO signed_redirects (shop, signed_at, digest, expires_at)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (shop) DO UPDATE SET
             signed_at = excluded.signed_at,
             digest = excluded.digest,
             expires_at = excluded.expires_at",
        params![
            key,
            millis(redirect.signed_at),
            redirect.digest.to_hex(),
            millis(redirect.expires_at)
        ],
    )
}

/// The row's columns as stored; scopes and ledger are JSON arrays. Turned
/// into a [`CacheEntry`] outside the database call.
fn read_entry(connection: &Connection, key: &str) -> rusqlite::Result<Option<RawEntry>> {
    // A column that does not convert is a corrupt row (see `unavailable`).
    fn json<T: serde::de::DeserializeOwned>(
        index: usize,
        text: Option<String>,
    ) -> rusqlite::Result<Option<T>> {
        text.map(|text| {
            serde_json::from_str(&text).map_err(|error| {
                rusqlite::Error::FromSqlConversionFailure(
                    index,
                    rusqlite::types::Type::Text,
                    Box::new(error),
                )
            })
        })
        .transpose()
    }
    connection
        .query_row(
            &format!("SELECT {ENTRY_COLUMNS} WHERE key = ?1"),
            [key],
            |row| {
                Ok(RawEntry {
                    token: row.get(0)?,
                    token_expires_ms: row.get(1)?,
                    scopes: json(2, row.get(2)?)?,
                    ledger_ms: json(3, row.get(3)?)?,
                    lease_owner: row.get(4)?,
                    lease_until_ms: row.get(5)?,
                })
            },
        )
        .optional()
}

fn read_registration(
    connection: &Connection,
    key: &str,
) -> rusqlite::Result<Option<RawRegistration>> {
    connection
        .query_row(
            &format!("SELECT {REGISTRATION_COLUMNS} WHERE shop = ?1"),
            [key],
            registration_row,
        )
        .optional()
}

/// The columns of [`REGISTRATION_COLUMNS`], as stored; what they mean is
/// decided by [`RawRegistration`], outside the database call.
fn registration_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawRegistration> {
    Ok(RawRegistration {
        key: row.get(0)?,
        platform: row.get(1)?,
        status: row.get(2)?,
        installed_ms: row.get(3)?,
        updated_ms: row.get(4)?,
        recheck_ms: row.get(5)?,
        sequence: row.get(6)?,
        mint_failures: row.get(7)?,
    })
}

/// Writes a registration and its event (if any) in the caller's transaction.
fn save_registration(
    tx: &rusqlite::Transaction<'_>,
    registration: &Registration,
    event: Option<&InstallationEvent>,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO registry
             (shop, platform, status, installed_at, updated_at, recheck_at, sequence, mint_failures)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (shop) DO UPDATE SET
             platform = excluded.platform,
             status = excluded.status,
             installed_at = excluded.installed_at,
             updated_at = excluded.updated_at,
             recheck_at = excluded.recheck_at,
             sequence = excluded.sequence,
             mint_failures = excluded.mint_failures",
        params![
            registration.shop.key(),
            registration.shop.platform().as_str(),
            registration.status.as_str(),
            millis(registration.installed_at),
            millis(registration.updated_at),
            registration.recheck_at.map(millis),
            i64::try_from(registration.sequence).unwrap_or(i64::MAX),
            i64::from(registration.mint_failures),
        ],
    )
    .map_err(|e| unavailable(&e))?;
    if let Some(event) = event {
        tx.execute(
            "INSERT INTO event_outbox (id, event) VALUES (?1, ?2)",
            params![event.id, to_stored(event)],
        )
        .map_err(|e| unavailable(&e))?;
    }
    Ok(())
}

/// Like [`write`], for a body whose own decisions can fail as a store error
/// (a stored row that does not read back): any error rolls it all back.
fn transact<T>(
    connection: &mut Connection,
    body: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let tx = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| unavailable(&e))?;
    let value = body(&tx)?;
    tx.commit().map_err(|e| unavailable(&e))?;
    Ok(value)
}

/// Runs `body` in a `BEGIN IMMEDIATE` transaction: the write lock is taken
/// up front, so the reads inside see the state the writes are decided on.
/// Housekeeping (what DynamoDB's TTL does there): the forwarded-delivery
/// table holds only the records still worth remembering.
fn prune_forwarded(tx: &rusqlite::Transaction<'_>, now: i64) -> rusqlite::Result<usize> {
    tx.execute(
        "DELETE FROM forwarded_deliveries WHERE keep_until < ?1",
        [now],
    )
}

fn write<T>(
    connection: &mut Connection,
    body: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
) -> Result<T, StoreError> {
    let tx = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| unavailable(&e))?;
    let value = body(&tx).map_err(|e| unavailable(&e))?;
    tx.commit().map_err(|e| unavailable(&e))?;
    Ok(value)
}

/// WAL (readers never wait for the writer), the schema (an older file gets
/// the [`MIGRATIONS`] it lacks; a newer one is refused), and a sweep of the
/// cache rows whose time to live has passed (DynamoDB's TTL, at start-up).
fn init(connection: &mut Connection) -> Result<(), StoreError> {
    let mode: String = connection
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(|e| unavailable(&e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!(
            "sqlite: journal mode {mode} instead of wal"
        )));
    }
    write(connection, |tx| {
        let version: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
        let Some(missing) = usize::try_from(version)
            .ok()
            .and_then(|applied| MIGRATIONS.get(applied..))
        else {
            return Ok(Some(version));
        };
        if !missing.is_empty() {
            for step in missing {
                tx.execute_batch(step)?;
            }
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
        tx.execute(
            "DELETE FROM token_cache WHERE ttl_ms < ?1",
            [millis(SystemTime::now())],
        )?;
        Ok(None)
    })?
    .map_or(Ok(()), |other| {
        Err(StoreError::Corrupt(format!(
            "sqlite: schema version {other}, this build knows {SCHEMA_VERSION}"
        )))
    })
}

/// Retries `step` while another connection holds a lock it needs (switching
/// to WAL does not always wait on the busy handler).
fn retry_while_busy(mut step: impl FnMut() -> Result<(), StoreError>) -> Result<(), StoreError> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        match step() {
            Err(StoreError::Busy) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Creates the file owner-only before SQLite opens it, and tightens an
/// existing one.
fn prepare_file(path: &Path) -> Result<(), StoreError> {
    let io = |what: &str, error: std::io::Error| {
        StoreError::Unavailable(format!(
            "sqlite: {what} {}: {}",
            path.display(),
            error.kind()
        ))
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.exists()
    {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(parent)
            .map_err(|e| io("creating the directory of", e))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map_err(|e| io("creating", e))?;
    owner_only(path).map_err(|e| io("restricting", e))
}

/// SQLite creates `-wal` and `-shm` with the database file's permissions;
/// set them explicitly anyway.
fn restrict_companions(path: &Path) -> Result<(), StoreError> {
    for suffix in ["-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let companion = PathBuf::from(name);
        match owner_only(&companion) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(StoreError::Unavailable(format!(
                    "sqlite: restricting {}: {}",
                    companion.display(),
                    error.kind()
                )));
            }
        }
    }
    Ok(())
}

#[cfg(unix)]
fn owner_only(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn owner_only(path: &Path) -> std::io::Result<()> {
    std::fs::metadata(path).map(drop)
}

/// Only SQLite's error code: its messages may quote the statement.
fn unavailable(error: &rusqlite::Error) -> StoreError {
    let detail = match error {
        rusqlite::Error::SqliteFailure(failure, _) => match failure.code {
            ErrorCode::DatabaseBusy => return StoreError::Busy,
            code => format!("{code:?} ({})", failure.extended_code),
        },
        rusqlite::Error::QueryReturnedNoRows => "no row".to_owned(),
        rusqlite::Error::FromSqlConversionFailure(index, _, _) => {
            return StoreError::Corrupt(format!("token cache row: column {index} is unreadable"));
        }
        rusqlite::Error::InvalidColumnType(index, _, kind) => {
            format!("column {index} holds {kind}")
        }
        _ => "driver error".to_owned(),
    };
    StoreError::Unavailable(format!("sqlite: {detail}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use broker_domain::model::{Origin, StatusChange};

    /// A file written by the first schema (no registry) gains the registry
    /// when opened, and keeps what it held.
    #[tokio::test]
    async fn a_file_of_the_first_schema_is_migrated_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.sqlite3");
        {
            let connection = Connection::open(&path).unwrap();
            connection.execute_batch(SCHEMA_V1).unwrap();
            connection.pragma_update(None, "user_version", 1).unwrap();
            connection
                .execute(
                    "INSERT INTO secrets (name, version, value, saved_at_ms)
                     VALUES ('shoptet#1', 1, '{}', 0)",
                    [],
                )
                .unwrap();
        }
        let shop = ShopRef::from_key("shoptet#1").unwrap();
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.load_document(&shop).await, Ok(Some("{}".into())));
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_000);
        assert_eq!(
            store
                .record(&shop, &StatusChange::installed(at, Origin::Import))
                .await,
            Ok(None)
        );
        assert_eq!(
            store.registration(&shop).await.unwrap().map(|r| r.status),
            Some(InstallationStatus::Active)
        );
        let version: i64 = store
            .run(|connection| {
                connection
                    .pragma_query_value(None, "user_version", |row| row.get(0))
                    .map_err(|e| unavailable(&e))
            })
            .await
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }

    #[tokio::test]
    async fn a_file_of_a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("newer.sqlite3");
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        assert!(matches!(
            SqliteStore::open(&path),
            Err(StoreError::Corrupt(_))
        ));
        let _ = std::fs::remove_dir_all(dir);
    }
}
