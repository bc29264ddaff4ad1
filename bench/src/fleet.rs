//! One benchmark fleet: the platform double (in this process), a token table
//! and a secret prefix of its own in moto, and vendor instances wired to them.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::SystemTime;

use aws_config::SdkConfig;
use broker_aws::storage::dynamodb::DynamoTokenCache;
use broker_aws::storage::{AwsStores, KmsKeyId};
use broker_domain::ids::ShopRef;
use broker_domain::model::ShoptetInstallationRecord;
use broker_domain::secret::{ApiAccessToken, ClientSecret, ExposeSecret, InstallCode};
use broker_domain::storage::{InstallationStore, TokenCache};
use broker_platforms::shoptet::{AddonCredentials, ShoptetClient, ShoptetConfig};
use broker_platforms::upstream::{HttpSettings, UpstreamUrl};
use platform_double::{DoubleConfig, Endpoint, PlatformDouble};
use test_support::request_counting::TableRoles;
use token_vendor::{AwsVendHandler, AwsVendorConfig, VendRequest, build_on_aws};

use crate::Error;

/// Where a vendor instance finds the fleet; worker processes get it as arguments.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://127.0.0.1:PORT` of the platform double.
    pub double_url: String,
    pub table: String,
    /// The KMS key the token cache's data keys are wrapped under.
    pub token_key: String,
    pub secret_prefix: String,
    /// `InstallationStore=DynamoDB`: the installation table and the KMS key;
    /// `None`: Secrets Manager under `secret_prefix` (the default).
    pub installations: Option<DynamoInstallations>,
}

#[derive(Debug, Clone)]
pub struct DynamoInstallations {
    pub table: String,
    pub key_id: String,
}

impl Target {
    /// The vendor's environment: every upstream is the double.
    pub fn env(&self) -> HashMap<&'static str, String> {
        let base = &self.double_url;
        let mut env = HashMap::from([
            ("SHOPTET_OAUTH_URL", base.clone()),
            ("SHOPTET_API_URL", format!("{base}/api")),
            ("SHOPRENTER_OAUTH_URL", format!("{base}/shoprenter")),
            (
                "SHOPRENTER_API_URL",
                format!("{base}/shoprenter-api/{{shop}}/api"),
            ),
            ("SECRET_PREFIX", self.secret_prefix.clone()),
            ("TOKEN_TABLE", self.table.clone()),
            ("TOKEN_KEY_ID", self.token_key.clone()),
            ("REGISTRY_TABLE", self.registry_table()),
        ]);
        if let Some(installations) = &self.installations {
            env.insert("INSTALLATION_STORE", "DynamoDB".into());
            env.insert("INSTALLATION_TABLE", installations.table.clone());
            env.insert("INSTALLATION_KEY_ID", installations.key_id.clone());
        }
        env
    }

    /// The configuration a new Lambda instance would read.
    pub fn config(&self) -> Result<AwsVendorConfig, Error> {
        let env = self.env();
        Ok(AwsVendorConfig::from_env(&|name: &str| {
            env.get(name).cloned()
        })?)
    }

    /// What each of the fleet's tables is, for counting requests by table.
    pub fn table_roles(&self) -> TableRoles {
        let roles = TableRoles::default()
            .with(&self.table, "tokens")
            .with(&self.registry_table(), "registry");
        match &self.installations {
            Some(installations) => roles.with(&installations.table, "installations"),
            None => roles,
        }
    }

    /// Named after the token table, so workers need no second argument.
    pub fn registry_table(&self) -> String {
        format!("{}-registry", self.table)
    }

    /// A fresh handler state: what a new Lambda instance would have.
    pub async fn instance(&self, aws: &SdkConfig) -> Result<AwsVendHandler, Error> {
        Ok(build_on_aws(self.config()?, aws))
    }
}

pub struct Fleet {
    pub double: PlatformDouble,
    pub aws: SdkConfig,
    pub target: Target,
    /// What installs write to (opened once: installs come by the thousand).
    stores: AwsStores,
}

impl Fleet {
    /// Needs moto: `AWS_ENDPOINT_URL` on loopback (scripts/bench.sh sets it).
    pub async fn start() -> Result<Self, Error> {
        Self::start_with(DoubleConfig::default(), false).await
    }

    /// With the double configured so, and with `InstallationStore=DynamoDB`
    /// (a table and a KMS key of its own) when `dynamo_installations`.
    pub async fn start_with(
        double: DoubleConfig,
        dynamo_installations: bool,
    ) -> Result<Self, Error> {
        let aws = test_support::emulator_sdk_config().await;
        let double = PlatformDouble::start_with(double).await;
        let table = test_support::unique_name("bench-tokens");
        test_support::create_token_table(&aws, &table).await;
        let token_key = test_support::create_kms_key(&aws).await;
        test_support::create_registry_table(&aws, &format!("{table}-registry")).await;
        let secret_prefix = format!("{}/", test_support::unique_name("bench"));
        let mut target = Target {
            double_url: double.base_url(),
            table,
            token_key,
            secret_prefix,
            installations: None,
        };
        if dynamo_installations {
            let table = test_support::unique_name("bench-installations");
            test_support::create_installation_table(&aws, &table).await;
            let key_id = test_support::create_kms_key(&aws).await;
            target.installations = Some(DynamoInstallations { table, key_id });
        }
        let stores = target.config()?.stores.open(&aws);
        Ok(Self {
            double,
            aws,
            target,
            stores,
        })
    }

    pub async fn instance(&self) -> Result<AwsVendHandler, Error> {
        self.target.instance(&self.aws).await
    }

    /// Installs the add-on the way Shoptet does: a code from the double,
    /// exchanged for the OAuth access token, stored in the configured
    /// installation store.
    pub async fn install_shoptet(&self, eshop_id: u64) -> Result<(), Error> {
        let double = self.double.config();
        let client = ShoptetClient::new(
            HttpSettings::default().build_client(),
            ShoptetConfig {
                oauth_url: UpstreamUrl::parse(&self.double.shoptet_oauth_url())?,
                api_url: UpstreamUrl::parse(&self.double.shoptet_api_url())?,
            },
        );
        let addon = AddonCredentials {
            client_id: double.shoptet_client_id.clone(),
            client_secret: double.shoptet_client_secret.clone().map(ClientSecret::new),
        };
        let code = InstallCode::new(self.double.issue_install_code(eshop_id));
        let installation = client
            .exchange_code(&code, &addon, "https://broker.example/shoptet/install")
            .await?;
        self.stores
            .installations
            .save_shoptet_installation(&ShoptetInstallationRecord {
                installation,
                installed_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            })
            .await?;
        Ok(())
    }

    /// Upstream mints (`getAccessToken` calls) for the e-shop so far.
    pub fn mints(&self, eshop_id: u64) -> u64 {
        self.double
            .calls(Endpoint::ShoptetGetAccessToken, &eshop_id.to_string())
    }

    /// The hash of the token the table holds for the shop.
    pub async fn stored_token_hash(&self, shop: &ShopRef) -> Result<Option<u64>, Error> {
        let cache = DynamoTokenCache::new(
            aws_sdk_dynamodb::Client::new(&self.aws),
            aws_sdk_kms::Client::new(&self.aws),
            self.target.table.clone(),
            KmsKeyId::new(self.target.token_key.clone()),
        );
        let entry = cache.load(shop).await?;
        Ok(entry
            .and_then(|e| e.token)
            .map(|t| token_hash(&t.access_token)))
    }
}

pub fn shoptet(eshop_id: u64) -> ShopRef {
    ShopRef::parse("shoptet", &eshop_id.to_string()).expect("a numeric eshopId is valid")
}

pub fn request(shop: &ShopRef) -> VendRequest {
    VendRequest {
        shop: shop.clone(),
        min_ttl: None,
        stale_token: None,
    }
}

/// Tokens are compared by this hash and never printed. `DefaultHasher::new`
/// is deterministic, so worker processes of the same binary agree.
pub fn token_hash(token: &ApiAccessToken) -> u64 {
    let mut hasher = DefaultHasher::new();
    token.expose_secret().hash(&mut hasher);
    hasher.finish()
}
