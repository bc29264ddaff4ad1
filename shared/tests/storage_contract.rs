//! The storage contract: one set of cases, run against every adapter of the
//! storage ports (in memory, DynamoDB + Secrets Manager on the moto emulator,
//! SQLite in a temporary file). An adapter passes when it behaves exactly
//! like the others.
//!
//! The SQLite cases need `--features broker-shared/sqlite` (`make test` passes
//! it); without the feature a failing test says so instead of skipping them.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use broker_shared::ids::{ShopRef, ShoprenterShopName, ShoptetEshopId};
use broker_shared::model::{
    CacheEntry, CachedToken, Lease, ShoprenterCredentials, ShoptetInstallation,
    ShoptetInstallationRecord,
};
use broker_shared::secret::{ApiAccessToken, ClientSecret, OAuthAccessToken};
use broker_shared::storage::{InstallationStore, LeaseAttempt, SaveOutcome, TokenCache};
use tokio::sync::Barrier;

/// A fresh, isolated store of one adapter.
trait Harness: Sized + Send + Sync + 'static {
    type Installs: InstallationStore + 'static;
    type Cache: TokenCache + 'static;

    fn new() -> impl Future<Output = Self> + Send;
    fn installs(&self) -> &Self::Installs;
    fn cache(&self) -> &Arc<Self::Cache>;
    /// Another handle on the same cache, as another instance of the broker
    /// would open it.
    fn another_cache(&self) -> impl Future<Output = Arc<Self::Cache>> + Send;
}

mod memory_harness {
    use super::*;
    use broker_shared::storage::memory::{MemoryInstallationStore, MemoryTokenCache};

    pub struct Memory {
        installs: MemoryInstallationStore,
        cache: Arc<MemoryTokenCache>,
    }

    impl Harness for Memory {
        type Installs = MemoryInstallationStore;
        type Cache = MemoryTokenCache;

        async fn new() -> Self {
            Self {
                installs: MemoryInstallationStore::default(),
                cache: Arc::default(),
            }
        }

        fn installs(&self) -> &Self::Installs {
            &self.installs
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
    use broker_shared::storage::SecretNames;
    use broker_shared::storage::dynamodb::DynamoTokenCache;
    use broker_shared::storage::secrets_manager::SecretsManagerStore;
    use test_support::{create_token_table, emulator_sdk_config, unique_name};

    pub struct Dynamo {
        dynamo: aws_sdk_dynamodb::Client,
        table: String,
        installs: SecretsManagerStore,
        cache: Arc<DynamoTokenCache>,
    }

    impl Harness for Dynamo {
        type Installs = SecretsManagerStore;
        type Cache = DynamoTokenCache;

        async fn new() -> Self {
            let config = emulator_sdk_config().await;
            let table = unique_name("contract");
            create_token_table(&config, &table).await;
            let names = SecretNames::new(&format!("{}/", unique_name("contract")))
                .expect("unique names are valid secret prefixes");
            let installs =
                SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(&config), names);
            let dynamo = aws_sdk_dynamodb::Client::new(&config);
            let cache = Arc::new(DynamoTokenCache::new(dynamo.clone(), &table));
            Self {
                dynamo,
                table,
                installs,
                cache,
            }
        }

        fn installs(&self) -> &Self::Installs {
            &self.installs
        }

        fn cache(&self) -> &Arc<Self::Cache> {
            &self.cache
        }

        async fn another_cache(&self) -> Arc<Self::Cache> {
            // A client of its own, as another instance would build.
            let client = aws_sdk_dynamodb::Client::from_conf(self.dynamo.config().clone());
            Arc::new(DynamoTokenCache::new(client, &self.table))
        }
    }
}

#[cfg(feature = "sqlite")]
mod sqlite_harness {
    use super::*;
    use broker_shared::storage::sqlite::SqliteStore;
    use std::path::PathBuf;

    /// A directory of its own, removed on drop.
    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new() -> Self {
            // `SqliteStore::open` creates it.
            Self(std::env::temp_dir().join(test_support::unique_name("storage-contract")))
        }

        pub fn db(&self) -> PathBuf {
            self.0.join("broker.sqlite3")
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A store in a file of its own.
    pub struct Sqlite {
        store: SqliteStore,
        cache: Arc<SqliteStore>,
        dir: TempDir,
    }

    impl Sqlite {
        pub fn path(&self) -> PathBuf {
            self.dir.db()
        }
    }

    impl Harness for Sqlite {
        type Installs = SqliteStore;
        type Cache = SqliteStore;

        async fn new() -> Self {
            let dir = TempDir::new();
            let store = SqliteStore::open(dir.db()).expect("opening the store");
            Self {
                cache: Arc::new(store.clone()),
                store,
                dir,
            }
        }

        fn installs(&self) -> &Self::Installs {
            &self.store
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

async fn create_then_replace_shoptet_installation<H: Harness>() {
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

async fn installations_of_different_shops_are_separate<H: Harness>() {
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

async fn loading_a_missing_installation_gives_none<H: Harness>() {
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

async fn shoprenter_credentials_round_trip<H: Harness>() {
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
// Every case against every adapter

macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod memory {
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
                async fn $case() {
                    super::$case::<super::dynamodb_harness::Dynamo>().await;
                }
            )*
        }

        #[cfg(feature = "sqlite")]
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$case::<super::sqlite_harness::Sqlite>().await;
                }
            )*
        }
    };
}

contract![
    create_then_replace_shoptet_installation,
    installations_of_different_shops_are_separate,
    loading_a_missing_installation_gives_none,
    shoprenter_credentials_round_trip,
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
];

#[cfg(not(feature = "sqlite"))]
#[test]
fn sqlite_adapter_is_compiled_in() {
    panic!(
        "the SQLite contract cases are left out: run with --features broker-shared/sqlite \
         (make test does)"
    );
}

// ---------------------------------------------------------------------------
// What only the SQLite adapter promises: the file

#[cfg(feature = "sqlite")]
mod sqlite_file {
    use super::sqlite_harness::{Sqlite, TempDir};
    use super::*;
    use broker_shared::storage::sqlite::SqliteStore;

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
    use broker_shared::storage::memory::MemoryTokenCache;
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
