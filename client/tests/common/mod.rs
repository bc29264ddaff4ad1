//! The real broker for the client's tests: both handlers behind
//! broker-local's server, on the embedded SQLite store, against the
//! platform double, all over real HTTP on loopback ports. No AWS needed.

// Each test file uses its own part of the fixture.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use broker_domain::secret::ClientSecret;
use broker_domain::storage::Stores;
use broker_local::server::Broker;
use broker_sqlite::SqliteStore;
use install_callback::{InstallCallback, InstallConfig, InstallSecrets};
use platform_double::{DoubleConfig, Endpoint, PlatformDouble};
use shop_token_client::{ClientError, HttpTransport, SecretString, Shop, Transport, VendAnswer};
use token_vendor::{VendHandler, VendorConfig};
use tokio::net::TcpListener;

pub const ESHOP: u64 = 222651;
pub const BEARER: &str = "a-bearer-token-of-at-least-32-characters";

/// The broker, the double it mints from, and where its store lives.
pub struct LocalBroker {
    pub url: String,
    pub double: PlatformDouble,
    db_dir: PathBuf,
    server: tokio::task::JoinHandle<()>,
    /// The broker's store and vendor configuration, for another vendor
    /// instance sharing them (as Lambda instances share DynamoDB).
    pub store: SqliteStore,
    pub vendor_config: VendorConfig,
}

pub struct Setup {
    /// Lifetime of the double's Shoptet API tokens.
    pub token_lifetime: Duration,
    /// The broker's `REFRESH_MARGIN_SECONDS`.
    pub broker_margin_seconds: u64,
    pub bearer_token: Option<&'static str>,
    /// The double's other settings (its rate limits).
    pub double: DoubleConfig,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            token_lifetime: Duration::from_secs(1800),
            broker_margin_seconds: 300,
            bearer_token: None,
            double: DoubleConfig::default(),
        }
    }
}

impl LocalBroker {
    pub async fn start(setup: Setup) -> Self {
        let double = PlatformDouble::start_with(DoubleConfig {
            api_token_lifetime: setup.token_lifetime,
            ..setup.double
        })
        .await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let config = double.config().clone();
        let env: HashMap<&str, String> = HashMap::from([
            ("SHOPTET_OAUTH_URL", double.shoptet_oauth_url()),
            ("SHOPTET_API_URL", double.shoptet_api_url()),
            ("SHOPTET_CLIENT_ID", config.shoptet_client_id.clone()),
            ("SHOPTET_REDIRECT_URI", format!("{url}/shoptet/install")),
            ("SHOPRENTER_OAUTH_URL", double.shoprenter_oauth_url()),
            (
                "SHOPRENTER_API_URL",
                format!("{}/shoprenter-api/{{shop}}/api", double.base_url()),
            ),
            (
                "REFRESH_MARGIN_SECONDS",
                setup.broker_margin_seconds.to_string(),
            ),
        ]);
        let env = |name: &str| env.get(name).cloned();
        let mut install_config = InstallConfig::from_env(&env).unwrap();
        let mut vendor_config = VendorConfig::from_env(&env).unwrap();
        // As broker-local runs them: every vend reads the shared store.
        install_config.timing.l1_trust = Duration::ZERO;
        vendor_config.timing.l1_trust = Duration::ZERO;

        let db_dir = std::env::temp_dir().join(format!(
            "shop-token-client-test-{}-{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::Relaxed)
        ));
        let store = SqliteStore::open(db_dir.join("broker.db")).unwrap();
        let secrets = InstallSecrets {
            shoptet_client_secret: config.shoptet_client_secret.map(ClientSecret::new).into(),
            ..InstallSecrets::default()
        };
        let broker = Broker {
            install: InstallCallback::new(install_config, secrets, Stores::all(store.clone())),
            vendor: VendHandler::new(vendor_config.clone(), None, Stores::all(store.clone())),
            bearer_token: setup.bearer_token.map(str::to_owned),
        };
        let server = tokio::spawn(async move {
            broker.without_metrics().serve(listener).await.unwrap();
        });
        Self {
            url,
            double,
            db_dir,
            server,
            store,
            vendor_config,
        }
    }

    /// Installs the add-on in the e-shop as Shoptet does (a single-use code
    /// sent to the install URL), then zeroes the double's counters.
    pub async fn install(&self, eshop: u64) {
        let code = self.double.issue_install_code(eshop);
        let response = reqwest::get(format!("{}/shoptet/install?code={code}", self.url))
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        self.double.reset_counters();
    }

    /// Gives the Shoprenter shop its own API client at the double and
    /// hands its credentials to the broker (the operator route), then
    /// zeroes the double's counters.
    pub async fn install_shoprenter(&self, shop: &str) {
        let (client_id, client_secret) =
            (format!("client-of-{shop}"), "a-shoprenter-client-secret");
        self.double
            .register_shoprenter_client(shop, &client_id, client_secret, &["product:read"]);
        let response = reqwest::Client::new()
            .put(format!("{}/shoprenter/{shop}/credentials", self.url))
            .json(&serde_json::json!({"client_id": client_id, "client_secret": client_secret}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        self.double.reset_counters();
    }

    /// Stops the broker: its port refuses connections from now on.
    pub async fn stop(&mut self) {
        self.server.abort();
        let _ = (&mut self.server).await;
    }

    pub fn transport(&self) -> Arc<Counting<HttpTransport>> {
        Counting::new(HttpTransport::new(&self.url).unwrap())
    }

    /// `getAccessToken` calls that reached the double for the e-shop.
    pub fn mints(&self, eshop: u64) -> u64 {
        self.double
            .calls(Endpoint::ShoptetGetAccessToken, &eshop.to_string())
    }
}

impl Drop for LocalBroker {
    fn drop(&mut self) {
        self.server.abort();
        self.double.shutdown();
        let _ = std::fs::remove_dir_all(&self.db_dir);
    }
}

static NEXT_DB: AtomicU64 = AtomicU64::new(0);

/// Counts the vends that go through it.
#[derive(Debug)]
pub struct Counting<T> {
    inner: T,
    vends: AtomicU64,
    stale_reports: AtomicU64,
    /// Added before every vend: keeps a vend in flight while concurrent
    /// callers arrive, even when the broker answers at once.
    delay: Duration,
}

impl<T> Counting<T> {
    pub fn new(inner: T) -> Arc<Self> {
        Self::slowed(inner, Duration::ZERO)
    }

    pub fn slowed(inner: T, delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            inner,
            vends: AtomicU64::new(0),
            stale_reports: AtomicU64::new(0),
            delay,
        })
    }

    pub fn vends(&self) -> u64 {
        self.vends.load(Ordering::SeqCst)
    }

    /// The vends that reported a token as stale.
    pub fn stale_reports(&self) -> u64 {
        self.stale_reports.load(Ordering::SeqCst)
    }
}

impl<T: Transport> Transport for Counting<T> {
    async fn vend(
        &self,
        shop: &Shop,
        min_ttl: Option<Duration>,
        stale_token: Option<&SecretString>,
    ) -> Result<VendAnswer, ClientError> {
        self.vends.fetch_add(1, Ordering::SeqCst);
        if stale_token.is_some() {
            self.stale_reports.fetch_add(1, Ordering::SeqCst);
        }
        tokio::time::sleep(self.delay).await;
        self.inner.vend(shop, min_ttl, stale_token).await
    }
}

pub fn eshop() -> Shop {
    Shop::shoptet(ESHOP).unwrap()
}

/// Waits until the clock passes `instant`.
pub async fn sleep_until(instant: SystemTime) {
    if let Ok(left) = instant.duration_since(SystemTime::now()) {
        tokio::time::sleep(left).await;
    }
}
