//! The storm on the embedded store: several handler states over one SQLite
//! file (as the local server or several local processes would have) still
//! mint exactly once.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use broker_domain::ids::ShopRef;
use broker_domain::storage::Stores;
use broker_sqlite::SqliteStore;
use platform_double::{Endpoint, PlatformDouble};
use token_vendor::{VendHandler, VendRequest, VendorConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_storm_over_8_handler_states_on_one_sqlite_file_mints_exactly_once() {
    let double = PlatformDouble::start().await;
    let dir = std::env::temp_dir().join(format!("vendor-storm-{}", std::process::id()));
    let db = dir.join("broker.db");
    let _ = std::fs::remove_dir_all(&dir);
    let store = SqliteStore::open(&db).unwrap();
    common::install_via_double(&double, &store, 424242).await;
    let env = HashMap::from([
        ("SHOPTET_OAUTH_URL", double.shoptet_oauth_url()),
        ("SHOPTET_API_URL", double.shoptet_api_url()),
    ]);
    let mut instances = Vec::new();
    for _ in 0..8 {
        let config = VendorConfig::from_env(&|name: &str| env.get(name).cloned()).unwrap();
        // Each instance opens its own connection, as a separate process would.
        let store = SqliteStore::open(&db).unwrap();
        instances.push(Arc::new(VendHandler::new(config, None, Stores::all(store))));
    }
    let shop = ShopRef::parse("shoptet", "424242").unwrap();

    let request = VendRequest {
        shop,
        min_ttl: None,
        stale_token: None,
    };
    let tokens = common::vend_concurrently(&instances, &request, 256).await;

    assert_eq!(double.calls(Endpoint::ShoptetGetAccessToken, "424242"), 1);
    assert!(tokens.iter().all(|token| *token == tokens[0]));
    let _ = std::fs::remove_dir_all(&dir);
}
