//! The operator's re-registration over 1 000 installations, in this
//! process over an embedded store, against the platform double: a run
//! stopped part-way resumes from its state file, every installation ends
//! with exactly the configured webhooks (the double counts one
//! registration call and one key per installation: no duplicates), a
//! second run and a dry run change nothing. Prints its wall time.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use broker_domain::bus::MemoryBus;
use broker_domain::ids::ShopRef;
use broker_domain::model::{Origin, ShoptetInstallationRecord, StatusChange};
use broker_domain::secret::{ClientSecret, InstallCode};
use broker_domain::storage::{InstallationRegistry, InstallationStore, Stores};
use broker_local::eshop_webhooks::LocalWebhooks;
use broker_local::reregister::{LocalPages, Run, run};
use broker_platforms::shoptet::{AddonCredentials, ShoptetClient, ShoptetConfig};
use broker_platforms::upstream::{HttpSettings, UpstreamUrl};
use broker_sqlite::SqliteStore;
use platform_double::{Endpoint, PlatformDouble};
use token_vendor::{VendHandler, VendorConfig};

const INSTALLATIONS: u64 = 1000;
const FIRST: u64 = 700_001;
const EVENTS: &str = "order:create,order:paid,job:finished";

async fn seed(double: &PlatformDouble, store: &SqliteStore) {
    let client = ShoptetClient::new(
        HttpSettings::default().build_client(),
        ShoptetConfig {
            oauth_url: UpstreamUrl::parse(&double.shoptet_oauth_url()).unwrap(),
            api_url: UpstreamUrl::parse(&double.shoptet_api_url()).unwrap(),
        },
    );
    let addon = AddonCredentials {
        client_id: double.config().shoptet_client_id.clone(),
        client_secret: double
            .config()
            .shoptet_client_secret
            .clone()
            .map(ClientSecret::new),
    };
    let ids: Vec<u64> = (FIRST..FIRST + INSTALLATIONS).collect();
    for chunk in ids.chunks(25) {
        futures_util::future::join_all(chunk.iter().map(|id| {
            let (client, addon) = (&client, &addon);
            async move {
                let code = InstallCode::new(double.issue_install_code(*id));
                let installation = client
                    .exchange_code(&code, addon, "https://broker.example/shoptet/install")
                    .await
                    .unwrap();
                let shop = ShopRef::Shoptet(installation.eshop_id);
                store
                    .save_shoptet_installation(&ShoptetInstallationRecord {
                        installation,
                        installed_at: "2026-12-06T10:00:00Z".into(),
                    })
                    .await
                    .unwrap();
                store
                    .record(
                        &shop,
                        &StatusChange::installed(SystemTime::now(), Origin::Operator),
                    )
                    .await
                    .unwrap();
            }
        }))
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumable_re_registration_of_1000_installations_registers_each_once() {
    let double = PlatformDouble::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("broker.db")).unwrap();
    seed(&double, &store).await;
    let env = std::collections::HashMap::from([
        ("SHOPTET_OAUTH_URL", double.shoptet_oauth_url()),
        ("SHOPTET_API_URL", double.shoptet_api_url()),
        ("SHOPTET_WEBHOOK_EVENTS", EVENTS.to_owned()),
        (
            "SHOPTET_WEBHOOK_URL",
            "http://127.0.0.1:9/shoptet/eshop-webhook".to_owned(),
        ),
    ]);
    let env = move |name: &str| env.get(name).cloned();
    let config = VendorConfig::from_env(&env).unwrap();
    let vendor = VendHandler::new(config.clone(), None, Stores::all(store.clone()));
    let webhooks = LocalWebhooks::from_env(&env, &config, vendor, Arc::new(MemoryBus::default()))
        .unwrap()
        .unwrap();
    let pages = LocalPages { webhooks };
    let state = dir.path().join("reregister.state");
    let mut first = Run {
        page_size: 100.try_into().unwrap(),
        max_pages: Some(4.try_into().unwrap()),
        state: Some(state.clone()),
        ..Run::default()
    };
    let started = Instant::now();

    let mut out = Vec::new();
    let stopped = run(&pages, &first, &mut out).await.unwrap();
    first.max_pages = None;
    let finished = run(&pages, &first, &mut out).await.unwrap();
    let wall = started.elapsed();

    let printed = String::from_utf8(out).unwrap();
    eprintln!("{printed}");
    eprintln!(
        "re-registration of {INSTALLATIONS} installations: {:.2} s",
        wall.as_secs_f64()
    );
    assert_eq!((stopped.installations, stopped.pages), (400, 4));
    assert!(stopped.next.is_some());
    assert!(printed.contains("resuming after installation"), "{printed}");
    assert_eq!(
        (finished.installations, finished.failed, finished.next),
        (600, 0, None)
    );
    assert_eq!(
        stopped.events_added + finished.events_added,
        3 * INSTALLATIONS as usize
    );
    assert_eq!(
        stopped.keys_renewed + finished.keys_renewed,
        INSTALLATIONS as usize
    );
    assert_eq!(std::fs::read_to_string(&state).unwrap(), "done");
    for id in FIRST..FIRST + INSTALLATIONS {
        let shop = id.to_string();
        assert_eq!(double.webhooks(id).len(), 3, "{shop}");
        assert_eq!(
            double.calls(Endpoint::ShoptetWebhookRegister, &shop),
            1,
            "{shop}"
        );
        assert_eq!(
            double.calls(Endpoint::ShoptetWebhookRenewKey, &shop),
            1,
            "{shop}"
        );
    }

    // Again, from the start: nothing to do; and a dry run says so too.
    let again = Run {
        page_size: 100.try_into().unwrap(),
        ..Run::default()
    };
    let second = run(&pages, &again, &mut Vec::new()).await.unwrap();
    let dry = run(
        &pages,
        &Run {
            dry_run: true,
            ..again
        },
        &mut Vec::new(),
    )
    .await
    .unwrap();
    assert_eq!(
        (
            second.installations,
            second.events_added,
            second.keys_renewed
        ),
        (1000, 0, 0)
    );
    assert_eq!(
        (dry.installations, dry.events_added, dry.keys_renewed),
        (1000, 0, 0)
    );
    assert_eq!(
        double.calls_to(Endpoint::ShoptetWebhookRegister),
        INSTALLATIONS
    );
}
