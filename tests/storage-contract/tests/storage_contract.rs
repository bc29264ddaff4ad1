//! The storage contract: one set of cases, run against every adapter of the
//! storage ports (in memory, DynamoDB + Secrets Manager on the moto emulator,
//! SQLite in a temporary file). An adapter passes when it behaves exactly
//! like the others. The DynamoDB installation store (envelope-encrypted with
//! a KMS key on moto) implements the installation port only and runs those
//! cases (the e-shop webhook signature keys among them).

use std::collections::HashSet;
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use broker_domain::ids::{Platform, ShopRef, ShoprenterShopName, ShoptetEshopId};
use broker_domain::model::{
    AcceptedRedirect, CacheEntry, CachedToken, DeliveryFingerprint, InstallationStatus, Lease,
    Origin, Registration, ShoprenterCredentials, ShoptetInstallation, ShoptetInstallationRecord,
    SignatureDigest, StatusChange,
};
use broker_domain::secret::{
    ApiAccessToken, ClientSecret, EshopSignatureKey, ExposeSecret, OAuthAccessToken,
};
use broker_domain::storage::{
    DeliveryLog, InstallationInventory, InstallationRegistry, InstallationStore, InventoryQuery,
    LeaseAttempt, RecoveryWindow, RedirectAcceptance, RegistryQuery, SaveOutcome, SignedRedirects,
    TokenCache,
};
use tokio::sync::Barrier;

/// A fresh, isolated installation store of one adapter.
trait InstallsHarness: Sized + Send + Sync + 'static {
    type Installs: InstallationStore + InstallationInventory + 'static;

    /// What saving a shop's document says after its deletion was scheduled
    /// (a reinstall). Secrets Manager and the DynamoDB installation store
    /// keep the document through the recovery window and restore it:
    /// `Replaced`. The memory and SQLite adapters have no recovery window
    /// and delete at once: `Created`.
    const SAVE_AFTER_DELETION: SaveOutcome;

    /// Whether a Shoptet installation's signature key lives inside the
    /// installation's own record (Secrets Manager: a labelled version of
    /// the installation's secret) rather than in a record of its own
    /// beside it. Such a key cannot be saved without a live installation,
    /// and a reinstall that restores the record within its recovery window
    /// may bring the old key back (harmless: every install renews the key).
    const KEY_INSIDE_THE_INSTALLATION: bool;

    fn new() -> impl Future<Output = Self> + Send;
    fn installs(&self) -> &Self::Installs;
}

/// A fresh, isolated store of every port of one adapter.
trait Harness: InstallsHarness {
    /// The token cache, and the accepted signed redirects and the log of
    /// forwarded e-shop webhook deliveries kept beside it.
    type Cache: TokenCache + SignedRedirects + DeliveryLog + 'static;
    type Registry: InstallationRegistry + 'static;

    fn cache(&self) -> &Arc<Self::Cache>;
    /// Another handle on the same cache, as another instance of the broker
    /// would open it.
    fn another_cache(&self) -> impl Future<Output = Arc<Self::Cache>> + Send;
    fn registry(&self) -> &Arc<Self::Registry>;
    /// Another handle on the same registry, as another instance would open it.
    fn another_registry(&self) -> impl Future<Output = Arc<Self::Registry>> + Send;
}

mod memory_harness {
    use super::*;
    use broker_domain::storage::memory::{
        MemoryInstallationStore, MemoryRegistry, MemoryTokenCache,
    };

    pub struct Memory {
        installs: MemoryInstallationStore,
        cache: Arc<MemoryTokenCache>,
        registry: Arc<MemoryRegistry>,
    }

    impl InstallsHarness for Memory {
        type Installs = MemoryInstallationStore;

        const SAVE_AFTER_DELETION: SaveOutcome = SaveOutcome::Created;
        const KEY_INSIDE_THE_INSTALLATION: bool = false;

        async fn new() -> Self {
            Self {
                installs: MemoryInstallationStore::default(),
                cache: Arc::default(),
                registry: Arc::default(),
            }
        }

        fn installs(&self) -> &Self::Installs {
            &self.installs
        }
    }

    impl Harness for Memory {
        type Cache = MemoryTokenCache;
        type Registry = MemoryRegistry;

        fn registry(&self) -> &Arc<Self::Registry> {
            &self.registry
        }

        async fn another_registry(&self) -> Arc<Self::Registry> {
            Arc::new(MemoryRegistry::clone(&self.registry))
        }

        fn cache(&self) -> &Arc<Self::Cache> {
            &self.cache
        }

        async fn another_cache(&self) -> Arc<Self::Cache> {
            // A handle of its own (not the same `Arc`), as another instance
            // would open: it sees the first one's writes only if the
            // adapter really shares them.
            Arc::new(MemoryTokenCache::clone(&self.cache))
        }
    }
}

mod dynamodb_harness {
    use super::*;
    use broker_aws::storage::KmsKeyId;
    use broker_aws::storage::SecretNames;
    use broker_aws::storage::dynamodb::DynamoTokenCache;
    use broker_aws::storage::dynamodb_registry::DynamoRegistry;
    use broker_aws::storage::secrets_manager::SecretsManagerStore;
    use test_support::{
        create_kms_key, create_registry_table, create_token_table, emulator_sdk_config, unique_name,
    };

    pub struct Dynamo {
        /// The clients and names behind `cache`, for looking at the items and
        /// the key themselves.
        pub dynamo: aws_sdk_dynamodb::Client,
        pub kms: aws_sdk_kms::Client,
        pub table: String,
        /// The KMS key the token cache's data keys are wrapped under.
        pub token_key: KmsKeyId,
        registry_table: String,
        /// The client and names behind `installs`, for looking at the
        /// secrets themselves.
        pub secrets: aws_sdk_secretsmanager::Client,
        pub names: SecretNames,
        installs: SecretsManagerStore,
        cache: Arc<DynamoTokenCache>,
        registry: Arc<DynamoRegistry>,
    }

    impl Dynamo {
        /// Every item of the token table, as stored.
        pub async fn token_table_items(
            &self,
        ) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>
        {
            self.dynamo
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .send()
                .await
                .expect("scanning the token table")
                .items
                .unwrap_or_default()
        }
    }

    impl InstallsHarness for Dynamo {
        type Installs = SecretsManagerStore;

        const SAVE_AFTER_DELETION: SaveOutcome = SaveOutcome::Replaced;
        const KEY_INSIDE_THE_INSTALLATION: bool = true;

        async fn new() -> Self {
            let config = emulator_sdk_config().await;
            let table = unique_name("contract");
            let registry_table = unique_name("contract-registry");
            let ((), (), token_key) = tokio::join!(
                create_token_table(&config, &table),
                create_registry_table(&config, &registry_table),
                create_kms_key(&config),
            );
            let token_key = KmsKeyId::new(token_key);
            let names = SecretNames::new(&format!("{}/", unique_name("contract")))
                .expect("unique names are valid secret prefixes");
            let secrets = aws_sdk_secretsmanager::Client::new(&config);
            let installs = SecretsManagerStore::new(secrets.clone(), names.clone());
            let dynamo = aws_sdk_dynamodb::Client::new(&config);
            let kms = aws_sdk_kms::Client::new(&config);
            let cache = Arc::new(DynamoTokenCache::new(
                dynamo.clone(),
                kms.clone(),
                &table,
                token_key.clone(),
            ));
            let registry = Arc::new(DynamoRegistry::new(dynamo.clone(), &registry_table));
            Self {
                dynamo,
                kms,
                table,
                token_key,
                registry_table,
                secrets,
                names,
                installs,
                cache,
                registry,
            }
        }

        fn installs(&self) -> &Self::Installs {
            &self.installs
        }
    }

    impl Harness for Dynamo {
        type Cache = DynamoTokenCache;
        type Registry = DynamoRegistry;

        fn registry(&self) -> &Arc<Self::Registry> {
            &self.registry
        }

        async fn another_registry(&self) -> Arc<Self::Registry> {
            let client = aws_sdk_dynamodb::Client::from_conf(self.dynamo.config().clone());
            Arc::new(DynamoRegistry::new(client, &self.registry_table))
        }

        fn cache(&self) -> &Arc<Self::Cache> {
            &self.cache
        }

        async fn another_cache(&self) -> Arc<Self::Cache> {
            // Clients of its own, and so a data key of its own, as another
            // instance would build: it reads the first one's tokens only by
            // unwrapping that instance's data key.
            let client = aws_sdk_dynamodb::Client::from_conf(self.dynamo.config().clone());
            let kms = aws_sdk_kms::Client::from_conf(self.kms.config().clone());
            Arc::new(DynamoTokenCache::new(
                client,
                kms,
                &self.table,
                self.token_key.clone(),
            ))
        }
    }
}

/// The DynamoDB installation store: a table of its own and a KMS key of its
/// own per case, on the emulator.
mod envelope_harness {
    use super::*;
    use broker_aws::storage::dynamodb_installations::{DynamoInstallationStore, KmsKeyId};
    use test_support::{
        create_installation_table, create_kms_key, emulator_sdk_config, unique_name,
    };

    pub struct Envelope {
        /// The clients and names behind `installs`, for looking at the items
        /// and keys themselves.
        pub dynamo: aws_sdk_dynamodb::Client,
        pub kms: aws_sdk_kms::Client,
        pub table: String,
        pub key: KmsKeyId,
        installs: DynamoInstallationStore,
    }

    impl InstallsHarness for Envelope {
        type Installs = DynamoInstallationStore;

        const SAVE_AFTER_DELETION: SaveOutcome = SaveOutcome::Replaced;
        const KEY_INSIDE_THE_INSTALLATION: bool = false;

        async fn new() -> Self {
            let config = emulator_sdk_config().await;
            let table = unique_name("contract-installations");
            let ((), key) = tokio::join!(
                create_installation_table(&config, &table),
                create_kms_key(&config),
            );
            let key = KmsKeyId::new(key);
            let dynamo = aws_sdk_dynamodb::Client::new(&config);
            let kms = aws_sdk_kms::Client::new(&config);
            let installs =
                DynamoInstallationStore::new(dynamo.clone(), kms.clone(), &table, key.clone());
            Self {
                dynamo,
                kms,
                table,
                key,
                installs,
            }
        }

        fn installs(&self) -> &Self::Installs {
            &self.installs
        }
    }
}

mod sqlite_harness {
    use super::*;
    use broker_sqlite::SqliteStore;
    use std::path::PathBuf;

    /// A directory of its own, removed on drop.
    pub struct TempDir(tempfile::TempDir);

    impl TempDir {
        pub fn new() -> Self {
            Self(tempfile::tempdir().expect("a temporary directory"))
        }

        /// In a directory `SqliteStore::open` creates (owner-only).
        pub fn db(&self) -> PathBuf {
            self.0.path().join("store").join("broker.sqlite3")
        }
    }

    /// A store in a file of its own.
    pub struct Sqlite {
        store: SqliteStore,
        cache: Arc<SqliteStore>,
        registry: Arc<SqliteStore>,
        dir: TempDir,
    }

    impl Sqlite {
        pub fn path(&self) -> PathBuf {
            self.dir.db()
        }
    }

    impl InstallsHarness for Sqlite {
        type Installs = SqliteStore;

        const SAVE_AFTER_DELETION: SaveOutcome = SaveOutcome::Created;
        const KEY_INSIDE_THE_INSTALLATION: bool = false;

        async fn new() -> Self {
            let dir = TempDir::new();
            let store = SqliteStore::open(dir.db()).expect("opening the store");
            Self {
                cache: Arc::new(store.clone()),
                registry: Arc::new(store.clone()),
                store,
                dir,
            }
        }

        fn installs(&self) -> &Self::Installs {
            &self.store
        }
    }

    impl Harness for Sqlite {
        type Cache = SqliteStore;
        type Registry = SqliteStore;

        fn registry(&self) -> &Arc<Self::Registry> {
            &self.registry
        }

        async fn another_registry(&self) -> Arc<Self::Registry> {
            // Its own connection to the same file, like another process.
            Arc::new(SqliteStore::open(self.path()).expect("opening the store again"))
        }

        fn cache(&self) -> &Arc<Self::Cache> {
            &self.cache
        }

        async fn another_cache(&self) -> Arc<Self::Cache> {
            // Its own connection to the same file, like another process.
            Arc::new(SqliteStore::open(self.path()).expect("opening the store again"))
        }
    }
}

// ---------------------------------------------------------------------------
// Fixtures

/// A time on a whole millisecond (adapters keep milliseconds).
fn at_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// "Now" for the cases: a recent whole millisecond.
fn now() -> SystemTime {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis();
    at_ms(u64::try_from(ms).expect("milliseconds fit in u64"))
}

fn eshop(id: u64) -> ShoptetEshopId {
    ShoptetEshopId::new(id).expect("a valid eshop id")
}

fn shoptet_record(id: u64, oauth_token: &str, installed_at: &str) -> ShoptetInstallationRecord {
    ShoptetInstallationRecord {
        installation: ShoptetInstallation {
            oauth_access_token: OAuthAccessToken::new(oauth_token),
            eshop_id: eshop(id),
            eshop_url: format!("https://{id}.myshoptet.com/"),
            contact_email: Some("owner@example.com".into()),
            trial: Some(false),
        },
        installed_at: installed_at.into(),
    }
}

fn shoprenter_shop(name: &str) -> ShoprenterShopName {
    name.parse().expect("a valid shop name")
}

fn shop() -> ShopRef {
    ShopRef::Shoptet(eshop(222651))
}

fn token(value: &str, expires_at: SystemTime, scopes: &[&str]) -> CachedToken {
    CachedToken {
        access_token: ApiAccessToken::new(value),
        expires_at,
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn lease(owner: &str, expires_at: SystemTime) -> Option<Lease> {
    Some(Lease {
        owner: owner.into(),
        expires_at,
    })
}

async fn acquire<C: TokenCache>(
    cache: &C,
    shop: &ShopRef,
    owner: &str,
    now: SystemTime,
    until: SystemTime,
) -> CacheEntry {
    match cache.try_lease(shop, owner, now, until).await.unwrap() {
        LeaseAttempt::Acquired(entry) => entry,
        LeaseAttempt::Busy(entry) => panic!("{owner} did not get the lease: {entry:?}"),
    }
}

async fn busy<C: TokenCache>(
    cache: &C,
    shop: &ShopRef,
    owner: &str,
    now: SystemTime,
    until: SystemTime,
) -> CacheEntry {
    match cache.try_lease(shop, owner, now, until).await.unwrap() {
        LeaseAttempt::Busy(entry) => entry,
        LeaseAttempt::Acquired(entry) => panic!("{owner} got a lease held by another: {entry:?}"),
    }
}

// ---------------------------------------------------------------------------
// Installations and credentials

async fn create_then_replace_shoptet_installation<H: InstallsHarness>() {
    let h = H::new().await;
    let first = shoptet_record(222651, "oauth-first", "2026-01-01T00:00:00Z");
    let second = shoptet_record(222651, "oauth-second", "2026-02-01T00:00:00Z");

    assert_eq!(
        h.installs().save_shoptet_installation(&first).await,
        Ok(SaveOutcome::Created)
    );
    assert_eq!(
        h.installs().load_shoptet_installation(eshop(222651)).await,
        Ok(Some(first))
    );
    assert_eq!(
        h.installs().save_shoptet_installation(&second).await,
        Ok(SaveOutcome::Replaced)
    );
    assert_eq!(
        h.installs().load_shoptet_installation(eshop(222651)).await,
        Ok(Some(second.clone()))
    );
    // A third save is still a replacement, and the latest wins.
    let third = shoptet_record(222651, "oauth-third", "2026-03-01T00:00:00Z");
    assert_eq!(
        h.installs().save_shoptet_installation(&third).await,
        Ok(SaveOutcome::Replaced)
    );
    assert_eq!(
        h.installs().load_shoptet_installation(eshop(222651)).await,
        Ok(Some(third))
    );
}

async fn installations_of_different_shops_are_separate<H: InstallsHarness>() {
    let h = H::new().await;
    let a = shoptet_record(1, "oauth-a", "2026-01-01T00:00:00Z");
    let b = shoptet_record(2, "oauth-b", "2026-01-02T00:00:00Z");
    assert_eq!(
        h.installs().save_shoptet_installation(&a).await,
        Ok(SaveOutcome::Created)
    );
    assert_eq!(
        h.installs().save_shoptet_installation(&b).await,
        Ok(SaveOutcome::Created)
    );
    assert_eq!(
        h.installs().load_shoptet_installation(eshop(1)).await,
        Ok(Some(a))
    );
    assert_eq!(
        h.installs().load_shoptet_installation(eshop(2)).await,
        Ok(Some(b))
    );
}

async fn loading_a_missing_installation_gives_none<H: InstallsHarness>() {
    let h = H::new().await;
    assert_eq!(
        h.installs().load_shoptet_installation(eshop(404)).await,
        Ok(None)
    );
    assert_eq!(
        h.installs()
            .load_shoprenter_credentials(&shoprenter_shop("nowhere"))
            .await,
        Ok(None)
    );
}

async fn shoprenter_credentials_round_trip<H: InstallsHarness>() {
    let h = H::new().await;
    let shop = shoprenter_shop("demo-shop");
    let first = ShoprenterCredentials {
        client_id: "client-1".into(),
        client_secret: ClientSecret::new("secret-1"),
    };
    let second = ShoprenterCredentials {
        client_id: "client-2".into(),
        client_secret: ClientSecret::new("secret-2"),
    };
    assert_eq!(
        h.installs()
            .save_shoprenter_credentials(&shop, &first)
            .await,
        Ok(SaveOutcome::Created)
    );
    assert_eq!(
        h.installs().load_shoprenter_credentials(&shop).await,
        Ok(Some(first))
    );
    assert_eq!(
        h.installs()
            .save_shoprenter_credentials(&shop, &second)
            .await,
        Ok(SaveOutcome::Replaced)
    );
    assert_eq!(
        h.installs().load_shoprenter_credentials(&shop).await,
        Ok(Some(second))
    );
    // A Shoptet shop is another namespace.
    assert_eq!(
        h.installs().load_shoptet_installation(eshop(1)).await,
        Ok(None)
    );
}

// ---------------------------------------------------------------------------
// Token cache

async fn loading_a_missing_cache_entry_gives_none<H: Harness>() {
    let h = H::new().await;
    assert_eq!(h.cache().load(&shop()).await, Ok(None));
}

async fn a_lease_on_an_empty_entry_is_acquired<H: Harness>() {
    let h = H::new().await;
    let (now, until) = (now(), now() + Duration::from_secs(30));
    let entry = acquire(&**h.cache(), &shop(), "a", now, until).await;
    assert_eq!(
        entry,
        CacheEntry {
            token: None,
            lease: lease("a", until),
            ledger: vec![],
        }
    );
    assert_eq!(h.cache().load(&shop()).await, Ok(Some(entry)));
}

async fn a_live_lease_keeps_a_second_owner_out<H: Harness>() {
    let h = H::new().await;
    let now = now();
    let until = now + Duration::from_secs(30);
    acquire(&**h.cache(), &shop(), "a", now, until).await;

    let seen = busy(
        &**h.cache(),
        &shop(),
        "b",
        now,
        now + Duration::from_secs(60),
    )
    .await;
    assert_eq!(seen.lease, lease("a", until));
    // Still live at the very millisecond it ends.
    let seen = busy(
        &**h.cache(),
        &shop(),
        "b",
        until,
        until + Duration::from_secs(30),
    )
    .await;
    assert_eq!(seen.lease, lease("a", until));
    // The owner itself does not get it twice either.
    busy(&**h.cache(), &shop(), "a", now, until).await;

    let stored = h.cache().load(&shop()).await.unwrap().unwrap();
    assert_eq!(stored.lease, lease("a", until));
}

async fn an_expired_lease_is_stolen<H: Harness>() {
    let h = H::new().await;
    let now = now();
    let old_until = now - Duration::from_secs(1);
    acquire(
        &**h.cache(),
        &shop(),
        "a",
        now - Duration::from_secs(31),
        old_until,
    )
    .await;

    let until = now + Duration::from_secs(30);
    let entry = acquire(&**h.cache(), &shop(), "b", now, until).await;
    assert_eq!(entry.lease, lease("b", until));
    assert_eq!(
        h.cache().load(&shop()).await.unwrap().unwrap().lease,
        lease("b", until)
    );
}

async fn a_lease_keeps_the_cached_token_and_ledger<H: Harness>() {
    let h = H::new().await;
    let now = now();
    let minted = token("tok-1", now + Duration::from_secs(1800), &["read"]);
    let ledger = vec![now + Duration::from_secs(1800)];
    acquire(
        &**h.cache(),
        &shop(),
        "a",
        now,
        now + Duration::from_secs(30),
    )
    .await;
    assert!(
        h.cache()
            .store_and_release(&shop(), "a", &minted, &ledger)
            .await
            .unwrap()
    );

    let until = now + Duration::from_secs(60);
    let entry = acquire(&**h.cache(), &shop(), "b", now, until).await;
    assert_eq!(
        entry,
        CacheEntry {
            token: Some(minted.clone()),
            lease: lease("b", until),
            ledger: ledger.clone(),
        }
    );
    let seen = busy(&**h.cache(), &shop(), "c", now, until).await;
    assert_eq!(seen, entry);
}

async fn the_holder_stores_and_releases<H: Harness>() {
    let h = H::new().await;
    let now = now();
    acquire(
        &**h.cache(),
        &shop(),
        "a",
        now,
        now + Duration::from_secs(30),
    )
    .await;
    let minted = token("tok-1", now + Duration::from_secs(1800), &["a", "b"]);
    let ledger = vec![
        now - Duration::from_secs(600),
        now + Duration::from_secs(1800),
    ];

    assert_eq!(
        h.cache()
            .store_and_release(&shop(), "a", &minted, &ledger)
            .await,
        Ok(true)
    );
    assert_eq!(
        h.cache().load(&shop()).await,
        Ok(Some(CacheEntry {
            token: Some(minted),
            lease: None,
            ledger,
        }))
    );
    // Released: the next owner gets it at once.
    acquire(
        &**h.cache(),
        &shop(),
        "b",
        now,
        now + Duration::from_secs(30),
    )
    .await;
}

async fn a_non_holder_cannot_store<H: Harness>() {
    let h = H::new().await;
    let now = now();
    let until = now + Duration::from_secs(30);
    let minted = token("tok-1", now + Duration::from_secs(1800), &[]);

    // No entry at all.
    assert_eq!(
        h.cache()
            .store_and_release(&shop(), "a", &minted, &[minted.expires_at])
            .await,
        Ok(false)
    );
    assert_eq!(h.cache().load(&shop()).await, Ok(None));

    // Someone else's lease.
    let before = acquire(&**h.cache(), &shop(), "a", now, until).await;
    assert_eq!(
        h.cache()
            .store_and_release(&shop(), "b", &minted, &[minted.expires_at])
            .await,
        Ok(false)
    );
    assert_eq!(h.cache().load(&shop()).await, Ok(Some(before)));

    // Nobody's lease (released), over a stored token.
    assert!(
        h.cache()
            .store_and_release(&shop(), "a", &minted, &[minted.expires_at])
            .await
            .unwrap()
    );
    let stored = h.cache().load(&shop()).await.unwrap();
    let other = token("tok-2", now + Duration::from_secs(3600), &[]);
    assert_eq!(
        h.cache()
            .store_and_release(&shop(), "a", &other, &[other.expires_at])
            .await,
        Ok(false)
    );
    assert_eq!(h.cache().load(&shop()).await, Ok(stored));
}

/// Compare-and-swap on a stale lease: an owner whose lease expired and was
/// taken over cannot overwrite what the new owner stores.
async fn a_stale_holder_loses_to_the_thief<H: Harness>() {
    let h = H::new().await;
    let now = now();
    acquire(
        &**h.cache(),
        &shop(),
        "slow",
        now - Duration::from_secs(60),
        now - Duration::from_secs(30),
    )
    .await;
    acquire(
        &**h.cache(),
        &shop(),
        "thief",
        now,
        now + Duration::from_secs(30),
    )
    .await;

    let fresh = token("tok-thief", now + Duration::from_secs(1800), &[]);
    let stale = token("tok-slow", now + Duration::from_secs(1700), &[]);
    assert_eq!(
        h.cache()
            .store_and_release(&shop(), "slow", &stale, &[stale.expires_at])
            .await,
        Ok(false)
    );
    assert_eq!(
        h.cache()
            .store_and_release(&shop(), "thief", &fresh, &[fresh.expires_at])
            .await,
        Ok(true)
    );
    assert_eq!(
        h.cache()
            .store_and_release(&shop(), "slow", &stale, &[])
            .await,
        Ok(false)
    );
    let entry = h.cache().load(&shop()).await.unwrap().unwrap();
    assert_eq!(entry.token, Some(fresh.clone()));
    assert_eq!(entry.ledger, vec![fresh.expires_at]);
    assert_eq!(entry.lease, None);
}

async fn release_by_a_non_holder_leaves_the_lease<H: Harness>() {
    let h = H::new().await;
    let now = now();
    let until = now + Duration::from_secs(30);
    let before = acquire(&**h.cache(), &shop(), "a", now, until).await;

    assert_eq!(h.cache().release(&shop(), "b").await, Ok(()));
    assert_eq!(h.cache().load(&shop()).await, Ok(Some(before)));
    busy(&**h.cache(), &shop(), "b", now, until).await;

    // Releasing where there is nothing is fine too.
    let other = ShopRef::Shoprenter(shoprenter_shop("empty"));
    assert_eq!(h.cache().release(&other, "a").await, Ok(()));
    assert_eq!(h.cache().load(&other).await, Ok(None));
}

async fn release_by_the_holder_frees_the_lease<H: Harness>() {
    let h = H::new().await;
    let now = now();
    let minted = token("tok-1", now + Duration::from_secs(1800), &["x"]);
    acquire(
        &**h.cache(),
        &shop(),
        "a",
        now,
        now + Duration::from_secs(30),
    )
    .await;
    assert!(
        h.cache()
            .store_and_release(&shop(), "a", &minted, &[minted.expires_at])
            .await
            .unwrap()
    );
    acquire(
        &**h.cache(),
        &shop(),
        "a",
        now,
        now + Duration::from_secs(30),
    )
    .await;

    assert_eq!(h.cache().release(&shop(), "a").await, Ok(()));
    // The token and the ledger stay; only the lease goes.
    assert_eq!(
        h.cache().load(&shop()).await,
        Ok(Some(CacheEntry {
            token: Some(minted.clone()),
            lease: None,
            ledger: vec![minted.expires_at],
        }))
    );
    acquire(
        &**h.cache(),
        &shop(),
        "b",
        now,
        now + Duration::from_secs(30),
    )
    .await;
}

async fn forget_removes_the_entry<H: Harness>() {
    let h = H::new().await;
    let now = now();
    let minted = token("tok-1", now + Duration::from_secs(1800), &[]);
    acquire(
        &**h.cache(),
        &shop(),
        "a",
        now,
        now + Duration::from_secs(30),
    )
    .await;
    assert!(
        h.cache()
            .store_and_release(&shop(), "a", &minted, &[minted.expires_at])
            .await
            .unwrap()
    );
    let other = ShopRef::Shoprenter(shoprenter_shop("keep-me"));
    acquire(
        &**h.cache(),
        &other,
        "a",
        now,
        now + Duration::from_secs(30),
    )
    .await;

    assert_eq!(h.cache().forget(&shop()).await, Ok(()));
    assert_eq!(h.cache().load(&shop()).await, Ok(None));
    assert!(h.cache().load(&other).await.unwrap().is_some());
    // Forgetting a missing entry is fine, and a forgotten shop starts afresh.
    assert_eq!(h.cache().forget(&shop()).await, Ok(()));
    let entry = acquire(
        &**h.cache(),
        &shop(),
        "b",
        now,
        now + Duration::from_secs(30),
    )
    .await;
    assert_eq!(entry.token, None);
    assert!(entry.ledger.is_empty());
}

async fn times_and_scopes_round_trip_in_milliseconds<H: Harness>() {
    let h = H::new().await;
    let now = now();
    let until = now + Duration::from_millis(30_001);
    let entry = acquire(&**h.cache(), &shop(), "a", now, until).await;
    assert_eq!(entry.lease, lease("a", until));

    let minted = token(
        "eyJhbGciOiJIUzI1NiJ9.eyJzY29wZXMiOlsicmVhZCJdfQ.c2ln",
        at_ms(1_900_000_000_123),
        &[
            "product:read",
            "order:write",
            "scope with spaces",
            "ünïcode",
        ],
    );
    let ledger = vec![
        at_ms(1_899_999_000_001),
        at_ms(1_900_000_000_123),
        at_ms(1_899_999_999_999),
    ];
    assert!(
        h.cache()
            .store_and_release(&shop(), "a", &minted, &ledger)
            .await
            .unwrap()
    );
    let stored = h.cache().load(&shop()).await.unwrap().unwrap();
    assert_eq!(stored.token, Some(minted));
    // The ledger keeps its order and every entry.
    assert_eq!(stored.ledger, ledger);

    // No scopes at all, and an empty ledger.
    acquire(&**h.cache(), &shop(), "b", now, until).await;
    let bare = token("plain", at_ms(1_900_000_000_999), &[]);
    assert!(
        h.cache()
            .store_and_release(&shop(), "b", &bare, &[])
            .await
            .unwrap()
    );
    let stored = h.cache().load(&shop()).await.unwrap().unwrap();
    assert_eq!(stored.token, Some(bare));
    assert!(stored.ledger.is_empty());
}

async fn shops_have_separate_entries<H: Harness>() {
    let h = H::new().await;
    let now = now();
    let until = now + Duration::from_secs(30);
    let shoptet = ShopRef::Shoptet(eshop(7));
    let shoprenter = ShopRef::Shoprenter(shoprenter_shop("seven"));
    acquire(&**h.cache(), &shoptet, "a", now, until).await;
    acquire(&**h.cache(), &shoprenter, "b", now, until).await;
    assert_eq!(
        h.cache().load(&shoptet).await.unwrap().unwrap().lease,
        lease("a", until)
    );
    assert_eq!(
        h.cache().load(&shoprenter).await.unwrap().unwrap().lease,
        lease("b", until)
    );
}

/// Compare-and-swap: of 16 instances asking at once, exactly one gets the
/// lease, and everyone else sees it held by the winner.
async fn exactly_one_of_concurrent_leases_wins<H: Harness>() {
    const INSTANCES: usize = 16;
    let h = H::new().await;
    let now = now();
    let until = now + Duration::from_secs(30);
    let barrier = Arc::new(Barrier::new(INSTANCES));
    let mut tasks = Vec::new();
    for n in 0..INSTANCES {
        let cache = h.another_cache().await;
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            let owner = format!("instance-{n}");
            barrier.wait().await;
            let attempt = cache.try_lease(&shop(), &owner, now, until).await;
            (owner, attempt.expect("try_lease"))
        }));
    }
    let mut winners = Vec::new();
    let mut seen_by_losers = Vec::new();
    for task in tasks {
        match task.await.expect("task") {
            (owner, LeaseAttempt::Acquired(entry)) => {
                assert_eq!(entry.lease, lease(&owner, until));
                winners.push(owner);
            }
            (_, LeaseAttempt::Busy(entry)) => seen_by_losers.push(entry.lease),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let winner = &winners[0];
    assert_eq!(seen_by_losers.len(), INSTANCES - 1);
    for seen in seen_by_losers {
        assert_eq!(seen, lease(winner, until));
    }
    assert_eq!(
        h.cache().load(&shop()).await.unwrap().unwrap().lease,
        lease(winner, until)
    );
}

/// Every instance sees what another stored, at once (strongly consistent).
async fn instances_share_one_cache<H: Harness>() {
    let h = H::new().await;
    let other = h.another_cache().await;
    let now = now();
    let minted = token("tok-1", now + Duration::from_secs(1800), &["s"]);
    acquire(
        &**h.cache(),
        &shop(),
        "a",
        now,
        now + Duration::from_secs(30),
    )
    .await;
    busy(&*other, &shop(), "b", now, now + Duration::from_secs(30)).await;
    assert!(
        h.cache()
            .store_and_release(&shop(), "a", &minted, &[minted.expires_at])
            .await
            .unwrap()
    );
    assert_eq!(
        other.load(&shop()).await.unwrap().unwrap().token,
        Some(minted)
    );
    other.forget(&shop()).await.unwrap();
    assert_eq!(h.cache().load(&shop()).await, Ok(None));
}

// ---------------------------------------------------------------------------
// Uninstalls: scheduled deletion of an installation's document

async fn a_scheduled_deletion_hides_the_installation_until_a_reinstall<H: InstallsHarness>() {
    let h = H::new().await;
    let first = shoptet_record(222651, "oauth-before-uninstall", "2026-01-01T00:00:00Z");
    let again = shoptet_record(222651, "oauth-after-reinstall", "2026-02-01T00:00:00Z");
    assert_eq!(
        h.installs().save_shoptet_installation(&first).await,
        Ok(SaveOutcome::Created)
    );

    assert_eq!(
        h.installs()
            .schedule_deletion(&shop(), RecoveryWindow::DEFAULT)
            .await,
        Ok(())
    );
    assert_eq!(
        h.installs().load_shoptet_installation(eshop(222651)).await,
        Ok(None)
    );
    // Idempotent: scheduling again, and scheduling a shop never saved.
    assert_eq!(
        h.installs()
            .schedule_deletion(&shop(), RecoveryWindow::DEFAULT)
            .await,
        Ok(())
    );
    let never_saved = ShopRef::Shoprenter(shoprenter_shop("never-saved"));
    assert_eq!(
        h.installs()
            .schedule_deletion(&never_saved, RecoveryWindow::days(30).unwrap())
            .await,
        Ok(())
    );
    assert_eq!(h.installs().load_document(&never_saved).await, Ok(None));

    // A reinstall: the new document is the shop's, the old one is gone.
    assert_eq!(
        h.installs().save_shoptet_installation(&again).await,
        Ok(H::SAVE_AFTER_DELETION)
    );
    assert_eq!(
        h.installs().load_shoptet_installation(eshop(222651)).await,
        Ok(Some(again.clone()))
    );
    // The reinstalled shop can be uninstalled and reinstalled again.
    h.installs()
        .schedule_deletion(&shop(), RecoveryWindow::DEFAULT)
        .await
        .unwrap();
    assert_eq!(
        h.installs().load_shoptet_installation(eshop(222651)).await,
        Ok(None)
    );
    let third = shoptet_record(222651, "oauth-third-install", "2026-03-01T00:00:00Z");
    assert_eq!(
        h.installs().save_shoptet_installation(&third).await,
        Ok(H::SAVE_AFTER_DELETION)
    );
    assert_eq!(
        h.installs().load_shoptet_installation(eshop(222651)).await,
        Ok(Some(third))
    );
}

async fn a_scheduled_deletion_leaves_other_shops_alone<H: InstallsHarness>() {
    let h = H::new().await;
    let kept = shoptet_record(2, "oauth-kept", "2026-01-01T00:00:00Z");
    h.installs()
        .save_shoptet_installation(&shoptet_record(1, "oauth-gone", "2026-01-01T00:00:00Z"))
        .await
        .unwrap();
    h.installs().save_shoptet_installation(&kept).await.unwrap();
    h.installs()
        .schedule_deletion(&ShopRef::Shoptet(eshop(1)), RecoveryWindow::DEFAULT)
        .await
        .unwrap();
    assert_eq!(
        h.installs().load_shoptet_installation(eshop(1)).await,
        Ok(None)
    );
    assert_eq!(
        h.installs().load_shoptet_installation(eshop(2)).await,
        Ok(Some(kept))
    );
}

// ---------------------------------------------------------------------------
// The inventory: which shops have an installation

/// Every page of the inventory, two shops at most per page, from the first
/// until `next` is `None`; the shops sorted by key, each listed once.
async fn inventory<S: InstallationInventory>(store: &S) -> Vec<ShopRef> {
    let mut query = InventoryQuery {
        limit: NonZeroUsize::new(2).unwrap(),
        after: None,
    };
    let mut listed: Vec<ShopRef> = Vec::new();
    for _ in 0..30 {
        let page = store.list_installations(&query).await.unwrap();
        assert!(page.shops.len() <= 2, "a page over its limit: {page:?}");
        listed.extend(page.shops);
        match page.next {
            Some(next) => query.after = Some(next),
            None => {
                let keys: HashSet<String> = listed.iter().map(ShopRef::key).collect();
                assert_eq!(keys.len(), listed.len(), "a shop listed twice: {listed:?}");
                listed.sort_by_key(ShopRef::key);
                return listed;
            }
        }
    }
    panic!("the listing did not end after 30 pages: {listed:?}");
}

/// Three Shoptet e-shops and two Shoprenter shops, saved; sorted by key.
async fn install_five_shops<S: InstallationStore>(store: &S) -> Vec<ShopRef> {
    let credentials = ShoprenterCredentials {
        client_id: "client-inventory".into(),
        client_secret: ClientSecret::new("secret-inventory"),
    };
    let mut shops = Vec::new();
    for id in [7, 222651, 30] {
        store
            .save_shoptet_installation(&shoptet_record(
                id,
                "oauth-inventory",
                "2026-01-01T00:00:00Z",
            ))
            .await
            .unwrap();
        shops.push(ShopRef::Shoptet(eshop(id)));
    }
    for name in ["alpha-shop", "beta-shop"] {
        let name = shoprenter_shop(name);
        store
            .save_shoprenter_credentials(&name, &credentials)
            .await
            .unwrap();
        shops.push(ShopRef::Shoprenter(name));
    }
    shops.sort_by_key(ShopRef::key);
    shops
}

async fn an_empty_store_lists_no_installation<H: InstallsHarness>() {
    let h = H::new().await;
    let page = h
        .installs()
        .list_installations(&InventoryQuery {
            limit: NonZeroUsize::new(10).unwrap(),
            after: None,
        })
        .await
        .unwrap();
    assert_eq!(page.shops, Vec::<ShopRef>::new());
    assert_eq!(page.next, None);
}

async fn the_inventory_pages_through_every_installed_shop_of_both_platforms<H: InstallsHarness>() {
    let h = H::new().await;
    let installed = install_five_shops(h.installs()).await;
    assert_eq!(inventory(h.installs()).await, installed);
}

async fn the_inventory_omits_a_scheduled_deletion_until_a_reinstall<H: InstallsHarness>() {
    let h = H::new().await;
    let installed = install_five_shops(h.installs()).await;
    let uninstalled = ShopRef::Shoprenter(shoprenter_shop("alpha-shop"));
    h.installs()
        .schedule_deletion(&uninstalled, RecoveryWindow::DEFAULT)
        .await
        .unwrap();
    let remaining: Vec<ShopRef> = installed
        .iter()
        .filter(|shop| **shop != uninstalled)
        .cloned()
        .collect();
    assert_eq!(inventory(h.installs()).await, remaining);

    h.installs()
        .save_shoprenter_credentials(
            &shoprenter_shop("alpha-shop"),
            &ShoprenterCredentials {
                client_id: "client-reinstalled".into(),
                client_secret: ClientSecret::new("secret-reinstalled"),
            },
        )
        .await
        .unwrap();
    assert_eq!(inventory(h.installs()).await, installed);
}

/// A listing resumed from a page's cursor (with another limit) goes on
/// where the first left off: together they list every shop once.
async fn a_listing_resumes_from_a_cursor<H: InstallsHarness>() {
    let h = H::new().await;
    let installed = install_five_shops(h.installs()).await;
    let first = h
        .installs()
        .list_installations(&InventoryQuery {
            limit: NonZeroUsize::new(2).unwrap(),
            after: None,
        })
        .await
        .unwrap();
    let mut listed = first.shops.clone();
    let mut after = first.next.clone();
    assert!(after.is_some(), "five shops fit one page of two: {first:?}");
    while let Some(cursor) = after {
        let page = h
            .installs()
            .list_installations(&InventoryQuery {
                limit: NonZeroUsize::new(100).unwrap(),
                after: Some(cursor),
            })
            .await
            .unwrap();
        listed.extend(page.shops);
        after = page.next;
    }
    listed.sort_by_key(ShopRef::key);
    assert_eq!(listed, installed);
}

// ---------------------------------------------------------------------------
// The installation registry

fn registered(
    shop: &ShopRef,
    status: InstallationStatus,
    installed_at: SystemTime,
    updated_at: SystemTime,
    recheck_at: Option<SystemTime>,
) -> Registration {
    Registration {
        shop: shop.clone(),
        status,
        installed_at,
        updated_at,
        recheck_at,
        sequence: 0,
        mint_failures: 0,
    }
}

/// A registration after `events` lifecycle events (its sequence number).
trait Numbered {
    fn numbered(self, events: u64) -> Self;
}

impl Numbered for Registration {
    fn numbered(mut self, events: u64) -> Self {
        self.sequence = events;
        self
    }
}

fn suspended(at: SystemTime, recheck_at: Option<SystemTime>) -> StatusChange {
    StatusChange {
        recheck_at,
        ..StatusChange::to(InstallationStatus::Suspended, at, Origin::Operator)
    }
}

async fn an_unknown_shop_has_no_registration<H: Harness>() {
    let h = H::new().await;
    assert_eq!(h.registry().registration(&shop()).await, Ok(None));
}

async fn an_install_registers_the_shop_as_active<H: Harness>() {
    let h = H::new().await;
    let at = now();
    assert_eq!(
        h.registry()
            .record(&shop(), &StatusChange::installed(at, Origin::Import))
            .await,
        Ok(None)
    );
    assert_eq!(
        h.registry().registration(&shop()).await,
        Ok(Some(
            registered(&shop(), InstallationStatus::Active, at, at, None).numbered(1)
        ))
    );
    // Only that shop.
    let other = ShopRef::Shoprenter(shoprenter_shop("other"));
    assert_eq!(h.registry().registration(&other).await, Ok(None));
}

async fn a_later_change_keeps_the_install_time_and_returns_what_it_replaced<H: Harness>() {
    let h = H::new().await;
    let installed = at_ms(1_800_000_000_000);
    let suspended_at = at_ms(1_800_000_100_000);
    let recheck = at_ms(1_800_000_200_000);
    let active_again = at_ms(1_800_000_300_000);
    h.registry()
        .record(&shop(), &StatusChange::installed(installed, Origin::Import))
        .await
        .unwrap();

    let active = registered(
        &shop(),
        InstallationStatus::Active,
        installed,
        installed,
        None,
    )
    .numbered(1);
    assert_eq!(
        h.registry()
            .record(&shop(), &suspended(suspended_at, Some(recheck)))
            .await,
        Ok(Some(active))
    );
    let now_suspended = registered(
        &shop(),
        InstallationStatus::Suspended,
        installed,
        suspended_at,
        Some(recheck),
    )
    .numbered(2);
    assert_eq!(
        h.registry().registration(&shop()).await,
        Ok(Some(now_suspended.clone()))
    );

    // The next change clears the re-check it does not carry.
    assert_eq!(
        h.registry()
            .record(
                &shop(),
                &StatusChange::to(InstallationStatus::Active, active_again, Origin::Operator)
            )
            .await,
        Ok(Some(now_suspended))
    );
    assert_eq!(
        h.registry().registration(&shop()).await,
        Ok(Some(
            registered(
                &shop(),
                InstallationStatus::Active,
                installed,
                active_again,
                None
            )
            .numbered(3)
        ))
    );
}

async fn a_reinstall_after_an_uninstall_starts_a_new_install_time<H: Harness>() {
    let h = H::new().await;
    let (first, gone, back) = (
        at_ms(1_800_000_000_000),
        at_ms(1_800_000_001_000),
        at_ms(1_800_000_002_000),
    );
    h.registry()
        .record(&shop(), &StatusChange::installed(first, Origin::Import))
        .await
        .unwrap();
    h.registry()
        .record(
            &shop(),
            &StatusChange::to(InstallationStatus::Uninstalled, gone, Origin::Operator),
        )
        .await
        .unwrap();
    assert_eq!(
        h.registry()
            .record(&shop(), &StatusChange::installed(back, Origin::Import))
            .await,
        Ok(Some(
            registered(&shop(), InstallationStatus::Uninstalled, first, gone, None).numbered(2)
        ))
    );
    assert_eq!(
        h.registry().registration(&shop()).await,
        Ok(Some(
            registered(&shop(), InstallationStatus::Active, back, back, None).numbered(3)
        ))
    );
}

async fn a_status_change_of_an_unknown_shop_starts_its_install_time<H: Harness>() {
    let h = H::new().await;
    let at = at_ms(1_800_000_000_000);
    let recheck = at_ms(1_800_000_060_000);
    let shop = ShopRef::Shoprenter(shoprenter_shop("first-seen-suspended"));
    assert_eq!(
        h.registry()
            .record(&shop, &suspended(at, Some(recheck)))
            .await,
        Ok(None)
    );
    assert_eq!(
        h.registry().registration(&shop).await,
        Ok(Some(
            registered(&shop, InstallationStatus::Suspended, at, at, Some(recheck)).numbered(1)
        ))
    );
}

async fn registration_times_round_trip_in_milliseconds<H: Harness>() {
    let h = H::new().await;
    let shops = [
        ShopRef::Shoptet(eshop(9_999_999_999)),
        ShopRef::Shoprenter(shoprenter_shop(&"a".repeat(63))),
    ];
    let installed = at_ms(1_900_000_000_001);
    let updated = at_ms(1_900_000_000_999);
    let recheck = at_ms(1_900_000_123_457);
    for shop in &shops {
        h.registry()
            .record(shop, &StatusChange::installed(installed, Origin::Import))
            .await
            .unwrap();
        h.registry()
            .record(shop, &suspended(updated, Some(recheck)))
            .await
            .unwrap();
        assert_eq!(
            h.registry().registration(shop).await,
            Ok(Some(
                registered(
                    shop,
                    InstallationStatus::Suspended,
                    installed,
                    updated,
                    Some(recheck)
                )
                .numbered(2)
            ))
        );
    }
    // A re-check given with an uninstall is kept as given, and cleared by
    // the next change that has none.
    let later = at_ms(1_900_000_200_003);
    h.registry()
        .record(
            &shops[0],
            &StatusChange {
                recheck_at: Some(later),
                ..StatusChange::to(InstallationStatus::Uninstalled, later, Origin::Operator)
            },
        )
        .await
        .unwrap();
    assert_eq!(
        h.registry()
            .registration(&shops[0])
            .await
            .unwrap()
            .and_then(|r| r.recheck_at),
        Some(later)
    );
    h.registry()
        .record(
            &shops[0],
            &StatusChange::to(InstallationStatus::Uninstalled, later, Origin::Operator),
        )
        .await
        .unwrap();
    assert_eq!(
        h.registry()
            .registration(&shops[0])
            .await
            .unwrap()
            .map(|r| r.recheck_at),
        Some(None)
    );
}

async fn a_recheck_is_claimed_only_when_a_suspended_shop_is_due<H: Harness>() {
    let h = H::new().await;
    let r = h.registry();
    let t0 = at_ms(1_800_000_000_000);
    let due = t0 + Duration::from_secs(60);
    let next = due + Duration::from_secs(600);

    // Unknown: nothing to claim, and nothing is created.
    assert_eq!(r.claim_recheck(&shop(), due, next).await, Ok(false));
    assert_eq!(r.registration(&shop()).await, Ok(None));

    // Active, even with a past re-check time.
    r.record(
        &shop(),
        &StatusChange {
            recheck_at: Some(t0),
            ..StatusChange::installed(t0, Origin::Import)
        },
    )
    .await
    .unwrap();
    assert_eq!(r.claim_recheck(&shop(), due, next).await, Ok(false));

    // Uninstalled, likewise.
    r.record(
        &shop(),
        &StatusChange {
            recheck_at: Some(t0),
            ..StatusChange::to(InstallationStatus::Uninstalled, t0, Origin::Operator)
        },
    )
    .await
    .unwrap();
    assert_eq!(r.claim_recheck(&shop(), due, next).await, Ok(false));

    // Suspended, not yet due.
    r.record(&shop(), &suspended(t0, Some(due))).await.unwrap();
    assert_eq!(
        r.claim_recheck(&shop(), due - Duration::from_millis(1), next)
            .await,
        Ok(false)
    );
    assert_eq!(
        r.registration(&shop()).await.unwrap().unwrap().recheck_at,
        Some(due)
    );

    // Due at exactly its time: claimed, and moved to `next`.
    assert_eq!(r.claim_recheck(&shop(), due, next).await, Ok(true));
    let after_claim = r.registration(&shop()).await.unwrap().unwrap();
    assert_eq!(after_claim.recheck_at, Some(next));
    assert_eq!(after_claim.status, InstallationStatus::Suspended);
    assert_eq!(after_claim.updated_at, t0);
    // Claimed once: not again before `next`.
    assert_eq!(r.claim_recheck(&shop(), due, next).await, Ok(false));
    assert_eq!(
        r.claim_recheck(&shop(), next, next + Duration::from_secs(600))
            .await,
        Ok(true)
    );

    // Suspended without a re-check time: due at once.
    let other = ShopRef::Shoprenter(shoprenter_shop("no-recheck-yet"));
    r.record(&other, &suspended(t0, None)).await.unwrap();
    assert_eq!(r.claim_recheck(&other, t0, next).await, Ok(true));
    assert_eq!(
        r.registration(&other).await.unwrap().unwrap().recheck_at,
        Some(next)
    );
}

/// Of 10 instances claiming a due re-check at once, exactly one wins.
async fn exactly_one_of_concurrent_recheck_claims_wins<H: Harness>() {
    const INSTANCES: usize = 10;
    let h = H::new().await;
    let t0 = now();
    h.registry()
        .record(&shop(), &suspended(t0, Some(t0)))
        .await
        .unwrap();
    let next = t0 + Duration::from_secs(600);
    let barrier = Arc::new(Barrier::new(INSTANCES));
    let mut tasks = Vec::new();
    for _ in 0..INSTANCES {
        let registry = h.another_registry().await;
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            registry
                .claim_recheck(&shop(), t0, next)
                .await
                .expect("claim_recheck")
        }));
    }
    let mut winners = 0;
    for task in tasks {
        if task.await.expect("task") {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(
        h.registry()
            .registration(&shop())
            .await
            .unwrap()
            .unwrap()
            .recheck_at,
        Some(next)
    );
}

/// 20 instances learn of one uninstall at once: exactly one of them sees
/// the shop still installed (and so acts on the uninstall).
async fn exactly_one_of_concurrent_uninstalls_sees_the_shop_installed<H: Harness>() {
    const INSTANCES: usize = 20;
    let h = H::new().await;
    let t0 = now();
    h.registry()
        .record(&shop(), &StatusChange::installed(t0, Origin::Import))
        .await
        .unwrap();
    let gone = t0 + Duration::from_secs(1);
    let barrier = Arc::new(Barrier::new(INSTANCES));
    let mut tasks = Vec::new();
    for _ in 0..INSTANCES {
        let registry = h.another_registry().await;
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            registry
                .record(
                    &shop(),
                    &StatusChange::to(InstallationStatus::Uninstalled, gone, Origin::Operator),
                )
                .await
                .expect("record")
        }));
    }
    let mut saw_installed = Vec::new();
    for task in tasks {
        let previous = task.await.expect("task").expect("the shop was known");
        assert_eq!(previous.installed_at, t0);
        if previous.status != InstallationStatus::Uninstalled {
            saw_installed.push(previous);
        }
    }
    assert_eq!(
        saw_installed,
        vec![registered(&shop(), InstallationStatus::Active, t0, t0, None).numbered(1)]
    );
    assert_eq!(
        h.registry().registration(&shop()).await.unwrap().map(|r| (
            r.status,
            r.installed_at,
            r.sequence
        )),
        Some((InstallationStatus::Uninstalled, t0, 2)),
        "one uninstalled event among all the duplicates"
    );
}

async fn each_real_change_numbers_one_event_and_a_repeat_none<H: Harness>() {
    let h = H::new().await;
    let registry = h.registry();
    let sequence = async || {
        registry
            .registration(&shop())
            .await
            .unwrap()
            .map(|r| r.sequence)
    };
    let (t0, t1, t2) = (
        at_ms(1_800_000_000_000),
        at_ms(1_800_000_001_000),
        at_ms(1_800_000_002_000),
    );
    let recheck = at_ms(1_800_000_060_000);
    registry
        .record(&shop(), &StatusChange::installed(t0, Origin::Import))
        .await
        .unwrap();
    assert_eq!(sequence().await, Some(1));
    registry
        .record(&shop(), &suspended(t1, Some(recheck)))
        .await
        .unwrap();
    assert_eq!(sequence().await, Some(2));
    // The same suspension delivered again: nothing changes, not even a time.
    registry
        .record(&shop(), &suspended(t2, Some(recheck)))
        .await
        .unwrap();
    let repeated = registry.registration(&shop()).await.unwrap().unwrap();
    assert_eq!((repeated.sequence, repeated.updated_at), (2, t1));
    registry
        .record(
            &shop(),
            &StatusChange::to(InstallationStatus::Uninstalled, t2, Origin::Operator),
        )
        .await
        .unwrap();
    assert_eq!(sequence().await, Some(3));
    // A reinstall is an event even from the same status.
    registry
        .record(&shop(), &StatusChange::installed(t2, Origin::Import))
        .await
        .unwrap();
    registry
        .record(&shop(), &StatusChange::installed(t2, Origin::Import))
        .await
        .unwrap();
    assert_eq!(sequence().await, Some(5));
}

async fn counted_mints_announce_failing_once_and_recovering_once<H: Harness>() {
    use broker_domain::events::{EventKind, FAILING_AFTER, MintOutcome};
    use broker_domain::http::ErrorCode;
    let h = H::new().await;
    let registry = h.registry();
    let at = at_ms(1_800_000_000_000);
    let refused = MintOutcome::Refused(ErrorCode::UpstreamRejected);
    // A shop the registry does not know: nothing is counted or created.
    assert_eq!(registry.record_mint(&shop(), &refused, at).await, Ok(None));
    assert_eq!(registry.registration(&shop()).await, Ok(None));

    registry
        .record(&shop(), &StatusChange::installed(at, Origin::Import))
        .await
        .unwrap();
    let mut announced = Vec::new();
    for _ in 0..FAILING_AFTER + 1 {
        announced.extend(registry.record_mint(&shop(), &refused, at).await.unwrap());
    }
    assert_eq!(
        announced
            .iter()
            .map(|e| (e.kind, e.sequence))
            .collect::<Vec<_>>(),
        [(EventKind::MintingFailing, 2)]
    );
    let counted = registry.registration(&shop()).await.unwrap().unwrap();
    assert_eq!(
        (counted.mint_failures, counted.sequence),
        (FAILING_AFTER + 1, 2)
    );
    let recovered = registry
        .record_mint(&shop(), &MintOutcome::Minted, at)
        .await
        .unwrap()
        .expect("a recovery");
    assert_eq!(
        (recovered.kind, recovered.sequence),
        (EventKind::MintingRecovered, 3)
    );
    assert_eq!(
        registry
            .record_mint(&shop(), &MintOutcome::Minted, at)
            .await,
        Ok(None)
    );
    let reset = registry.registration(&shop()).await.unwrap().unwrap();
    assert_eq!((reset.mint_failures, reset.sequence), (0, 3));
}

/// Five shops on both platforms with mixed statuses.
async fn register_five_shops<R: InstallationRegistry>(registry: &R) -> Vec<Registration> {
    let t0 = at_ms(1_800_000_000_000);
    let shops = [
        (ShopRef::Shoptet(eshop(11)), InstallationStatus::Active),
        (ShopRef::Shoptet(eshop(12)), InstallationStatus::Suspended),
        (ShopRef::Shoptet(eshop(13)), InstallationStatus::Active),
        (
            ShopRef::Shoprenter(shoprenter_shop("alpha")),
            InstallationStatus::Uninstalled,
        ),
        (
            ShopRef::Shoprenter(shoprenter_shop("beta")),
            InstallationStatus::Active,
        ),
    ];
    let mut all = Vec::new();
    for (n, (shop, status)) in shops.into_iter().enumerate() {
        let installed = t0 + Duration::from_millis(n as u64);
        let changed = installed + Duration::from_secs(60);
        registry
            .record(&shop, &StatusChange::installed(installed, Origin::Import))
            .await
            .unwrap();
        let mut registration = registered(&shop, status, installed, installed, None).numbered(1);
        if status != InstallationStatus::Active {
            registration.sequence = 2;
            registry
                .record(&shop, &StatusChange::to(status, changed, Origin::Operator))
                .await
                .unwrap();
            registration.updated_at = changed;
        }
        all.push(registration);
    }
    all
}

/// Every page of a listing, from the first until `next_after` is `None`.
async fn list_all<R: InstallationRegistry>(
    registry: &R,
    platform: Option<Platform>,
    status: Option<InstallationStatus>,
) -> Vec<Registration> {
    let limit = NonZeroUsize::new(2).unwrap();
    let mut query = RegistryQuery {
        platform,
        status,
        limit,
        after: None,
    };
    let mut listed: Vec<Registration> = Vec::new();
    for _ in 0..20 {
        let page = registry.list(&query).await.unwrap();
        assert!(page.registrations.len() <= limit.get(), "{page:?}");
        listed.extend(page.registrations);
        match page.next_after {
            Some(after) => query.after = Some(after),
            None => {
                let keys: HashSet<String> = listed.iter().map(|r| r.shop.key()).collect();
                assert_eq!(keys.len(), listed.len(), "a shop listed twice: {listed:?}");
                listed.sort_by_key(|r| r.shop.key());
                return listed;
            }
        }
    }
    panic!("the listing did not end after 20 pages: {listed:?}");
}

fn expected(
    all: &[Registration],
    platform: Option<Platform>,
    status: Option<InstallationStatus>,
) -> Vec<Registration> {
    let mut wanted: Vec<Registration> = all
        .iter()
        .filter(|r| platform.is_none_or(|p| r.shop.platform() == p))
        .filter(|r| status.is_none_or(|s| r.status == s))
        .cloned()
        .collect();
    wanted.sort_by_key(|r| r.shop.key());
    wanted
}

async fn listing_pages_through_every_registration_once<H: Harness>() {
    let h = H::new().await;
    // An empty registry lists nothing, in one page.
    assert_eq!(list_all(&**h.registry(), None, None).await, vec![]);

    let all = register_five_shops(&**h.registry()).await;
    assert_eq!(
        list_all(&**h.registry(), None, None).await,
        expected(&all, None, None)
    );
    assert_eq!(expected(&all, None, None).len(), 5);
}

async fn listing_filters_by_platform_and_status<H: Harness>() {
    use InstallationStatus::{Active, Suspended, Uninstalled};
    let h = H::new().await;
    let all = register_five_shops(&**h.registry()).await;
    let platforms = [None, Some(Platform::Shoptet), Some(Platform::Shoprenter)];
    let statuses = [None, Some(Active), Some(Suspended), Some(Uninstalled)];
    for platform in platforms {
        for status in statuses {
            assert_eq!(
                list_all(&**h.registry(), platform, status).await,
                expected(&all, platform, status),
                "platform {platform:?}, status {status:?}"
            );
        }
    }
    // The fixture covers what the filters tell apart.
    assert_eq!(expected(&all, Some(Platform::Shoptet), None).len(), 3);
    assert_eq!(expected(&all, None, Some(Active)).len(), 3);
    assert_eq!(
        expected(&all, Some(Platform::Shoptet), Some(Active)).len(),
        2
    );
    assert_eq!(
        expected(&all, Some(Platform::Shoprenter), Some(Suspended)).len(),
        0
    );
}

/// What only the ordered adapters (memory, SQLite) promise: full pages in
/// key order, `next_after` naming the last shop of a page when more follow.
async fn pages_are_full_and_in_key_order<H: Harness>() {
    let h = H::new().await;
    let all = register_five_shops(&**h.registry()).await;
    let keys = |page: &broker_domain::storage::RegistryPage| {
        page.registrations
            .iter()
            .map(|r| r.shop.key())
            .collect::<Vec<_>>()
    };
    let mut query = RegistryQuery {
        platform: None,
        status: None,
        limit: NonZeroUsize::new(2).unwrap(),
        after: None,
    };
    let first = h.registry().list(&query).await.unwrap();
    assert_eq!(keys(&first), ["shoprenter#alpha", "shoprenter#beta"]);
    assert_eq!(
        first.next_after,
        Some(ShopRef::Shoprenter(shoprenter_shop("beta")))
    );
    query.after = first.next_after;
    let second = h.registry().list(&query).await.unwrap();
    assert_eq!(keys(&second), ["shoptet#11", "shoptet#12"]);
    query.after = second.next_after;
    let third = h.registry().list(&query).await.unwrap();
    assert_eq!(keys(&third), ["shoptet#13"]);
    assert_eq!(third.next_after, None);

    // A page that ends exactly at the last matching shop ends the listing.
    let active_shoptet = h
        .registry()
        .list(&RegistryQuery {
            platform: Some(Platform::Shoptet),
            status: Some(InstallationStatus::Active),
            limit: NonZeroUsize::new(2).unwrap(),
            after: None,
        })
        .await
        .unwrap();
    assert_eq!(keys(&active_shoptet), ["shoptet#11", "shoptet#13"]);
    assert_eq!(active_shoptet.next_after, None);
    assert_eq!(
        active_shoptet.registrations,
        expected(
            &all,
            Some(Platform::Shoptet),
            Some(InstallationStatus::Active)
        )
    );
}

#[tokio::test]
async fn memory_registry_pages_are_full_and_in_key_order() {
    pages_are_full_and_in_key_order::<memory_harness::Memory>().await;
}

#[tokio::test]
async fn sqlite_registry_pages_are_full_and_in_key_order() {
    pages_are_full_and_in_key_order::<sqlite_harness::Sqlite>().await;
}

// ---------------------------------------------------------------------------
// Signed redirects, accepted once and in order

fn app_shop() -> ShopRef {
    ShopRef::Shoprenter(shoprenter_shop("demo"))
}

/// A redirect signed at `seconds`, named by `digest_byte`, remembered for
/// an hour (whole seconds: DynamoDB's TTL keeps seconds).
fn redirect(seconds: u64, digest_byte: u8) -> AcceptedRedirect {
    AcceptedRedirect {
        signed_at: UNIX_EPOCH + Duration::from_secs(seconds),
        digest: SignatureDigest::new([digest_byte; 32]),
        expires_at: UNIX_EPOCH + Duration::from_secs(seconds + 3600),
    }
}

async fn a_signed_redirect_is_accepted_once_and_then_is_a_repeat<H: Harness>() {
    let h = H::new().await;
    let first = redirect(1_700_000_000, 1);
    assert_eq!(
        h.cache().accept_once(&app_shop(), &first).await,
        Ok(RedirectAcceptance::Accepted { previous: None })
    );
    for _ in 0..2 {
        assert_eq!(
            h.cache().accept_once(&app_shop(), &first).await,
            Ok(RedirectAcceptance::Repeat)
        );
    }
    // Kept beside the shop's cache entry, never as it.
    assert_eq!(h.cache().load(&app_shop()).await, Ok(None));
    let later = redirect(1_700_000_060, 2);
    assert_eq!(
        h.cache().accept_once(&app_shop(), &later).await,
        Ok(RedirectAcceptance::Accepted {
            previous: Some(first.clone())
        })
    );
    // Another shop's redirects are its own.
    let other = ShopRef::Shoprenter(shoprenter_shop("other"));
    assert_eq!(
        h.cache().accept_once(&other, &first).await,
        Ok(RedirectAcceptance::Accepted { previous: None })
    );
}

async fn a_redirect_signed_no_later_than_the_last_accepted_is_outdated<H: Harness>() {
    let h = H::new().await;
    let accepted = redirect(1_700_000_000, 1);
    h.cache().accept_once(&app_shop(), &accepted).await.unwrap();
    for older in [redirect(1_699_999_999, 2), redirect(1_700_000_000, 3)] {
        assert_eq!(
            h.cache().accept_once(&app_shop(), &older).await,
            Ok(RedirectAcceptance::Outdated)
        );
    }
    // Nothing was overwritten: the accepted one is still the repeat.
    assert_eq!(
        h.cache().accept_once(&app_shop(), &accepted).await,
        Ok(RedirectAcceptance::Repeat)
    );
}

async fn a_withdrawn_acceptance_restores_the_previous_record<H: Harness>() {
    let h = H::new().await;
    let first = redirect(1_700_000_000, 1);
    let second = redirect(1_700_000_060, 2);
    h.cache().accept_once(&app_shop(), &first).await.unwrap();
    h.cache().accept_once(&app_shop(), &second).await.unwrap();
    h.cache()
        .withdraw(&app_shop(), &second, Some(&first))
        .await
        .unwrap();
    // The failed one is accepted again on retry; the first stays a repeat
    // until then.
    assert_eq!(
        h.cache().accept_once(&app_shop(), &first).await,
        Ok(RedirectAcceptance::Repeat)
    );
    assert_eq!(
        h.cache().accept_once(&app_shop(), &second).await,
        Ok(RedirectAcceptance::Accepted {
            previous: Some(first.clone())
        })
    );
    // Withdrawing one that is no longer the record changes nothing.
    h.cache().withdraw(&app_shop(), &first, None).await.unwrap();
    assert_eq!(
        h.cache().accept_once(&app_shop(), &second).await,
        Ok(RedirectAcceptance::Repeat)
    );
    // Withdrawing the only one leaves no record.
    let lone = ShopRef::Shoprenter(shoprenter_shop("lone"));
    h.cache().accept_once(&lone, &first).await.unwrap();
    h.cache().withdraw(&lone, &first, None).await.unwrap();
    assert_eq!(
        h.cache().accept_once(&lone, &first).await,
        Ok(RedirectAcceptance::Accepted { previous: None })
    );
}

async fn exactly_one_of_concurrent_offers_of_a_redirect_is_accepted<H: Harness>() {
    let h = H::new().await;
    let offered = redirect(1_700_000_000, 7);
    let barrier = Arc::new(Barrier::new(8));
    let mut offers = Vec::new();
    for _ in 0..8 {
        // Each offer through a handle of its own, as separate instances.
        let cache = h.another_cache().await;
        let barrier = Arc::clone(&barrier);
        let offered = offered.clone();
        offers.push(tokio::spawn(async move {
            barrier.wait().await;
            cache.accept_once(&app_shop(), &offered).await.unwrap()
        }));
    }
    let mut accepted = 0;
    for offer in offers {
        match offer.await.unwrap() {
            RedirectAcceptance::Accepted { .. } => accepted += 1,
            RedirectAcceptance::Repeat => {}
            RedirectAcceptance::Outdated => panic!("the same redirect is a repeat"),
        }
    }
    assert_eq!(accepted, 1);
}

// ---------------------------------------------------------------------------
// E-shop webhook signature keys, kept beside each Shoptet installation

fn signature_key(text: &str) -> EshopSignatureKey {
    EshopSignatureKey::new(text)
}

/// The key's text, to compare (the secret type has no equality).
fn key_text(key: Option<EshopSignatureKey>) -> Option<String> {
    key.map(|key| key.expose_secret().to_owned())
}

async fn loaded_key<S: InstallationStore>(store: &S, id: u64) -> Option<String> {
    key_text(store.load_signature_key(eshop(id)).await.unwrap())
}

async fn a_saved_signature_key_loads_back<H: InstallsHarness>() {
    let h = H::new().await;
    h.installs()
        .save_shoptet_installation(&shoptet_record(222651, "oauth-one", "2026-01-01T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(
        h.installs()
            .load_signature_key(eshop(222651))
            .await
            .map(key_text),
        Ok(None)
    );

    h.installs()
        .save_signature_key(eshop(222651), &signature_key("signature-key-first-4b1e"))
        .await
        .unwrap();
    assert_eq!(
        loaded_key(h.installs(), 222651).await.as_deref(),
        Some("signature-key-first-4b1e")
    );
}

async fn a_second_signature_key_replaces_the_first<H: InstallsHarness>() {
    let h = H::new().await;
    h.installs()
        .save_shoptet_installation(&shoptet_record(222651, "oauth-one", "2026-01-01T00:00:00Z"))
        .await
        .unwrap();
    for key in ["signature-key-first-4b1e", "signature-key-renewed-9a0c"] {
        h.installs()
            .save_signature_key(eshop(222651), &signature_key(key))
            .await
            .unwrap();
    }
    assert_eq!(
        loaded_key(h.installs(), 222651).await.as_deref(),
        Some("signature-key-renewed-9a0c")
    );
}

async fn signature_keys_are_kept_per_eshop<H: InstallsHarness>() {
    let h = H::new().await;
    for id in [1, 2] {
        h.installs()
            .save_shoptet_installation(&shoptet_record(id, "oauth", "2026-01-01T00:00:00Z"))
            .await
            .unwrap();
    }
    h.installs()
        .save_signature_key(eshop(1), &signature_key("signature-key-of-one"))
        .await
        .unwrap();
    assert_eq!(loaded_key(h.installs(), 2).await, None);
    h.installs()
        .save_signature_key(eshop(2), &signature_key("signature-key-of-two"))
        .await
        .unwrap();
    assert_eq!(
        loaded_key(h.installs(), 1).await.as_deref(),
        Some("signature-key-of-one")
    );
    assert_eq!(
        loaded_key(h.installs(), 2).await.as_deref(),
        Some("signature-key-of-two")
    );
}

async fn an_uninstall_removes_the_signature_key_until_a_new_one_is_saved<H: InstallsHarness>() {
    let h = H::new().await;
    let other = ShopRef::Shoptet(eshop(7));
    for id in [222651, 7] {
        h.installs()
            .save_shoptet_installation(&shoptet_record(id, "oauth", "2026-01-01T00:00:00Z"))
            .await
            .unwrap();
        h.installs()
            .save_signature_key(eshop(id), &signature_key(&format!("signature-key-{id}")))
            .await
            .unwrap();
    }

    h.installs()
        .schedule_deletion(&shop(), RecoveryWindow::DEFAULT)
        .await
        .unwrap();
    assert_eq!(loaded_key(h.installs(), 222651).await, None);
    // Idempotent, like the document's deletion.
    h.installs()
        .schedule_deletion(&shop(), RecoveryWindow::DEFAULT)
        .await
        .unwrap();
    assert_eq!(loaded_key(h.installs(), 222651).await, None);
    // Another e-shop's key stays.
    assert_eq!(
        loaded_key(h.installs(), 7).await.as_deref(),
        Some("signature-key-7")
    );

    // A reinstall brings no key back by itself, or, where the key lives in
    // the installation's record restored with it, the old one (nothing
    // else); the next one saved works either way.
    h.installs()
        .save_shoptet_installation(&shoptet_record(
            222651,
            "oauth-again",
            "2026-02-01T00:00:00Z",
        ))
        .await
        .unwrap();
    let restored = loaded_key(h.installs(), 222651).await;
    if H::KEY_INSIDE_THE_INSTALLATION {
        assert!(
            matches!(restored.as_deref(), None | Some("signature-key-222651")),
            "after a reinstall: {restored:?}"
        );
    } else {
        assert_eq!(restored, None);
    }
    h.installs()
        .save_signature_key(
            eshop(222651),
            &signature_key("signature-key-after-reinstall"),
        )
        .await
        .unwrap();
    assert_eq!(
        loaded_key(h.installs(), 222651).await.as_deref(),
        Some("signature-key-after-reinstall")
    );
    // And goes with the next uninstall again.
    h.installs()
        .schedule_deletion(&other, RecoveryWindow::DEFAULT)
        .await
        .unwrap();
    assert_eq!(loaded_key(h.installs(), 7).await, None);
}

/// An uninstall of an e-shop that never had a key is fine.
async fn an_uninstall_without_a_signature_key_succeeds<H: InstallsHarness>() {
    let h = H::new().await;
    h.installs()
        .save_shoptet_installation(&shoptet_record(222651, "oauth", "2026-01-01T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(
        h.installs()
            .schedule_deletion(&shop(), RecoveryWindow::DEFAULT)
            .await,
        Ok(())
    );
    assert_eq!(
        h.installs().load_shoptet_installation(eshop(222651)).await,
        Ok(None)
    );
}

async fn saving_a_signature_key_leaves_the_installation_document_unchanged<H: InstallsHarness>() {
    let h = H::new().await;
    let record = shoptet_record(222651, "oauth-kept-as-it-was", "2026-01-01T00:00:00Z");
    h.installs()
        .save_shoptet_installation(&record)
        .await
        .unwrap();
    let before = h.installs().load_document(&shop()).await.unwrap();

    h.installs()
        .save_signature_key(eshop(222651), &signature_key("signature-key-beside-it"))
        .await
        .unwrap();

    assert_eq!(h.installs().load_document(&shop()).await, Ok(before));
    assert_eq!(
        h.installs().load_shoptet_installation(eshop(222651)).await,
        Ok(Some(record))
    );
}

/// Two e-shops with a document and a key each: the inventory lists the two
/// shops, whatever the page size (a page may end on a key's entry, and its
/// cursor must still resume the listing).
async fn the_inventory_never_lists_a_signature_key_as_a_shop<H: InstallsHarness>() {
    let h = H::new().await;
    for id in [222651, 7] {
        h.installs()
            .save_shoptet_installation(&shoptet_record(id, "oauth", "2026-01-01T00:00:00Z"))
            .await
            .unwrap();
        h.installs()
            .save_signature_key(eshop(id), &signature_key("signature-key"))
            .await
            .unwrap();
    }
    let mut both = vec![ShopRef::Shoptet(eshop(222651)), ShopRef::Shoptet(eshop(7))];
    both.sort_by_key(ShopRef::key);
    assert_eq!(inventory(h.installs()).await, both);

    let mut listed = Vec::new();
    let mut query = InventoryQuery {
        limit: NonZeroUsize::new(1).unwrap(),
        after: None,
    };
    let mut pages = 0;
    loop {
        let page = h.installs().list_installations(&query).await.unwrap();
        assert!(page.shops.len() <= 1, "a page over its limit: {page:?}");
        listed.extend(page.shops);
        pages += 1;
        assert!(pages <= 10, "the listing did not end: {listed:?}");
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    listed.sort_by_key(ShopRef::key);
    assert_eq!(listed, both, "paging one entry at a time");

    // A key whose installation was uninstalled is not a shop either (where
    // the key lives inside the installation's record, it is refused).
    h.installs()
        .schedule_deletion(&ShopRef::Shoptet(eshop(7)), RecoveryWindow::DEFAULT)
        .await
        .unwrap();
    let saved = h
        .installs()
        .save_signature_key(eshop(7), &signature_key("signature-key-without-a-document"))
        .await;
    assert_eq!(saved.is_err(), H::KEY_INSIDE_THE_INSTALLATION, "{saved:?}");
    assert_eq!(
        inventory(h.installs()).await,
        [ShopRef::Shoptet(eshop(222651))]
    );
}

// ---------------------------------------------------------------------------
// The log of forwarded e-shop webhook deliveries

fn fingerprint(byte: u8) -> DeliveryFingerprint {
    DeliveryFingerprint::new([byte; 32])
}

/// A day ahead, on a whole second (DynamoDB's TTL keeps seconds).
fn a_day_ahead() -> SystemTime {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs();
    UNIX_EPOCH + Duration::from_secs(seconds + 86_400)
}

async fn an_unknown_delivery_was_not_forwarded<H: Harness>() {
    let h = H::new().await;
    assert_eq!(h.cache().was_forwarded(&fingerprint(1)).await, Ok(false));
}

async fn a_recorded_delivery_was_forwarded_for_every_instance<H: Harness>() {
    let h = H::new().await;
    h.cache()
        .record_forwarded(&fingerprint(1), a_day_ahead())
        .await
        .unwrap();
    assert_eq!(h.cache().was_forwarded(&fingerprint(1)).await, Ok(true));
    let another = h.another_cache().await;
    assert_eq!(another.was_forwarded(&fingerprint(1)).await, Ok(true));
}

async fn recording_a_delivery_twice_is_fine<H: Harness>() {
    let h = H::new().await;
    let another = h.another_cache().await;
    assert_eq!(
        h.cache()
            .record_forwarded(&fingerprint(1), a_day_ahead())
            .await,
        Ok(())
    );
    assert_eq!(
        another
            .record_forwarded(&fingerprint(1), a_day_ahead())
            .await,
        Ok(())
    );
    assert_eq!(h.cache().was_forwarded(&fingerprint(1)).await, Ok(true));
}

async fn deliveries_are_told_apart_by_their_fingerprints<H: Harness>() {
    let h = H::new().await;
    h.cache()
        .record_forwarded(&fingerprint(1), a_day_ahead())
        .await
        .unwrap();
    assert_eq!(h.cache().was_forwarded(&fingerprint(2)).await, Ok(false));
    let mut almost = [1; 32];
    almost[31] = 2;
    assert_eq!(
        h.cache()
            .was_forwarded(&DeliveryFingerprint::new(almost))
            .await,
        Ok(false)
    );
    // Nor is a delivery's record any shop's cache entry.
    assert_eq!(h.cache().load(&shop()).await, Ok(None));
}

async fn of_concurrent_claims_of_one_occasion_exactly_one_wins<H: Harness>() {
    let h = H::new().await;
    let occasion = fingerprint(7);
    let claims =
        futures_util::future::join_all((0..8).map(|_| h.cache().claim(&occasion, a_day_ahead())))
            .await;
    let won = claims.iter().filter(|claim| **claim == Ok(true)).count();
    assert_eq!(won, 1, "{claims:?}");
    assert_eq!(h.cache().was_forwarded(&fingerprint(7)).await, Ok(true));
    assert_eq!(
        h.cache().claim(&fingerprint(8), a_day_ahead()).await,
        Ok(true)
    );
    // A claim whose time has passed is a lease that lapsed: it may be taken.
    let lapsed = SystemTime::now() - Duration::from_secs(5);
    assert_eq!(h.cache().claim(&fingerprint(9), lapsed).await, Ok(true));
    assert_eq!(
        h.cache().claim(&fingerprint(9), a_day_ahead()).await,
        Ok(true)
    );
    assert_eq!(
        h.cache().claim(&fingerprint(9), a_day_ahead()).await,
        Ok(false)
    );
}

// ---------------------------------------------------------------------------
// Every case against every adapter

macro_rules! contract {
    (installations: [$($installs:ident),* $(,)?], others: [$($case:ident),* $(,)?] $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $installs() {
                    super::$installs::<super::memory_harness::Memory>().await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$case::<super::memory_harness::Memory>().await;
                }
            )*
        }

        mod dynamodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $installs() {
                    super::$installs::<super::dynamodb_harness::Dynamo>().await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$case::<super::dynamodb_harness::Dynamo>().await;
                }
            )*
        }

        /// The DynamoDB installation store implements one port only.
        mod dynamodb_installations {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $installs() {
                    super::$installs::<super::envelope_harness::Envelope>().await;
                }
            )*
        }

                mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $installs() {
                    super::$installs::<super::sqlite_harness::Sqlite>().await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$case::<super::sqlite_harness::Sqlite>().await;
                }
            )*
        }
    };
}

contract! {
    installations: [
        create_then_replace_shoptet_installation,
        installations_of_different_shops_are_separate,
        loading_a_missing_installation_gives_none,
        shoprenter_credentials_round_trip,
        a_scheduled_deletion_hides_the_installation_until_a_reinstall,
        a_scheduled_deletion_leaves_other_shops_alone,
        an_empty_store_lists_no_installation,
        the_inventory_pages_through_every_installed_shop_of_both_platforms,
        the_inventory_omits_a_scheduled_deletion_until_a_reinstall,
        a_listing_resumes_from_a_cursor,
        a_saved_signature_key_loads_back,
        a_second_signature_key_replaces_the_first,
        signature_keys_are_kept_per_eshop,
        an_uninstall_removes_the_signature_key_until_a_new_one_is_saved,
        an_uninstall_without_a_signature_key_succeeds,
        saving_a_signature_key_leaves_the_installation_document_unchanged,
        the_inventory_never_lists_a_signature_key_as_a_shop,
    ],
    others: [
        loading_a_missing_cache_entry_gives_none,
        a_lease_on_an_empty_entry_is_acquired,
        a_live_lease_keeps_a_second_owner_out,
        an_expired_lease_is_stolen,
        a_lease_keeps_the_cached_token_and_ledger,
        the_holder_stores_and_releases,
        a_non_holder_cannot_store,
        a_stale_holder_loses_to_the_thief,
        release_by_a_non_holder_leaves_the_lease,
        release_by_the_holder_frees_the_lease,
        forget_removes_the_entry,
        times_and_scopes_round_trip_in_milliseconds,
        shops_have_separate_entries,
        exactly_one_of_concurrent_leases_wins,
        instances_share_one_cache,
        an_unknown_shop_has_no_registration,
        an_install_registers_the_shop_as_active,
        a_later_change_keeps_the_install_time_and_returns_what_it_replaced,
        a_reinstall_after_an_uninstall_starts_a_new_install_time,
        a_status_change_of_an_unknown_shop_starts_its_install_time,
        registration_times_round_trip_in_milliseconds,
        a_recheck_is_claimed_only_when_a_suspended_shop_is_due,
        exactly_one_of_concurrent_recheck_claims_wins,
        exactly_one_of_concurrent_uninstalls_sees_the_shop_installed,
        each_real_change_numbers_one_event_and_a_repeat_none,
        counted_mints_announce_failing_once_and_recovering_once,
        listing_pages_through_every_registration_once,
        listing_filters_by_platform_and_status,
        a_signed_redirect_is_accepted_once_and_then_is_a_repeat,
        a_redirect_signed_no_later_than_the_last_accepted_is_outdated,
        a_withdrawn_acceptance_restores_the_previous_record,
        exactly_one_of_concurrent_offers_of_a_redirect_is_accepted,
        an_unknown_delivery_was_not_forwarded,
        a_recorded_delivery_was_forwarded_for_every_instance,
        recording_a_delivery_twice_is_fine,
        deliveries_are_told_apart_by_their_fingerprints,
        of_concurrent_claims_of_one_occasion_exactly_one_wins,
    ],
}

// ---------------------------------------------------------------------------
// What only the token table promises about accepted redirects: an item of
// its own with a TTL, holding a digest and a time, nothing a shop's cache
// entry or the registry meets.

mod dynamodb_redirects_only {
    use super::dynamodb_harness::Dynamo;
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn an_accepted_redirect_is_an_item_of_its_own_with_a_ttl() {
        let h = Dynamo::new().await;
        let accepted = redirect(1_700_000_000, 0xab);
        h.cache().accept_once(&app_shop(), &accepted).await.unwrap();
        let items = h.token_table_items().await;
        assert_eq!(items.len(), 1);
        let item = &items[0];
        assert_eq!(
            item["pk"].as_s().unwrap(),
            &format!("signed-redirect#{}", app_shop().key())
        );
        assert_eq!(item["ttl"].as_n().unwrap(), "1700003600");
        assert_eq!(item["signed_at"].as_n().unwrap(), "1700000000000");
        assert_eq!(item["signature_digest"].as_s().unwrap(), &"ab".repeat(32));
        // Neither the shop's cache entry nor its registration.
        assert_eq!(h.cache().load(&app_shop()).await, Ok(None));
        assert_eq!(h.registry().registration(&app_shop()).await, Ok(None));
    }
}

// ---------------------------------------------------------------------------
// What only the token table promises about forwarded deliveries: an item of
// its own per delivery, with the TTL at `keep_until`, nothing else.

mod dynamodb_deliveries_only {
    use super::dynamodb_harness::Dynamo;
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_forwarded_delivery_is_an_item_of_its_own_with_a_ttl() {
        let h = Dynamo::new().await;
        let keep_until = UNIX_EPOCH + Duration::from_secs(1_900_000_000);
        h.cache()
            .record_forwarded(&fingerprint(0xcd), keep_until)
            .await
            .unwrap();
        let items = h.token_table_items().await;
        assert_eq!(items.len(), 1);
        let item = &items[0];
        assert_eq!(
            item["pk"].as_s().unwrap(),
            &format!("eshop-webhook#{}", "cd".repeat(32))
        );
        assert_eq!(item["ttl"].as_n().unwrap(), "1900000000");
        assert_eq!(item.len(), 2, "nothing but the key and the TTL: {item:?}");
        // Recording again keeps one item, with the later TTL.
        let later = keep_until + Duration::from_secs(60);
        h.cache()
            .record_forwarded(&fingerprint(0xcd), later)
            .await
            .unwrap();
        let items = h.token_table_items().await;
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["ttl"].as_n().unwrap(), "1900000060");
    }
}

// ---------------------------------------------------------------------------
// What only the DynamoDB token cache promises: a reader of the table without
// the KMS key gets no usable token

mod dynamodb_token_cache_only {
    use super::dynamodb_harness::Dynamo;
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue;
    use broker_aws::storage::dynamodb::DynamoTokenCache;
    use std::collections::HashMap;
    use test_support::LeakScanner;
    use test_support::request_counting::{TableRoles, counting};

    type Item = HashMap<String, AttributeValue>;

    /// A token as long as Shoptet's, so a leak of part of it shows.
    const SECRET_TOKEN: &str = "api-token-0123456789abcdefghijklmnopqrstuvwxyz-sealed";

    async fn raw_item(h: &Dynamo, shop: &ShopRef) -> Item {
        h.dynamo
            .get_item()
            .table_name(&h.table)
            .key("pk", AttributeValue::S(shop.key()))
            .consistent_read(true)
            .send()
            .await
            .expect("reading the raw item")
            .item
            .expect("the shop has an item")
    }

    async fn put_raw_item(h: &Dynamo, item: Item) {
        h.dynamo
            .put_item()
            .table_name(&h.table)
            .set_item(Some(item))
            .send()
            .await
            .expect("writing a raw item");
    }

    /// Stores `value` for `shop` the way the vendor does: lease, store,
    /// release.
    async fn cache_token<C: TokenCache>(
        cache: &C,
        shop: &ShopRef,
        value: &str,
        now: SystemTime,
    ) -> CachedToken {
        acquire(cache, shop, "writer", now, now + Duration::from_secs(30)).await;
        let minted = token(value, now + Duration::from_secs(1800), &["orders"]);
        let ledger = vec![now + Duration::from_secs(1800)];
        assert_eq!(
            cache
                .store_and_release(shop, "writer", &minted, &ledger)
                .await,
            Ok(true)
        );
        minted
    }

    /// The token the cache serves for `shop`, if any.
    async fn token_of<C: TokenCache>(cache: &C, shop: &ShopRef) -> Option<CachedToken> {
        cache
            .load(shop)
            .await
            .unwrap()
            .and_then(|entry| entry.token)
    }

    /// Every attribute's bytes, as a reader with `dynamodb:GetItem` alone
    /// sees them (strings as they are, binaries as raw bytes, lossily).
    fn readable_text(item: &Item) -> String {
        fn text(value: &AttributeValue) -> String {
            match value {
                AttributeValue::S(s) | AttributeValue::N(s) => s.clone(),
                AttributeValue::B(b) => String::from_utf8_lossy(b.as_ref()).into_owned(),
                AttributeValue::L(list) => list.iter().map(text).collect::<Vec<_>>().join(" "),
                other => format!("{other:?}"),
            }
        }
        item.iter()
            .map(|(name, value)| format!("{name}={}", text(value)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_reader_of_the_raw_item_finds_no_token_in_any_attribute() {
        let h = Dynamo::new().await;
        let minted = cache_token(&**h.cache(), &shop(), SECRET_TOKEN, now()).await;

        let item = raw_item(&h, &shop()).await;
        LeakScanner::new([SECRET_TOKEN]).assert_absent("the raw item", &readable_text(&item));
        LeakScanner::new([SECRET_TOKEN]).assert_absent("the raw item", &format!("{item:?}"));
        assert!(
            !item.contains_key("token"),
            "no plaintext attribute: {:?}",
            item.keys()
        );
        for sealed in ["token_sealed", "token_nonce", "token_data_key"] {
            assert!(
                item.get(sealed).is_some_and(|value| value.is_b()),
                "{sealed} is stored as binary"
            );
        }
        // The key holder (the functions) reads it back whole.
        assert_eq!(token_of(&**h.cache(), &shop()).await, Some(minted));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_ciphertext_copied_to_another_shops_item_reads_as_a_miss() {
        let h = Dynamo::new().await;
        let now = now();
        let victim = shop();
        let other = ShopRef::Shoptet(eshop(333777));
        cache_token(&**h.cache(), &victim, SECRET_TOKEN, now).await;
        let other_minted = cache_token(
            &**h.cache(),
            &other,
            "api-token-of-the-other-shop-000000",
            now,
        )
        .await;

        // Everything of the victim's item under the other shop's key: the
        // same data key, nonce, ciphertext and expiry.
        let mut copied = raw_item(&h, &victim).await;
        copied.insert("pk".into(), AttributeValue::S(other.key()));
        put_raw_item(&h, copied).await;

        for cache in [h.cache().clone(), h.another_cache().await] {
            let entry = cache
                .load(&other)
                .await
                .unwrap()
                .expect("the item is there");
            assert_eq!(entry.token, None, "a miss: neither shop's token");
            assert_eq!(
                entry.ledger,
                vec![now + Duration::from_secs(1800)],
                "the ledger stays"
            );
        }
        // The refusal is a miss, not a failure: the vendor leases, mints and
        // stores over it.
        let refreshed = cache_token(
            &**h.cache(),
            &other,
            "api-token-minted-again-1111111111",
            now,
        )
        .await;
        assert_ne!(refreshed, other_minted);
        assert_eq!(token_of(&**h.cache(), &other).await, Some(refreshed));
        // The victim's own item still opens.
        assert_eq!(
            token_of(&**h.cache(), &victim)
                .await
                .map(|token| token.access_token),
            Some(ApiAccessToken::new(SECRET_TOKEN))
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_ciphertext_given_another_expiry_reads_as_a_miss() {
        let h = Dynamo::new().await;
        let now = now();
        cache_token(&**h.cache(), &shop(), SECRET_TOKEN, now).await;

        let mut item = raw_item(&h, &shop()).await;
        let later = now + Duration::from_secs(86_400);
        let later_ms = later.duration_since(UNIX_EPOCH).unwrap().as_millis();
        item.insert(
            "token_expires_at".into(),
            AttributeValue::N(later_ms.to_string()),
        );
        put_raw_item(&h, item).await;

        let entry = h
            .cache()
            .load(&shop())
            .await
            .unwrap()
            .expect("the item is there");
        assert_eq!(entry.token, None);
    }

    // A data key wrapped by another KMS key is not tested here: AWS answers
    // IncorrectKeyException (a miss, like a foreign context), moto answers
    // AccessDeniedException (which the cache rightly reports as KMS being
    // unavailable).

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_plaintext_item_from_before_sealing_is_a_miss_and_the_next_write_removes_it() {
        let h = Dynamo::new().await;
        let now = now();
        let expires_ms = (now + Duration::from_secs(1800))
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis()
            .to_string();
        // As the previous version wrote it.
        put_raw_item(
            &h,
            Item::from([
                ("pk".into(), AttributeValue::S(shop().key())),
                ("token".into(), AttributeValue::S(SECRET_TOKEN.into())),
                (
                    "token_expires_at".into(),
                    AttributeValue::N(expires_ms.clone()),
                ),
                ("scopes".into(), AttributeValue::L(vec![])),
                (
                    "ledger".into(),
                    AttributeValue::L(vec![AttributeValue::N(expires_ms)]),
                ),
            ]),
        )
        .await;

        let entry = h
            .cache()
            .load(&shop())
            .await
            .unwrap()
            .expect("the item is there");
        assert_eq!(entry.token, None, "the plaintext token is not served");
        assert_eq!(
            entry.ledger.len(),
            1,
            "its mint still counts against the cap"
        );

        let minted = cache_token(
            &**h.cache(),
            &shop(),
            "api-token-sealed-after-upgrade-22",
            now,
        )
        .await;
        let item = raw_item(&h, &shop()).await;
        assert!(
            !item.contains_key("token"),
            "the plaintext is gone: {:?}",
            item.keys()
        );
        LeakScanner::new([SECRET_TOKEN]).assert_absent("the raw item", &readable_text(&item));
        assert_eq!(token_of(&**h.cache(), &shop()).await, Some(minted));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn kms_is_asked_once_per_instance_and_writer_not_per_token() {
        let h = Dynamo::new().await;
        let now = now();
        let roles = TableRoles::default().with(&h.table, "tokens");
        let config = test_support::emulator_sdk_config().await;
        let (aws, counter) = counting(&config, broker_aws::sdk_http::http_client(), roles);
        let instance = |aws: &aws_config::SdkConfig| {
            DynamoTokenCache::new(
                aws_sdk_dynamodb::Client::new(aws),
                aws_sdk_kms::Client::new(aws),
                &h.table,
                h.token_key.clone(),
            )
        };
        let (writer, reader) = (instance(&aws), instance(&aws));
        let shops: Vec<ShopRef> = (1..=3)
            .map(|id| ShopRef::Shoptet(eshop(700 + id)))
            .collect();

        for shop in &shops {
            cache_token(&writer, shop, SECRET_TOKEN, now).await;
            writer.load(shop).await.unwrap();
        }
        for _ in 0..2 {
            for shop in &shops {
                assert!(reader.load(shop).await.unwrap().unwrap().token.is_some());
            }
        }

        let kms: Vec<_> = counter
            .snapshot()
            .0
            .into_iter()
            .filter(|(kind, _)| kind.starts_with("kms:"))
            .collect();
        assert_eq!(
            kms,
            vec![
                ("kms:Decrypt".to_owned(), 1),
                ("kms:GenerateDataKey".to_owned(), 1)
            ],
            "the writer made one data key; the reader unwrapped it once"
        );
    }
}

// ---------------------------------------------------------------------------
// What only the Secrets Manager adapter promises: the recovery window

mod secrets_manager_only {
    use super::dynamodb_harness::Dynamo;
    use super::*;
    use broker_aws::storage::secrets_manager::SIGNATURE_KEY_STAGE;
    use broker_domain::storage::StoreError;

    /// Whether the secret is scheduled for deletion, as Secrets Manager
    /// itself tells.
    async fn deleted_date(
        h: &Dynamo,
        shop: &ShopRef,
    ) -> Option<aws_sdk_secretsmanager::primitives::DateTime> {
        h.secrets
            .describe_secret()
            .secret_id(h.names.installation(shop))
            .send()
            .await
            .expect("describing the secret")
            .deleted_date()
            .copied()
    }

    #[tokio::test]
    async fn a_reinstall_cancels_the_scheduled_deletion_of_the_secret() {
        let h = Dynamo::new().await;
        let first = shoptet_record(222651, "oauth-before-uninstall", "2026-01-01T00:00:00Z");
        let again = shoptet_record(222651, "oauth-after-reinstall", "2026-02-01T00:00:00Z");
        h.installs()
            .save_shoptet_installation(&first)
            .await
            .unwrap();
        assert_eq!(deleted_date(&h, &shop()).await, None);

        h.installs()
            .schedule_deletion(&shop(), RecoveryWindow::DEFAULT)
            .await
            .unwrap();
        // Kept for the recovery window, not deleted at once.
        let scheduled = deleted_date(&h, &shop()).await;
        assert!(scheduled.is_some(), "no DeletedDate after the deletion");
        // Scheduling again keeps the first schedule.
        h.installs()
            .schedule_deletion(&shop(), RecoveryWindow::DEFAULT)
            .await
            .unwrap();
        assert_eq!(deleted_date(&h, &shop()).await, scheduled);

        assert_eq!(
            h.installs().save_shoptet_installation(&again).await,
            Ok(SaveOutcome::Replaced)
        );
        assert_eq!(
            deleted_date(&h, &shop()).await,
            None,
            "the reinstall left the secret scheduled for deletion"
        );
        let stored = h
            .secrets
            .get_secret_value()
            .secret_id(h.names.installation(&shop()))
            .send()
            .await
            .expect("the reinstalled secret is readable")
            .secret_string()
            .map(str::to_owned);
        let stored: ShoptetInstallationRecord =
            serde_json::from_str(&stored.expect("a string secret")).unwrap();
        assert_eq!(stored, again);
    }

    /// Other secrets may share the prefix (an add-on's client secret, a
    /// hand-made one): only names of the installation form are shops.
    #[tokio::test]
    async fn the_inventory_skips_secrets_that_name_no_shop() {
        let h = Dynamo::new().await;
        h.installs()
            .save_shoptet_installation(&shoptet_record(1, "oauth-one", "2026-01-01T00:00:00Z"))
            .await
            .unwrap();
        let prefix = h.names.prefix();
        for name in [
            format!("{prefix}shoprenter-client-secret"),
            format!("{prefix}shoptet/0222651"),
            format!("{prefix}shoptet/not-a-number"),
            format!("{prefix}woocommerce/shop"),
            format!("{prefix}shoptet/1/extra"),
        ] {
            h.secrets
                .create_secret()
                .name(&name)
                .secret_string("not-an-installation-document")
                .send()
                .await
                .unwrap_or_else(|e| panic!("creating {name}: {e:?}"));
        }
        assert_eq!(inventory(h.installs()).await, [ShopRef::Shoptet(eshop(1))]);
    }

    /// The secrets under the case's prefix, scheduled ones included.
    async fn secrets_under_prefix(h: &Dynamo) -> Vec<String> {
        let listed = h
            .secrets
            .list_secrets()
            .include_planned_deletion(true)
            .filters(
                aws_sdk_secretsmanager::types::Filter::builder()
                    .key(aws_sdk_secretsmanager::types::FilterNameStringType::Name)
                    .values(h.names.prefix())
                    .build(),
            )
            .send()
            .await
            .expect("listing the secrets");
        let mut names: Vec<String> = listed
            .secret_list()
            .iter()
            .filter_map(|entry| entry.name().map(str::to_owned))
            // The filter is a prefix match on AWS; said again here.
            .filter(|name| name.starts_with(h.names.prefix()))
            .collect();
        names.sort();
        names
    }

    /// The installation secret's version holding `stage`: (id, value, its
    /// labels); `None` when no version has it.
    async fn version(h: &Dynamo, stage: &str) -> Option<(String, String, Vec<String>)> {
        let output = h
            .secrets
            .get_secret_value()
            .secret_id(h.names.installation(&shop()))
            .version_stage(stage)
            .send()
            .await;
        match output {
            Ok(output) => Some((
                output.version_id().unwrap().to_owned(),
                output.secret_string().unwrap().to_owned(),
                output.version_stages().to_vec(),
            )),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                None
            }
            Err(error) => panic!("reading the {stage} version: {error:?}"),
        }
    }

    /// The e-shop's signature key is a version of the installation's own
    /// secret labelled `webhook-signature-key`, beside the document's
    /// `AWSCURRENT` version, which saving a key leaves as it was: one secret
    /// (one monthly charge) per installation. The uninstall's scheduled
    /// deletion takes the key with the secret; a shop with no installation
    /// secret gets no key, and nothing is created for it.
    #[tokio::test]
    async fn the_signature_key_is_a_labelled_version_of_the_installations_own_secret() {
        let h = Dynamo::new().await;
        let record = shoptet_record(222651, "oauth-kept", "2026-01-01T00:00:00Z");
        h.installs()
            .save_shoptet_installation(&record)
            .await
            .unwrap();
        let (document_version, document, _) = version(&h, "AWSCURRENT").await.unwrap();
        assert_eq!(version(&h, SIGNATURE_KEY_STAGE).await, None);

        for key in ["signature-key-7d3a", "signature-key-renewed-5e21"] {
            h.installs()
                .save_signature_key(eshop(222651), &signature_key(key))
                .await
                .unwrap();
            // The key: a version of its own, with the label only.
            let (key_version, value, stages) = version(&h, SIGNATURE_KEY_STAGE).await.unwrap();
            assert_eq!(value, key);
            assert_eq!(stages, [SIGNATURE_KEY_STAGE]);
            assert_ne!(key_version, document_version);
            // The document: the same AWSCURRENT version, unchanged, and
            // still what the store loads.
            let (current, value, stages) = version(&h, "AWSCURRENT").await.unwrap();
            assert_eq!(
                (current, value),
                (document_version.clone(), document.clone())
            );
            assert!(
                !stages.iter().any(|stage| stage == SIGNATURE_KEY_STAGE),
                "{stages:?}"
            );
            assert_eq!(
                h.installs().load_shoptet_installation(eshop(222651)).await,
                Ok(Some(record.clone()))
            );
            assert_eq!(loaded_key(h.installs(), 222651).await.as_deref(), Some(key));
        }
        // The label moved to the renewed key: one version holds it.
        let versions = h
            .secrets
            .list_secret_version_ids()
            .secret_id(h.names.installation(&shop()))
            .include_deprecated(true)
            .send()
            .await
            .expect("listing the versions");
        let labelled = versions
            .versions()
            .iter()
            .filter(|v| v.version_stages().iter().any(|s| s == SIGNATURE_KEY_STAGE))
            .count();
        assert_eq!(labelled, 1, "{versions:?}");
        // One secret for the installation, key and all.
        let installation = h.names.installation(&shop());
        assert_eq!(secrets_under_prefix(&h).await, [installation.as_str()]);

        // A shop with no installation secret: refused, nothing created.
        let never_installed = ShopRef::Shoptet(eshop(7));
        let refused = h
            .installs()
            .save_signature_key(eshop(7), &signature_key("signature-key-of-nobody"))
            .await;
        assert!(
            matches!(refused, Err(StoreError::Corrupt(_))),
            "{refused:?}"
        );
        assert_eq!(loaded_key(h.installs(), 7).await, None);
        assert_eq!(h.installs().load_document(&never_installed).await, Ok(None));
        assert_eq!(secrets_under_prefix(&h).await, [installation.as_str()]);

        // The uninstall schedules the one secret, and the key goes with it.
        h.installs()
            .schedule_deletion(&shop(), RecoveryWindow::DEFAULT)
            .await
            .unwrap();
        assert_eq!(loaded_key(h.installs(), 222651).await, None);
        assert!(deleted_date(&h, &shop()).await.is_some());
        assert_eq!(secrets_under_prefix(&h).await, [installation.as_str()]);

        // A key for the uninstalled shop is refused, and the secret stays
        // scheduled (AWS would refuse the version; moto would accept it).
        let refused = h
            .installs()
            .save_signature_key(eshop(222651), &signature_key("signature-key-late"))
            .await;
        assert!(
            matches!(refused, Err(StoreError::Corrupt(_))),
            "{refused:?}"
        );
        assert!(
            deleted_date(&h, &shop()).await.is_some(),
            "a key restored the uninstalled secret"
        );
        assert_eq!(loaded_key(h.installs(), 222651).await, None);
    }

    /// The recovery window asked for is the one Secrets Manager applies.
    #[tokio::test]
    async fn the_deletion_is_scheduled_after_the_recovery_window() {
        let h = Dynamo::new().await;
        h.installs()
            .save_shoptet_installation(&shoptet_record(1, "oauth-one", "2026-01-01T00:00:00Z"))
            .await
            .unwrap();
        let shop = ShopRef::Shoptet(eshop(1));
        let before = SystemTime::now();
        h.installs()
            .schedule_deletion(&shop, RecoveryWindow::days(30).unwrap())
            .await
            .unwrap();
        let deleted = deleted_date(&h, &shop)
            .await
            .expect("scheduled for deletion");
        let in_days = (deleted.secs() - before.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64)
            as f64
            / 86_400.0;
        assert!(
            (29.9..=30.1).contains(&in_days),
            "deleted in {in_days} days"
        );
    }
}

// ---------------------------------------------------------------------------
// What only the DynamoDB installation store promises: no plaintext in the
// table, documents bound to their shop, the recovery window as an item mark

mod dynamodb_installations_only {
    use super::envelope_harness::Envelope;
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue;
    use broker_aws::storage::dynamodb_installations::TTL_ATTRIBUTE;
    use broker_domain::storage::StoreError;
    use std::collections::HashMap;
    use test_support::LeakScanner;

    type Item = HashMap<String, AttributeValue>;

    async fn scan(h: &Envelope) -> Vec<Item> {
        h.dynamo
            .scan()
            .table_name(&h.table)
            .consistent_read(true)
            .send()
            .await
            .expect("scanning the installation table")
            .items
            .unwrap_or_default()
    }

    async fn raw_item(h: &Envelope, shop: &ShopRef) -> Option<Item> {
        h.dynamo
            .get_item()
            .table_name(&h.table)
            .key("pk", AttributeValue::S(shop.key()))
            .consistent_read(true)
            .send()
            .await
            .expect("reading the raw item")
            .item
    }

    async fn put_raw_item(h: &Envelope, item: Item) {
        h.dynamo
            .put_item()
            .table_name(&h.table)
            .set_item(Some(item))
            .send()
            .await
            .expect("writing a raw item");
    }

    /// Every attribute's value as text: strings and numbers as they are,
    /// binaries as their bytes read as UTF-8 (a plaintext secret stays
    /// readable), lists, maps and sets item by item.
    fn texts(value: &AttributeValue, out: &mut Vec<String>) {
        match value {
            AttributeValue::S(s) | AttributeValue::N(s) => out.push(s.clone()),
            AttributeValue::B(b) => out.push(String::from_utf8_lossy(b.as_ref()).into_owned()),
            AttributeValue::Ss(v) | AttributeValue::Ns(v) => out.extend(v.iter().cloned()),
            AttributeValue::Bs(v) => out.extend(
                v.iter()
                    .map(|b| String::from_utf8_lossy(b.as_ref()).into_owned()),
            ),
            AttributeValue::L(v) => v.iter().for_each(|value| texts(value, out)),
            AttributeValue::M(m) => m.values().for_each(|value| texts(value, out)),
            _ => {}
        }
    }

    fn number(item: &Item, name: &str) -> Option<i64> {
        item.get(name)?.as_n().ok()?.parse().ok()
    }

    fn unix_now() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("the clock is after 1970")
            .as_secs() as i64
    }

    #[tokio::test]
    async fn a_deployment_configured_for_dynamodb_opens_the_envelope_store() {
        use broker_aws::storage::{AwsStoreNames, InstallationBackend};
        let h = Envelope::new().await;
        let names = AwsStoreNames {
            installations: InstallationBackend::DynamoDb {
                table: h.table.clone(),
                key_id: h.key.as_str().to_owned(),
            },
            // Not touched: only the installation port is exercised here.
            token_table: "unused-token-table".into(),
            token_key_id: "unused-token-key".into(),
            registry_table: "unused-registry-table".into(),
        };
        let stores = names.open(&test_support::emulator_sdk_config().await);
        let record = shoptet_record(
            222651,
            "oauth-token-opened-by-the-stack",
            "2026-01-01T00:00:00Z",
        );

        let saved = stores
            .installations
            .save_shoptet_installation(&record)
            .await
            .unwrap();
        let loaded = h
            .installs()
            .load_shoptet_installation(record.installation.eshop_id)
            .await
            .unwrap();

        assert_eq!(saved, SaveOutcome::Created);
        assert_eq!(loaded, Some(record));
        assert_eq!(
            scan(&h).await.len(),
            1,
            "one item in the installation table"
        );
    }

    #[tokio::test]
    async fn no_attribute_of_the_table_holds_a_secret_in_plaintext() {
        let h = Envelope::new().await;
        let oauth_token = "oauth-token-3f9c2a7d1e6b4c8a";
        let client_secret = "client-secret-9d41b7e2a0c35f68";
        let record = shoptet_record(222651, oauth_token, "2026-01-01T00:00:00Z");
        let credentials = ShoprenterCredentials {
            client_id: "client-id-demo".into(),
            client_secret: ClientSecret::new(client_secret),
        };
        h.installs()
            .save_shoptet_installation(&record)
            .await
            .unwrap();
        h.installs()
            .save_shoprenter_credentials(&shoprenter_shop("demo-shop"), &credentials)
            .await
            .unwrap();
        // A scheduled deletion keeps the document: it must stay sealed too.
        h.installs()
            .schedule_deletion(
                &ShopRef::Shoprenter(shoprenter_shop("demo-shop")),
                RecoveryWindow::DEFAULT,
            )
            .await
            .unwrap();

        let items = scan(&h).await;
        assert_eq!(items.len(), 2, "one item per shop");
        // Not only the secrets: nothing of either document is readable
        // (the e-shop's URL and the owner's e-mail are sealed with them).
        let scanner = LeakScanner::new([
            oauth_token,
            client_secret,
            "https://222651.myshoptet.com/",
            "owner@example.com",
        ]);
        let mut checked = 0;
        for item in &items {
            for (name, value) in item {
                let mut rendered = Vec::new();
                texts(value, &mut rendered);
                for text in rendered {
                    scanner.assert_absent(&format!("attribute {name}"), &text);
                    checked += 1;
                }
            }
            assert!(
                matches!(item.get("sealed"), Some(AttributeValue::B(b)) if !b.as_ref().is_empty()),
                "every item holds its sealed document"
            );
            assert!(
                matches!(item.get("data_key"), Some(AttributeValue::B(b)) if !b.as_ref().is_empty()),
                "every item holds its encrypted data key"
            );
        }
        assert!(
            checked >= 2 * 6,
            "only {checked} attribute values were scanned"
        );
        // And the store still reads them back.
        assert_eq!(
            h.installs().load_shoptet_installation(eshop(222651)).await,
            Ok(Some(record))
        );
    }

    #[tokio::test]
    async fn an_item_copied_to_another_shops_key_does_not_decrypt() {
        let h = Envelope::new().await;
        let victim = shoptet_record(1, "oauth-token-of-shop-one-7c2e", "2026-01-01T00:00:00Z");
        let thief = ShopRef::Shoptet(eshop(2));
        h.installs()
            .save_shoptet_installation(&victim)
            .await
            .unwrap();

        let mut copied = raw_item(&h, &ShopRef::Shoptet(eshop(1)))
            .await
            .expect("shop 1 has an item");
        copied.insert("pk".into(), AttributeValue::S(thief.key()));
        put_raw_item(&h, copied).await;

        let loaded = h.installs().load_document(&thief).await;
        match &loaded {
            Err(StoreError::Corrupt(detail)) => {
                assert_eq!(detail, "the record of shoptet#2 does not decrypt");
            }
            other => panic!("shop 2 read shop 1's item: {other:?}"),
        }
        LeakScanner::new(["oauth-token-of-shop-one-7c2e"])
            .assert_absent("the load error", &format!("{loaded:?}"));
        // The original is untouched.
        assert_eq!(
            h.installs().load_shoptet_installation(eshop(1)).await,
            Ok(Some(victim))
        );
    }

    /// The second lock: even with the data key re-wrapped for the other
    /// shop (someone with kms:Decrypt and kms:Encrypt on the key), the
    /// document's AAD still names the first shop and GCM refuses it.
    #[tokio::test]
    async fn a_document_sealed_for_another_shop_fails_even_with_a_rewrapped_data_key() {
        let h = Envelope::new().await;
        let victim = shoptet_record(1, "oauth-token-of-shop-one-5b1d", "2026-01-01T00:00:00Z");
        let thief = ShopRef::Shoptet(eshop(2));
        h.installs()
            .save_shoptet_installation(&victim)
            .await
            .unwrap();
        let mut copied = raw_item(&h, &ShopRef::Shoptet(eshop(1)))
            .await
            .expect("shop 1 has an item");
        let data_key = h
            .kms
            .decrypt()
            .ciphertext_blob(copied["data_key"].as_b().unwrap().clone())
            .encryption_context("platform", "shoptet")
            .encryption_context("shop", "1")
            .send()
            .await
            .expect("the data key opens with shop 1's context")
            .plaintext
            .expect("a plaintext data key");
        let rewrapped = h
            .kms
            .encrypt()
            .key_id(h.key.as_str())
            .plaintext(data_key)
            .encryption_context("platform", "shoptet")
            .encryption_context("shop", "2")
            .send()
            .await
            .expect("re-wrapping the data key for shop 2")
            .ciphertext_blob
            .expect("a wrapped key");
        copied.insert("pk".into(), AttributeValue::S(thief.key()));
        copied.insert("data_key".into(), AttributeValue::B(rewrapped));
        put_raw_item(&h, copied).await;

        assert_eq!(
            h.installs().load_document(&thief).await,
            Err(StoreError::Corrupt(
                "the record of shoptet#2 does not decrypt".into()
            ))
        );
    }

    #[tokio::test]
    async fn a_scheduled_deletion_keeps_the_item_with_a_ttl_until_a_reinstall() {
        let h = Envelope::new().await;
        let first = shoptet_record(222651, "oauth-before-uninstall", "2026-01-01T00:00:00Z");
        let again = shoptet_record(222651, "oauth-after-reinstall", "2026-02-01T00:00:00Z");
        h.installs()
            .save_shoptet_installation(&first)
            .await
            .unwrap();
        assert_eq!(
            number(&raw_item(&h, &shop()).await.unwrap(), TTL_ATTRIBUTE),
            None,
            "a live installation never expires"
        );

        let before = unix_now();
        h.installs()
            .schedule_deletion(&shop(), RecoveryWindow::days(30).unwrap())
            .await
            .unwrap();
        let scheduled = raw_item(&h, &shop()).await.expect("the item is kept");
        let ttl = number(&scheduled, TTL_ATTRIBUTE).expect("a TTL on the scheduled item");
        let in_days = (ttl - before) as f64 / 86_400.0;
        assert!(
            (29.9..=30.1).contains(&in_days),
            "expires in {in_days} days"
        );
        assert!(scheduled.contains_key("sealed"), "the document is kept");

        // Scheduling again keeps the first schedule.
        h.installs()
            .schedule_deletion(&shop(), RecoveryWindow::DEFAULT)
            .await
            .unwrap();
        assert_eq!(
            number(&raw_item(&h, &shop()).await.unwrap(), TTL_ATTRIBUTE),
            Some(ttl)
        );

        assert_eq!(
            h.installs().save_shoptet_installation(&again).await,
            Ok(SaveOutcome::Replaced)
        );
        let restored = raw_item(&h, &shop()).await.unwrap();
        assert_eq!(
            number(&restored, TTL_ATTRIBUTE),
            None,
            "the reinstall left the item expiring"
        );
        assert_eq!(
            h.installs().load_shoptet_installation(eshop(222651)).await,
            Ok(Some(again))
        );
    }

    /// DynamoDB deletes expired items late: an item past its window is gone
    /// for the store even while it is still in the table, and saving the
    /// shop again is a new install, as after Secrets Manager's deletion.
    #[tokio::test]
    async fn an_item_past_its_recovery_window_is_gone_before_dynamodb_removes_it() {
        let h = Envelope::new().await;
        h.installs()
            .save_shoptet_installation(&shoptet_record(
                222651,
                "oauth-long-gone",
                "2026-01-01T00:00:00Z",
            ))
            .await
            .unwrap();
        h.installs()
            .schedule_deletion(&shop(), RecoveryWindow::DEFAULT)
            .await
            .unwrap();
        // Move the deletion into the past, as if the window had passed.
        let mut expired = raw_item(&h, &shop()).await.unwrap();
        let past_ms = (unix_now() - 60) * 1000;
        expired.insert("delete_at".into(), AttributeValue::N(past_ms.to_string()));
        expired.insert(
            TTL_ATTRIBUTE.into(),
            AttributeValue::N((past_ms / 1000).to_string()),
        );
        put_raw_item(&h, expired).await;

        assert_eq!(h.installs().load_document(&shop()).await, Ok(None));
        let fresh = shoptet_record(222651, "oauth-fresh-install", "2026-03-01T00:00:00Z");
        assert_eq!(
            h.installs().save_shoptet_installation(&fresh).await,
            Ok(SaveOutcome::Created)
        );
        assert_eq!(
            h.installs().load_shoptet_installation(eshop(222651)).await,
            Ok(Some(fresh))
        );
    }
    /// The key is an item of its own beside the document's, sealed like it
    /// (nothing of the key readable in the table), and uninstalling marks
    /// both for deletion.
    #[tokio::test]
    async fn the_signature_key_is_a_sealed_item_beside_the_document() {
        let h = Envelope::new().await;
        let key = "Zq7vK2pX9mW4rT8nB3yH6cJ1";
        h.installs()
            .save_shoptet_installation(&shoptet_record(222651, "oauth", "2026-01-01T00:00:00Z"))
            .await
            .unwrap();
        h.installs()
            .save_signature_key(eshop(222651), &signature_key(key))
            .await
            .unwrap();

        let mut keys: Vec<String> = scan(&h)
            .await
            .iter()
            .map(|item| item["pk"].as_s().unwrap().clone())
            .collect();
        keys.sort();
        assert_eq!(
            keys,
            ["shoptet#222651", "shoptet#222651#webhook-signature-key"]
        );
        let scanner = LeakScanner::new([key]);
        for item in scan(&h).await {
            for (name, value) in &item {
                let mut rendered = Vec::new();
                texts(value, &mut rendered);
                for text in rendered {
                    scanner.assert_absent(&format!("attribute {name}"), &text);
                }
            }
        }

        h.installs()
            .schedule_deletion(&shop(), RecoveryWindow::DEFAULT)
            .await
            .unwrap();
        for item in scan(&h).await {
            assert!(
                number(&item, "delete_at").is_some() && number(&item, TTL_ATTRIBUTE).is_some(),
                "{:?} is not marked for deletion",
                item["pk"]
            );
        }
    }

    /// The key's item and the document's share the KMS context (the shop)
    /// but not the AAD (the item's key): neither opens in the other's place.
    #[tokio::test]
    async fn a_signature_key_item_copied_over_the_document_does_not_decrypt() {
        let h = Envelope::new().await;
        h.installs()
            .save_shoptet_installation(&shoptet_record(222651, "oauth", "2026-01-01T00:00:00Z"))
            .await
            .unwrap();
        h.installs()
            .save_signature_key(eshop(222651), &signature_key("signature-key-3c8d"))
            .await
            .unwrap();
        let key_item = h
            .dynamo
            .get_item()
            .table_name(&h.table)
            .key(
                "pk",
                AttributeValue::S("shoptet#222651#webhook-signature-key".into()),
            )
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .expect("the key's item");
        let mut copied = key_item.clone();
        copied.insert("pk".into(), AttributeValue::S(shop().key()));
        put_raw_item(&h, copied).await;

        let loaded = h.installs().load_document(&shop()).await;
        assert_eq!(
            loaded,
            Err(StoreError::Corrupt(
                "the record of shoptet#222651 does not decrypt".into()
            ))
        );
        // The key itself still opens where it belongs.
        assert_eq!(
            key_text(
                h.installs()
                    .load_signature_key(eshop(222651))
                    .await
                    .unwrap()
            )
            .as_deref(),
            Some("signature-key-3c8d")
        );
    }
}

// ---------------------------------------------------------------------------
// What only the SQLite adapter promises: the file

mod sqlite_file {
    use super::sqlite_harness::{Sqlite, TempDir};
    use super::*;
    use broker_sqlite::SqliteStore;

    #[tokio::test]
    async fn everything_survives_a_restart() {
        let dir = TempDir::new();
        let now = now();
        let record = shoptet_record(222651, "oauth-1", "2026-01-01T00:00:00Z");
        let shop_name = shoprenter_shop("demo");
        let credentials = ShoprenterCredentials {
            client_id: "id".into(),
            client_secret: ClientSecret::new("secret"),
        };
        let minted = token("tok-1", now + Duration::from_secs(1800), &["read"]);
        let other = ShopRef::Shoprenter(shop_name.clone());
        let lease_until = now + Duration::from_secs(30);
        {
            let store = SqliteStore::open(dir.db()).unwrap();
            assert_eq!(
                store.save_shoptet_installation(&record).await,
                Ok(SaveOutcome::Created)
            );
            store
                .save_shoprenter_credentials(&shop_name, &credentials)
                .await
                .unwrap();
            acquire(&store, &shop(), "a", now, lease_until).await;
            assert!(
                store
                    .store_and_release(&shop(), "a", &minted, &[minted.expires_at])
                    .await
                    .unwrap()
            );
            acquire(&store, &other, "b", now, lease_until).await;
        }
        // Every connection is closed: the process is gone.

        let reopened = SqliteStore::open(dir.db()).unwrap();
        assert_eq!(
            reopened.load_shoptet_installation(eshop(222651)).await,
            Ok(Some(record.clone()))
        );
        assert_eq!(
            reopened.load_shoprenter_credentials(&shop_name).await,
            Ok(Some(credentials))
        );
        assert_eq!(
            TokenCache::load(&reopened, &shop()).await,
            Ok(Some(CacheEntry {
                token: Some(minted.clone()),
                lease: None,
                ledger: vec![minted.expires_at],
            }))
        );
        assert_eq!(
            TokenCache::load(&reopened, &other)
                .await
                .unwrap()
                .unwrap()
                .lease,
            lease("b", lease_until)
        );
        // A reinstall after the restart is a replacement.
        assert_eq!(
            reopened.save_shoptet_installation(&record).await,
            Ok(SaveOutcome::Replaced)
        );
    }

    #[tokio::test]
    async fn entries_past_their_time_to_live_are_swept_on_open() {
        let h = Sqlite::new().await;
        let now = now();
        // Minted long ago: the entry's time to live (newest expiry + grace) passed.
        let old = token("tok-old", now - Duration::from_secs(2 * 3600), &[]);
        let live = token("tok-live", now + Duration::from_secs(1800), &[]);
        let old_shop = ShopRef::Shoptet(eshop(1));
        for (shop, token) in [(&old_shop, &old), (&shop(), &live)] {
            acquire(&**h.cache(), shop, "a", now, now + Duration::from_secs(30)).await;
            assert!(
                h.cache()
                    .store_and_release(shop, "a", token, &[token.expires_at])
                    .await
                    .unwrap()
            );
        }
        // Readers check expiry themselves: the stale entry is still readable.
        assert!(
            TokenCache::load(&**h.cache(), &old_shop)
                .await
                .unwrap()
                .is_some()
        );

        let reopened = SqliteStore::open(h.path()).unwrap();
        assert_eq!(TokenCache::load(&reopened, &old_shop).await, Ok(None));
        assert_eq!(
            TokenCache::load(&reopened, &shop())
                .await
                .unwrap()
                .unwrap()
                .token,
            Some(live)
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn the_files_are_readable_by_their_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let h = Sqlite::new().await;
        h.installs()
            .save_shoptet_installation(&shoptet_record(1, "oauth", "2026-01-01T00:00:00Z"))
            .await
            .unwrap();
        let mut checked = 0;
        for suffix in ["", "-wal", "-shm"] {
            let mut name = h.path().into_os_string();
            name.push(suffix);
            if let Ok(meta) = std::fs::metadata(&name) {
                assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name:?}");
                checked += 1;
            }
        }
        assert_eq!(checked, 3, "the database runs in WAL mode");
        let dir = h.path().parent().unwrap().to_owned();
        assert_eq!(
            std::fs::metadata(dir).unwrap().permissions().mode() & 0o777,
            0o700
        );

        // An existing file that is too open is tightened on open.
        std::fs::set_permissions(h.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        SqliteStore::open(h.path()).unwrap();
        assert_eq!(
            std::fs::metadata(h.path()).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn many_stores_open_one_new_file_at_once() {
        let h = Sqlite::new().await;
        let path = h.path().with_file_name("fresh.sqlite3");
        let opens: Vec<_> = (0..8)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || SqliteStore::open(path))
            })
            .collect();
        let stores: Vec<SqliteStore> = opens
            .into_iter()
            .map(|t| t.join().unwrap().expect("open"))
            .collect();
        let now = now();
        let mut acquired = 0;
        for (n, store) in stores.iter().enumerate() {
            if let LeaseAttempt::Acquired(_) = store
                .try_lease(
                    &shop(),
                    &format!("s{n}"),
                    now,
                    now + Duration::from_secs(30),
                )
                .await
                .unwrap()
            {
                acquired += 1;
            }
        }
        assert_eq!(acquired, 1);
    }
}

// ---------------------------------------------------------------------------
// What makes `instances_share_one_cache` meaningful for the memory adapter

#[tokio::test]
async fn memory_caches_created_apart_share_nothing() {
    use broker_domain::storage::memory::MemoryTokenCache;
    let (one, other) = (MemoryTokenCache::default(), MemoryTokenCache::default());
    let now = now();
    acquire(&one, &shop(), "a", now, now + Duration::from_secs(30)).await;
    assert_eq!(other.load(&shop()).await, Ok(None));
    assert_eq!(
        other
            .try_lease(&shop(), "b", now, now + Duration::from_secs(30))
            .await
            .map(|attempt| matches!(attempt, LeaseAttempt::Acquired(_))),
        Ok(true)
    );
}

// ---------------------------------------------------------------------------
// The outbox of the registries without a stream (memory, SQLite): every
// event committed, in order, until delivered. (The DynamoDB registry's
// outbox is its table's stream: functions/install-callback/tests/events.rs.)

async fn the_outbox_holds_each_event_in_order_until_delivered<R>(registry: R)
where
    R: InstallationRegistry + broker_domain::storage::EventOutbox,
{
    use broker_domain::events::EventKind;
    let at = at_ms(1_800_000_000_000);
    registry
        .record(&shop(), &StatusChange::installed(at, Origin::Import))
        .await
        .unwrap();
    registry
        .record(&shop(), &suspended(at, None))
        .await
        .unwrap();
    registry
        .record(&shop(), &suspended(at, None))
        .await
        .unwrap();
    let pending = registry.pending(10).await.unwrap();
    assert_eq!(
        pending
            .iter()
            .map(|e| (e.kind, e.sequence))
            .collect::<Vec<_>>(),
        [(EventKind::Imported, 1), (EventKind::Suspended, 2)]
    );
    registry.delivered(&pending[0].id).await.unwrap();
    registry.delivered(&pending[0].id).await.unwrap();
    let left = registry.pending(10).await.unwrap();
    assert_eq!(left, pending[1..]);
    registry.delivered(&left[0].id).await.unwrap();
    assert_eq!(registry.pending(10).await, Ok(Vec::new()));
}

#[tokio::test]
async fn memory_outbox_holds_each_event_in_order_until_delivered() {
    the_outbox_holds_each_event_in_order_until_delivered(
        broker_domain::storage::memory::MemoryRegistry::default(),
    )
    .await;
}

#[tokio::test]
async fn sqlite_outbox_holds_each_event_in_order_until_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let store = broker_sqlite::SqliteStore::open(dir.path().join("outbox.db")).unwrap();
    the_outbox_holds_each_event_in_order_until_delivered(store).await;
}
