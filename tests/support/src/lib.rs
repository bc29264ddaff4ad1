//! Test helpers shared by the workspace's integration tests.
//!
//! Tests talk to the `moto_server` AWS emulator through the real AWS SDK. The
//! emulator is started by `make test` (`scripts/test.sh`), which exports
//! `AWS_ENDPOINT_URL` and friends; for running `cargo test` by hand, start it
//! with `make emulator` and export the variables it prints.
//!
//! Every helper refuses endpoints that are not on the loopback interface, so a
//! test can never create or delete resources in a real AWS account.

pub mod events;
pub mod front_door;
pub mod request_counting;

use std::net::{IpAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, Region, SdkConfig};
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};

/// Partition key (type S) of the token table created by [`create_token_table`].
pub const TOKEN_TABLE_PARTITION_KEY: &str = "pk";
/// Attribute (epoch seconds, type N) on which the token table has TTL enabled.
pub const TOKEN_TABLE_TTL_ATTRIBUTE: &str = "ttl";

/// Partition key (type S, the shop's key) of the registry table created by
/// [`create_registry_table`].
pub const REGISTRY_TABLE_PARTITION_KEY: &str = "pk";
/// The registry table's global secondary index: partition key
/// [`REGISTRY_PLATFORM_ATTRIBUTE`], sort key [`REGISTRY_TABLE_PARTITION_KEY`],
/// every attribute projected.
pub const REGISTRY_PLATFORM_INDEX: &str = "by-platform";
/// The registry's platform attribute (type S).
pub const REGISTRY_PLATFORM_ATTRIBUTE: &str = "platform";

/// Region used when neither `AWS_REGION` nor a profile names one.
pub const DEFAULT_TEST_REGION: &str = "eu-central-1";

const NEEDS_EMULATOR: &str = "this test needs the AWS emulator: run `make test` (it starts \
     moto_server), or `make emulator` and export the variables it prints";

/// How long [`create_token_table`] waits for the table to become ACTIVE.
const TABLE_ACTIVE_TIMEOUT: Duration = Duration::from_secs(30);

/// SDK configuration pointed at the emulator named by `AWS_ENDPOINT_URL`.
///
/// Panics when `AWS_ENDPOINT_URL` is unset or empty (the emulator is not
/// running), or when it, or any service-specific `AWS_ENDPOINT_URL_*`, points
/// anywhere but the loopback interface.
pub async fn emulator_sdk_config() -> SdkConfig {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    let endpoint = endpoint.trim();
    if endpoint.is_empty() {
        panic!("AWS_ENDPOINT_URL is not set: {NEEDS_EMULATOR}");
    }
    // The emulator must not get slow for ever: bound each operation.
    let timeouts = TimeoutConfig::builder()
        .operation_timeout(Duration::from_secs(30))
        .build();
    loader(endpoint).timeout_config(timeouts).load().await
}

/// SDK configuration like [`emulator_sdk_config`] but sending every request to
/// `endpoint` (which must be on loopback), with short timeouts and at most two
/// attempts, so that tests of an unreachable store fail fast. Does not need
/// `AWS_ENDPOINT_URL`.
pub async fn sdk_config_for_endpoint(endpoint: &str) -> SdkConfig {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_millis(500))
        .read_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(5))
        .build();
    let retries = RetryConfig::standard()
        .with_max_attempts(2)
        .with_initial_backoff(Duration::from_millis(10))
        .with_max_backoff(Duration::from_millis(50));
    loader(endpoint.trim())
        .timeout_config(timeouts)
        .retry_config(retries)
        .load()
        .await
}

/// The common part of both configurations: defaults from the environment,
/// the checked endpoint set explicitly (so a profile's
/// `ignore_configured_endpoint_urls` cannot send requests to real AWS), a
/// region, and dummy credentials when the environment has none.
fn loader(endpoint: &str) -> ConfigLoader {
    if let Err(why) = check_loopback_endpoint(endpoint) {
        panic!("refusing endpoint {endpoint:?}: {why}; {NEEDS_EMULATOR}");
    }
    // Service-specific variables override the general endpoint in the SDK.
    for (name, value) in std::env::vars() {
        if name.starts_with("AWS_ENDPOINT_URL_")
            && !value.trim().is_empty()
            && let Err(why) = check_loopback_endpoint(value.trim())
        {
            panic!("refusing {name}={value:?}: {why}; unset it to test against the emulator");
        }
    }
    let region = RegionProviderChain::default_provider().or_else(Region::new(DEFAULT_TEST_REGION));
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(region);
    if std::env::var("AWS_ACCESS_KEY_ID").is_ok_and(|v| !v.is_empty()) {
        // The default chain reads them from the environment.
    } else {
        // The emulator accepts any; don't let the default chain probe
        // profiles, SSO or instance metadata.
        loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test",
            "test",
            None,
            None,
            "test-support",
        ));
    }
    loader
}

/// Checks that `url` is an `http(s)://` URL whose host is on loopback
/// (`localhost`, `127.0.0.0/8`, `::1`).
pub fn check_loopback_endpoint(url: &str) -> Result<(), String> {
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"))
        .ok_or("not an http:// or https:// URL")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = if let Some(bracketed) = host_port.strip_prefix('[') {
        bracketed
            .split_once(']')
            .map(|(host, _)| host)
            .ok_or("unterminated IPv6 address")?
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    if host == "localhost" {
        return Ok(());
    }
    let loopback = match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback(),
        Ok(IpAddr::V6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    };
    if loopback {
        Ok(())
    } else {
        Err(format!(
            "host {host:?} is not loopback (tests only talk to a local emulator)"
        ))
    }
}

/// A name unique per call and per process: `<prefix>-<pid>-<counter>-<nanos>`.
///
/// Only lowercase ASCII letters, digits and `-` (anything else in `prefix`
/// becomes `-`), so it is valid as a DynamoDB table name and as a segment of a
/// Secrets Manager name. The last segment is never six characters long, which
/// Secrets Manager would mistake for its ARN suffix.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let prefix: String = prefix
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let prefix = match prefix.trim_matches('-') {
        "" => "t",
        p => p,
    };
    // Nanoseconds since 1970 in hex are 16 digits until the year 2112.
    format!("{prefix}-{}-{counter}-{nanos:016x}", std::process::id())
}

/// Creates the token table `name`: partition key
/// [`TOKEN_TABLE_PARTITION_KEY`] (S), on-demand billing, TTL on
/// [`TOKEN_TABLE_TTL_ATTRIBUTE`]. Returns once the table is ACTIVE and TTL is
/// enabled; panics on failure.
pub async fn create_token_table(config: &SdkConfig, name: &str) {
    let client = aws_sdk_dynamodb::Client::new(config);
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(TOKEN_TABLE_PARTITION_KEY)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute definition is complete"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(TOKEN_TABLE_PARTITION_KEY)
                .key_type(KeyType::Hash)
                .build()
                .expect("key schema element is complete"),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating table {name}: {e:?}"));
    client
        .wait_until_table_exists()
        .table_name(name)
        .wait(TABLE_ACTIVE_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("waiting for table {name} to become ACTIVE: {e:?}"));
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(TOKEN_TABLE_TTL_ATTRIBUTE)
                .build()
                .expect("TTL specification is complete"),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("enabling TTL on table {name}: {e:?}"));
}

/// Creates the installation table `name` of the DynamoDB installation store:
/// the token table's shape (partition key [`TOKEN_TABLE_PARTITION_KEY`] (S),
/// TTL on [`TOKEN_TABLE_TTL_ATTRIBUTE`], which the store sets on items
/// scheduled for deletion). Returns once the table is ACTIVE; panics on
/// failure.
pub async fn create_installation_table(config: &SdkConfig, name: &str) {
    create_token_table(config, name).await;
}

/// Creates a symmetric KMS key (AES-256, encrypt and decrypt) for data keys
/// (the DynamoDB installation store's, the token cache's) and returns its id;
/// panics on failure.
pub async fn create_kms_key(config: &SdkConfig) -> String {
    let created = aws_sdk_kms::Client::new(config)
        .create_key()
        .key_spec(aws_sdk_kms::types::KeySpec::SymmetricDefault)
        .key_usage(aws_sdk_kms::types::KeyUsageType::EncryptDecrypt)
        .description("shop-token-broker test: data keys")
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating a KMS key: {e:?}"));
    created
        .key_metadata()
        .map(|key| key.key_id().to_owned())
        .expect("CreateKey answers with the key's metadata")
}

/// Creates the installation registry table `name`: partition key
/// [`REGISTRY_TABLE_PARTITION_KEY`] (S), the [`REGISTRY_PLATFORM_INDEX`]
/// index (partition key [`REGISTRY_PLATFORM_ATTRIBUTE`], sort key
/// [`REGISTRY_TABLE_PARTITION_KEY`], projection ALL), on-demand billing, no
/// TTL. Returns once the table is ACTIVE; panics on failure.
pub async fn create_registry_table(config: &SdkConfig, name: &str) {
    let client = aws_sdk_dynamodb::Client::new(config);
    let string_attribute = |attribute: &str| {
        AttributeDefinition::builder()
            .attribute_name(attribute)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("attribute definition is complete")
    };
    let key = |attribute: &str, key_type: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(attribute)
            .key_type(key_type)
            .build()
            .expect("key schema element is complete")
    };
    let by_platform = GlobalSecondaryIndex::builder()
        .index_name(REGISTRY_PLATFORM_INDEX)
        .key_schema(key(REGISTRY_PLATFORM_ATTRIBUTE, KeyType::Hash))
        .key_schema(key(REGISTRY_TABLE_PARTITION_KEY, KeyType::Range))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .expect("index definition is complete");
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(string_attribute(REGISTRY_TABLE_PARTITION_KEY))
        .attribute_definitions(string_attribute(REGISTRY_PLATFORM_ATTRIBUTE))
        .key_schema(key(REGISTRY_TABLE_PARTITION_KEY, KeyType::Hash))
        .global_secondary_indexes(by_platform)
        // As template.yaml declares it: the lifecycle events' outbox.
        .stream_specification(
            aws_sdk_dynamodb::types::StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(aws_sdk_dynamodb::types::StreamViewType::NewAndOldImages)
                .build()
                .expect("stream specification is complete"),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating table {name}: {e:?}"));
    client
        .wait_until_table_exists()
        .table_name(name)
        .wait(TABLE_ACTIVE_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("waiting for table {name} to become ACTIVE: {e:?}"));
}

/// `http://127.0.0.1:PORT` for a port on which nothing listens (it was free a
/// moment ago), for tests of an unreachable store.
pub fn unreachable_endpoint() -> String {
    let listener = TcpListener::bind(("127.0.0.1", 0)).expect("binding an ephemeral loopback port");
    let port = listener
        .local_addr()
        .expect("local address of the listener")
        .port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_endpoints_are_accepted() {
        for url in [
            "http://127.0.0.1:5000",
            "http://127.0.0.1:5000/",
            "http://127.1.2.3",
            "HTTP://LOCALHOST:4566/path?q#f",
            "https://localhost",
            "http://[::1]:5000",
            "http://user:pw@127.0.0.1:9",
            "http://[::ffff:127.0.0.1]:80",
        ] {
            assert_eq!(check_loopback_endpoint(url), Ok(()), "{url}");
        }
    }

    #[test]
    fn other_endpoints_are_refused() {
        for url in [
            "",
            "127.0.0.1:5000",
            "ftp://127.0.0.1",
            "https://dynamodb.eu-central-1.amazonaws.com",
            "http://10.0.0.1:5000",
            "http://0.0.0.0:5000",
            "http://localhost.example.com",
            "http://127.0.0.1.nip.io",
            "http://127.0.0.1@example.com",
            "http://[::2]:80",
            "http://[::1",
            "http://:5000",
        ] {
            assert!(check_loopback_endpoint(url).is_err(), "{url}");
        }
    }

    #[test]
    fn unique_names_differ_and_use_only_letters_digits_and_hyphens() {
        let a = unique_name("Token table_1");
        let b = unique_name("Token table_1");
        assert_ne!(a, b);
        for name in [&a, &b, &unique_name(""), &unique_name("--//--")] {
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{name}"
            );
            assert!((3..=255).contains(&name.len()), "{name}");
            assert!(!name.starts_with('-') && !name.ends_with('-'), "{name}");
            assert_ne!(name.rsplit('-').next().map(str::len), Some(6), "{name}");
        }
        assert!(a.starts_with("token-table-1-"), "{a}");
        assert!(unique_name(&"x".repeat(1000)).len() <= 255);
    }

    #[test]
    fn the_unreachable_endpoint_is_a_closed_loopback_port() {
        let url = unreachable_endpoint();
        assert_eq!(check_loopback_endpoint(&url), Ok(()));
        let addr = url.trim_start_matches("http://");
        assert!(
            std::net::TcpStream::connect(addr).is_err(),
            "{url} accepted a connection"
        );
    }
}

/// An in-memory log sink for tests that prove what never reaches the logs:
/// hand `move || logs.clone()` to a subscriber as its writer.
#[derive(Clone, Default)]
pub struct CapturedLogs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl CapturedLogs {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Of `metrics`, those the captured metric lines (EMF, one JSON object
    /// a line) counted, with their totals; the ones never counted are left
    /// out, so an empty answer means none moved.
    pub fn metrics_moved(&self, metrics: &[&'static str]) -> Vec<(&'static str, u64)> {
        let lines: Vec<serde_json::Value> = self
            .text()
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON metric line"))
            .collect();
        metrics
            .iter()
            .map(|metric| {
                let total = lines.iter().filter_map(|line| line[*metric].as_u64()).sum();
                (*metric, total)
            })
            .filter(|(_, total)| *total > 0)
            .collect()
    }
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// One world per test: the emulator, the platform double, a table and a prefix

/// What every broker test stands on: SDK configuration for the emulator, a
/// platform double, and a token table (with the KMS key its tokens are sealed
/// under), a registry table and a secret prefix of its own (so tests never
/// see each other's data).
pub struct TestWorld {
    pub aws: SdkConfig,
    pub double: platform_double::PlatformDouble,
    pub table: String,
    /// The KMS key id of the token cache's data keys (`TOKEN_KEY_ID`).
    pub token_key: String,
    pub registry_table: String,
    /// Ends with `/`.
    pub secret_prefix: String,
}

impl TestWorld {
    pub async fn start(double: platform_double::DoubleConfig) -> Self {
        let aws = emulator_sdk_config().await;
        let double = platform_double::PlatformDouble::start_with(double).await;
        let table = unique_name("tokens");
        let registry_table = unique_name("registry");
        let (_, _, token_key) = tokio::join!(
            create_token_table(&aws, &table),
            create_registry_table(&aws, &registry_table),
            create_kms_key(&aws),
        );
        Self {
            aws,
            double,
            table,
            token_key,
            registry_table,
            secret_prefix: format!("{}/", unique_name("broker")),
        }
    }

    /// Both functions' environment for this world: the double's URLs, the
    /// tables and the prefix.
    pub fn env(&self) -> std::collections::HashMap<&'static str, String> {
        std::collections::HashMap::from([
            ("SHOPTET_OAUTH_URL", self.double.shoptet_oauth_url()),
            ("SHOPTET_API_URL", self.double.shoptet_api_url()),
            ("SHOPRENTER_OAUTH_URL", self.double.shoprenter_oauth_url()),
            (
                "SHOPRENTER_API_URL",
                format!("{}/shoprenter-api/{{shop}}/api", self.double.base_url()),
            ),
            ("SECRET_PREFIX", self.secret_prefix.clone()),
            ("TOKEN_TABLE", self.table.clone()),
            ("TOKEN_KEY_ID", self.token_key.clone()),
            ("REGISTRY_TABLE", self.registry_table.clone()),
        ])
    }

    /// Creates a secret under this world's prefix; returns its name.
    pub async fn create_secret(&self, name: &str, value: &str) -> String {
        let name = format!("{}{name}", self.secret_prefix);
        aws_sdk_secretsmanager::Client::new(&self.aws)
            .create_secret()
            .name(&name)
            .secret_string(value)
            .send()
            .await
            .unwrap_or_else(|e| panic!("creating secret {name}: {e:?}"));
        name
    }
}

/// A Lambda HTTP response's status and JSON body (`null` when empty).
pub fn into_json(
    response: lambda_http::Response<lambda_http::Body>,
) -> (lambda_http::http::StatusCode, serde_json::Value) {
    use lambda_http::Body;
    let status = response.status();
    let body = match response.body() {
        Body::Text(text) => serde_json::from_str(text).expect("a JSON body"),
        Body::Binary(bytes) => serde_json::from_slice(bytes).expect("a JSON body"),
        Body::Empty => serde_json::Value::Null,
        _ => panic!("unexpected body kind"),
    };
    (status, body)
}

// ---------------------------------------------------------------------------
// The one leak scanner

/// Any run of this many characters of a secret found elsewhere is a leak:
/// long enough that ordinary text never matches by chance, short enough
/// that a truncated or sliced secret is still caught.
pub const LEAK_WINDOW: usize = 10;

/// The secrets a test handled, to prove that none of them reached a log
/// line, a response body, an error message or a `Debug` rendering.
#[derive(Debug, Default, Clone)]
pub struct LeakScanner {
    secrets: Vec<String>,
}

impl LeakScanner {
    pub fn new<S: Into<String>>(secrets: impl IntoIterator<Item = S>) -> Self {
        let mut scanner = Self::default();
        for secret in secrets {
            scanner.add(secret);
        }
        scanner
    }

    /// Panics on a secret too short to search for: a test must use
    /// realistic ones.
    pub fn add(&mut self, secret: impl Into<String>) {
        let secret = secret.into();
        assert!(
            secret.len() >= LEAK_WINDOW,
            "a secret of {} bytes is too short to search for (at least {LEAK_WINDOW})",
            secret.len()
        );
        self.secrets.push(secret);
    }

    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// Panics if `text` contains any [`LEAK_WINDOW`]-byte run of any secret.
    /// The message names `what` and which secret, never the secret itself.
    pub fn assert_absent(&self, what: &str, text: &str) {
        use std::collections::HashMap;
        let mut windows: HashMap<&[u8], usize> = HashMap::new();
        for (index, secret) in self.secrets.iter().enumerate() {
            for window in secret.as_bytes().windows(LEAK_WINDOW) {
                windows.entry(window).or_insert(index);
            }
        }
        for (offset, window) in text.as_bytes().windows(LEAK_WINDOW).enumerate() {
            if let Some(index) = windows.get(window) {
                panic!(
                    "secret #{index} (of {} handled) leaked into {what} at byte {offset}",
                    self.secrets.len()
                );
            }
        }
    }

    /// Neither the `Display` nor the `Debug` (plain or pretty) form of
    /// `value` shows a secret.
    pub fn assert_renders_none(&self, value: &(impl std::fmt::Display + std::fmt::Debug)) {
        self.assert_absent("a Display rendering", &value.to_string());
        self.assert_absent("a Debug rendering", &format!("{value:?} {value:#?}"));
    }
}

#[cfg(test)]
mod leak_scanner_tests {
    use super::*;

    const SECRET: &str = "222651-a-fltqc2nn5zg8y5h69jx8976ltwi2p1qg";

    #[test]
    fn a_slice_of_a_secret_anywhere_is_found() {
        let scanner = LeakScanner::new([SECRET]);
        scanner.assert_absent("clean text", "token vended shop=222651 source=L1");
        for leaked in [
            SECRET.to_owned(),
            format!("prefix {} suffix", &SECRET[20..30]),
            format!("{}…", &SECRET[..LEAK_WINDOW]),
        ] {
            let caught = std::panic::catch_unwind(|| scanner.assert_absent("a line", &leaked));
            let message = *caught.unwrap_err().downcast::<String>().unwrap();
            assert!(message.contains("secret #0"), "{message}");
            assert!(!message.contains(&SECRET[..LEAK_WINDOW]), "{message}");
        }
    }

    #[test]
    #[should_panic(expected = "too short to search for")]
    fn a_short_secret_is_refused() {
        LeakScanner::new(["short"]);
    }
}
