//! Installations, credentials and the token cache in one SQLite file, for
//! running the broker on one machine without AWS.
//!
//! The semantics are those of the Secrets Manager and DynamoDB adapters:
//! secrets are never deleted, a save adds a version; the lease and the
//! store-and-release are conditional writes, each decided inside one
//! `BEGIN IMMEDIATE` transaction, so several [`SqliteStore`]s (in one process
//! or in several) may share one file and still agree on who refreshes a shop.
//!
//! The file holds credentials in the clear, so it is created readable by its
//! owner only (0600, and so are SQLite's `-wal` and `-shm` companions).
//! rusqlite blocks, so every call runs on Tokio's blocking pool.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};

use super::raw::{RawEntry, millis};
use super::{
    EXPIRY_GRACE, InstallationStore, LeaseAttempt, SaveOutcome, StoreError, TokenCache,
    entry_expiry,
};
use crate::ids::ShopRef;
use crate::model::{CacheEntry, CachedToken};
use crate::secret::ExposeSecret;

/// The schema this code writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 1;

/// How long a call waits for another connection's write to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const SCHEMA: &str = "
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

const ENTRY_COLUMNS: &str =
    "token, token_expires_ms, scopes, ledger, lease_owner, lease_until_ms FROM token_cache";

/// Both storage ports over one SQLite database file. Cloning shares the
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

/// Runs `body` in a `BEGIN IMMEDIATE` transaction: the write lock is taken
/// up front, so the reads inside see the state the writes are decided on.
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

/// WAL (readers never wait for the writer), the schema, and a sweep of the
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
        match version {
            0 => {
                tx.execute_batch(SCHEMA)?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            }
            SCHEMA_VERSION => {}
            _ => return Ok(Some(version)),
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
