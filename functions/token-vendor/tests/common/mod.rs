//! Token vendor instances wired to moto and the platform double.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use aws_config::SdkConfig;
use broker_aws::storage::dynamodb::DynamoTokenCache;
use broker_aws::storage::secrets_manager::SecretsManagerStore;
use broker_aws::storage::{KmsKeyId, SecretNames};
use broker_domain::ids::ShopRef;
use broker_domain::model::{CacheEntry, Origin, ShoprenterCredentials, ShoptetInstallationRecord};
use broker_domain::secret::{ApiAccessToken, ClientSecret, InstallCode};
use broker_domain::storage::{InstallationRegistry, InstallationStore, TokenCache};
use broker_platforms::shoptet::{AddonCredentials, ShoptetClient, ShoptetConfig};
use broker_platforms::upstream::{HttpSettings, UpstreamUrl};
use lambda_http::Body;
use lambda_http::http::{Request, StatusCode};
use platform_double::{DoubleConfig, PlatformDouble};
use serde_json::Value;
use test_support::TestWorld;
pub use test_support::into_json;
use token_vendor::{
    AwsVendHandler, AwsVendorConfig, VendError, VendHandler, VendRequest, Vended, build_on_aws,
};

pub const APP_CLIENT_ID: &str = "app-client-id";
pub const APP_CLIENT_SECRET: &str = "app-client-secret-0123456789";

/// The emulator and the double (`TestWorld`, through `Deref`) and the
/// vendor's environment on them; each `instance` is a new Lambda instance.
pub struct Fleet {
    pub world: TestWorld,
    /// Where instances' stores are (a closed port in outage tests).
    pub store_aws: SdkConfig,
    pub env: HashMap<&'static str, String>,
    pub secret_names: SecretNames,
}

impl std::ops::Deref for Fleet {
    type Target = TestWorld;

    fn deref(&self) -> &TestWorld {
        &self.world
    }
}

impl Fleet {
    pub async fn start() -> Self {
        Self::start_with(DoubleConfig::default(), &[]).await
    }

    /// A double, a token table and a secret prefix of its own; `overrides`
    /// replace the vendor's environment.
    pub async fn start_with(double: DoubleConfig, overrides: &[(&'static str, &str)]) -> Self {
        let world = TestWorld::start(double).await;
        let app_secret_id = world
            .create_secret("shoprenter-app-secret", APP_CLIENT_SECRET)
            .await;
        let mut env = world.env();
        env.insert("SHOPRENTER_CLIENT_ID", APP_CLIENT_ID.to_owned());
        env.insert("SHOPRENTER_CLIENT_SECRET_ID", app_secret_id);
        for (name, value) in overrides {
            env.insert(name, (*value).to_owned());
        }
        Self {
            store_aws: world.aws.clone(),
            secret_names: SecretNames::new(&world.secret_prefix).unwrap(),
            env,
            world,
        }
    }

    /// A fresh handler state: what a new Lambda instance would have.
    pub async fn instance(&self) -> AwsVendHandler {
        self.instance_with(|_| {}).await
    }

    /// A fresh instance whose configuration `adjust` changed after loading.
    pub async fn instance_with(&self, adjust: impl FnOnce(&mut AwsVendorConfig)) -> AwsVendHandler {
        let mut config = self.config();
        adjust(&mut config);
        build_on_aws(config, &self.store_aws)
    }

    pub fn config(&self) -> AwsVendorConfig {
        AwsVendorConfig::from_env(&|name: &str| self.env.get(name).cloned()).unwrap()
    }

    pub fn installations(&self) -> SecretsManagerStore {
        SecretsManagerStore::new(
            aws_sdk_secretsmanager::Client::new(&self.aws),
            self.secret_names.clone(),
        )
    }

    pub fn cache(&self) -> DynamoTokenCache {
        DynamoTokenCache::new(
            aws_sdk_dynamodb::Client::new(&self.aws),
            aws_sdk_kms::Client::new(&self.aws),
            self.table.clone(),
            KmsKeyId::new(self.token_key.clone()),
        )
    }

    pub async fn install_shoptet(&self, eshop_id: u64) {
        install_via_double(&self.double, &self.installations(), eshop_id).await;
    }

    pub async fn store_shoprenter_credentials(&self, shop: &str, client_id: &str, secret: &str) {
        self.installations()
            .save_shoprenter_credentials(
                &shop.parse().unwrap(),
                &ShoprenterCredentials {
                    client_id: client_id.into(),
                    client_secret: ClientSecret::new(secret),
                },
            )
            .await
            .unwrap();
    }

    /// Records the shop as installed (an app install, or an import).
    pub async fn register_installed(&self, shop: &ShopRef) {
        broker_aws::storage::dynamodb_registry::DynamoRegistry::new(
            aws_sdk_dynamodb::Client::new(&self.aws),
            self.registry_table.clone(),
        )
        .record(
            shop,
            &broker_domain::model::StatusChange::installed(
                std::time::SystemTime::now(),
                Origin::Import,
            ),
        )
        .await
        .unwrap();
    }

    pub async fn cache_entry(&self, shop: &ShopRef) -> Option<CacheEntry> {
        self.cache().load(shop).await.unwrap()
    }
}

/// Installs the add-on in an e-shop the way Shoptet does: a code from the
/// double, exchanged for the OAuth access token, stored.
pub async fn install_via_double(
    double: &PlatformDouble,
    store: &impl InstallationStore,
    eshop_id: u64,
) {
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
    let code = InstallCode::new(double.issue_install_code(eshop_id));
    let installation = client
        .exchange_code(&code, &addon, "https://broker.example/shoptet/install")
        .await
        .unwrap();
    store
        .save_shoptet_installation(&ShoptetInstallationRecord {
            installation,
            installed_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        })
        .await
        .unwrap();
}

/// A Shoptet client without add-on credentials: enough to mint API tokens.
pub fn minting_client(double: &PlatformDouble) -> ShoptetClient {
    ShoptetClient::new(
        HttpSettings::default().build_client(),
        ShoptetConfig {
            oauth_url: UpstreamUrl::parse(&double.shoptet_oauth_url()).unwrap(),
            api_url: UpstreamUrl::parse(&double.shoptet_api_url()).unwrap(),
        },
    )
}

/// `callers` concurrent vends of `request`, spread round-robin over the
/// instances; the tokens they got, in caller order.
pub async fn vend_concurrently<S, C, R>(
    instances: &[Arc<VendHandler<S, C, R>>],
    request: &VendRequest,
    callers: usize,
) -> Vec<ApiAccessToken>
where
    S: InstallationStore + 'static,
    C: TokenCache + 'static,
    R: InstallationRegistry + 'static,
{
    let tasks: Vec<_> = (0..callers)
        .map(|caller| {
            let instance = instances[caller % instances.len()].clone();
            let request = request.clone();
            tokio::spawn(async move {
                instance
                    .vendor()
                    .vend(&request)
                    .await
                    .unwrap()
                    .token
                    .access_token
            })
        })
        .collect();
    let mut tokens = Vec::with_capacity(callers);
    for task in tasks {
        tokens.push(task.await.unwrap());
    }
    tokens
}

pub fn shoptet(eshop_id: u64) -> ShopRef {
    ShopRef::parse("shoptet", &eshop_id.to_string()).unwrap()
}

pub fn request(shop: &ShopRef) -> VendRequest {
    VendRequest {
        shop: shop.clone(),
        min_ttl: None,
        stale_token: None,
    }
}

pub async fn vend(handler: &AwsVendHandler, request: &VendRequest) -> Result<Vended, VendError> {
    handler.vendor().vend(request).await
}

pub async fn http(
    handler: &AwsVendHandler,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Option<String>, Value) {
    let request = Request::builder()
        .method(method)
        .uri(format!("https://broker.example{path}"))
        .body(body.map_or(Body::Empty, |b| Body::from(b.to_string())))
        .unwrap();
    let response = handler
        .handle(request)
        .await
        .expect("HTTP requests always get a response");
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, body) = into_json(response);
    (status, retry_after, body)
}
