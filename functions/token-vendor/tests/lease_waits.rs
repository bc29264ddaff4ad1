//! A request that finds another instance refreshing reads the shared cache
//! a bounded number of times, and fewer once its instance has seen how long
//! a refresh takes. The other instance is played by hand on the same
//! SQLite file: it takes the lease, and stores a token 200 ms later.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use broker_domain::ids::ShopRef;
use broker_domain::model::CachedToken;
use broker_domain::secret::ApiAccessToken;
use broker_domain::storage::{LeaseAttempt, Stores, TokenCache};
use broker_sqlite::SqliteStore;
use platform_double::{Endpoint, PlatformDouble};
use token_vendor::{Source, VendHandler, VendRequest, VendorConfig};

const REFRESH: Duration = Duration::from_millis(200);

#[tokio::test]
async fn a_waiter_reads_about_once_per_growing_pause_and_a_handful_of_times_once_it_knows_how_long_a_refresh_takes()
 {
    let double = PlatformDouble::start().await;
    let dir = std::env::temp_dir().join(format!("vendor-lease-waits-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = dir.join("broker.db");
    let holder = SqliteStore::open(&db).unwrap();
    let env = HashMap::from([
        ("SHOPTET_OAUTH_URL", double.shoptet_oauth_url()),
        ("SHOPTET_API_URL", double.shoptet_api_url()),
    ]);
    let config = VendorConfig::from_env(&|name: &str| env.get(name).cloned()).unwrap();
    let waiter = Arc::new(VendHandler::new(
        config,
        None,
        Stores::all(SqliteStore::open(&db).unwrap()),
    ));

    let mut reads = Vec::new();
    for eshop_id in ["7001", "7002"] {
        let shop = ShopRef::parse("shoptet", eshop_id).unwrap();
        let now = SystemTime::now();
        let taken = holder
            .try_lease(&shop, "other-instance", now, now + Duration::from_secs(5))
            .await
            .unwrap();
        assert!(matches!(taken, LeaseAttempt::Acquired(_)));
        let before = waiter.vendor().wait_counts();
        let vend = tokio::spawn({
            let waiter = Arc::clone(&waiter);
            let request = VendRequest {
                shop: shop.clone(),
                min_ttl: None,
                stale_token: None,
            };
            async move { waiter.vendor().vend(&request).await }
        });
        tokio::time::sleep(REFRESH).await;
        let token = CachedToken {
            access_token: ApiAccessToken::new(format!("token-of-{eshop_id}")),
            expires_at: SystemTime::now() + Duration::from_secs(1800),
            scopes: Vec::new(),
        };
        let stored = holder
            .store_and_release(&shop, "other-instance", &token, &[token.expires_at])
            .await
            .unwrap();
        assert!(stored);

        let vended = vend.await.unwrap().unwrap();
        assert_eq!(vended.source, Source::L2);
        assert_eq!(vended.token.access_token, token.access_token);
        let after = waiter.vendor().wait_counts();
        assert_eq!(after.waits - before.waits, 1);
        reads.push(after.reads - before.reads);
        assert_eq!(double.calls(Endpoint::ShoptetGetAccessToken, eshop_id), 0);
    }

    // A new instance polls from 2 ms on, backing off: about 15 reads in
    // 200 ms, never more than the schedule's bound for half a second.
    assert!((8..=23).contains(&reads[0]), "first wait: {reads:?}");
    // Having seen a 200 ms refresh, it sleeps through 180 ms of the next.
    assert!(reads[1] <= 7, "second wait: {reads:?}");
    assert!(reads[1] < reads[0], "{reads:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
