//! The AWS requests of each operation, per installation store, counted on
//! the wire (`test_support::request_counting`) through the real handlers: an install through
//! Shoptet's install URL, vends served by L1, by L2 and by a mint, a
//! confirmed uninstall webhook, and one page of the operator's listing. The
//! cost model (`docs/cost.md`, `scripts/cost_model.py`) multiplies these.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use aws_config::SdkConfig;
use broker_domain::secret::WebhookKey;
use broker_platforms::shoptet_webhook;
use broker_runtime::metrics::{Metrics, Service};
use install_callback::{AwsInstallCallback, AwsInstallConfig};
use lambda_http::http::{Request, StatusCode};
use lambda_http::{Body, RequestExt};
use platform_double::DoubleConfig;
use token_vendor::{AwsVendHandler, Source};

use crate::Error;
use crate::fleet::{Fleet, request, shoptet};
use test_support::front_door::iam_http_api_context;
use test_support::request_counting::{RequestCounter, RequestCounts, counting};

pub(crate) const REDIRECT_URI: &str = "https://broker.example/shoptet/install";
const WEBHOOK_KEY: &str = "bench-webhook-signature-key";
/// Shops the listing's registry holds beyond the measured ones: more than a
/// page.
const LISTED_SHOPS: u64 = 120;

/// One store's counts, by operation, in the cost model's names.
pub type StoreCounts = BTreeMap<&'static str, RequestCounts>;

pub async fn run(json: Option<&str>) -> Result<(), Error> {
    let mut stores = BTreeMap::new();
    for (name, dynamo) in [("SecretsManager", false), ("DynamoDB", true)] {
        crate::report::progress(&format!("counting requests per operation, {name} store"));
        stores.insert(name, count_store(dynamo).await?);
    }
    println!("\n## AWS requests per operation, counted on the wire\n");
    println!("| Operation | Secrets Manager store | DynamoDB store |");
    println!("| --- | --- | --- |");
    let operations: Vec<&str> = stores["SecretsManager"].keys().copied().collect();
    for operation in operations {
        println!(
            "| `{operation}` | {} | {} |",
            stores["SecretsManager"][operation], stores["DynamoDB"][operation]
        );
    }
    if let Some(path) = json {
        let document = serde_json::json!({
            "recorded": humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            "command": "scripts/bench.sh counts --json docs/cost-counts.json",
            "stores": stores.iter().map(|(name, counts)| {
                let ops: serde_json::Map<String, serde_json::Value> = counts
                    .iter()
                    .map(|(op, c)| ((*op).to_owned(), serde_json::json!(c.0)))
                    .collect();
                ((*name).to_owned(), serde_json::Value::Object(ops))
            }).collect::<serde_json::Map<_, _>>(),
        });
        std::fs::write(path, serde_json::to_string_pretty(&document)? + "\n")?;
        crate::report::progress(&format!("wrote {path}"));
    }
    Ok(())
}

struct Counted {
    counter: RequestCounter,
}

impl Counted {
    /// What `operation` cost in requests.
    async fn measure<T>(&self, operation: impl Future<Output = T>) -> (T, RequestCounts) {
        let before = self.counter.snapshot();
        let output = operation.await;
        (output, self.counter.snapshot().since(&before))
    }
}

async fn count_store(dynamo: bool) -> Result<StoreCounts, Error> {
    let fleet = Fleet::start_with(
        DoubleConfig {
            shoptet_redirect_uri: Some(REDIRECT_URI.to_owned()),
            ..DoubleConfig::default()
        },
        dynamo,
    )
    .await?;
    let (aws, counter) = counting(
        &fleet.aws,
        broker_aws::sdk_http::http_client(),
        fleet.target.table_roles(),
    );
    let counted = Counted { counter };
    let install = install_callback(&fleet, &aws).await?;

    let mut counts = StoreCounts::new();
    // The first request of an instance also reads the add-on's client secret.
    let first = 4_000_001;
    let (status, first_install) = counted
        .measure(shoptet_install(&fleet, &install, first))
        .await;
    expect(status?, StatusCode::OK, "the first install")?;
    counts.insert("install_cold_instance", first_install);
    let shop = 4_000_002;
    let (status, install_counts) = counted
        .measure(shoptet_install(&fleet, &install, shop))
        .await;
    expect(status?, StatusCode::OK, "an install")?;
    counts.insert("install", install_counts);

    let vendor = quiet(fleet.target.instance(&aws).await?);
    let (source, mint) = counted.measure(vend(&vendor, shop)).await;
    expect_source(source?, Source::Minted)?;
    counts.insert("mint", mint);
    let (source, l1) = counted.measure(vend(&vendor, shop)).await;
    expect_source(source?, Source::L1)?;
    counts.insert("l1_hit", l1);
    let other_instance = quiet(fleet.target.instance(&aws).await?);
    let (source, l2) = counted.measure(vend(&other_instance, shop)).await;
    expect_source(source?, Source::L2)?;
    counts.insert("l2_hit", l2);

    // A real uninstall: the platform says so when asked.
    fleet.double.uninstall(shop);
    let (status, webhook) = counted
        .measure(signed_webhook(&install, shop, "addon:uninstall"))
        .await;
    expect(status?, StatusCode::OK, "the uninstall webhook")?;
    counts.insert("webhook", webhook);

    for n in 0..LISTED_SHOPS {
        let (status, _) = counted
            .measure(shoptet_install(&fleet, &install, 4_100_000 + n))
            .await;
        expect(status?, StatusCode::OK, "a listed shop's install")?;
    }
    let (status, listing) = counted
        .measure(get(&install, "/installations?limit=100"))
        .await;
    expect(status, StatusCode::OK, "the listing")?;
    counts.insert("listing", listing);
    Ok(counts)
}

async fn install_callback(fleet: &Fleet, aws: &SdkConfig) -> Result<AwsInstallCallback, Error> {
    Ok(quiet_install_callback(install_config(fleet).await?, aws))
}

/// The install callback's configuration for the fleet: the add-on's client
/// secret and the system webhooks' key created under its prefix (once per
/// fleet: creating them again fails).
pub(crate) async fn install_config(fleet: &Fleet) -> Result<AwsInstallConfig, Error> {
    let secrets = aws_sdk_secretsmanager::Client::new(&fleet.aws);
    let prefix = &fleet.target.secret_prefix;
    let client_secret_id = format!("{prefix}addon-client-secret");
    let webhook_key_id = format!("{prefix}webhook-key");
    let client_secret = fleet
        .double
        .config()
        .shoptet_client_secret
        .clone()
        .ok_or("the double has no client secret")?;
    for (name, value) in [
        (&client_secret_id, client_secret.as_str()),
        (&webhook_key_id, WEBHOOK_KEY),
    ] {
        secrets
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await?;
    }
    let mut env = fleet.target.env();
    env.remove("SHOPRENTER_API_URL");
    env.insert(
        "SHOPTET_CLIENT_ID",
        fleet.double.config().shoptet_client_id.clone(),
    );
    env.insert("SHOPTET_CLIENT_SECRET_ID", client_secret_id);
    env.insert("SHOPTET_WEBHOOK_KEY_SECRET_ID", webhook_key_id);
    env.insert("SHOPTET_REDIRECT_URI", REDIRECT_URI.to_owned());
    Ok(AwsInstallConfig::from_env(&|name: &str| {
        env.get(name).cloned()
    })?)
}

/// A new install callback instance, its metric lines into a sink.
pub(crate) fn quiet_install_callback(
    config: AwsInstallConfig,
    aws: &SdkConfig,
) -> AwsInstallCallback {
    let metrics = Metrics::new(Service::InstallCallback, "Bench", std::io::sink());
    install_callback::build_on_aws(config, aws).with_metrics(Arc::new(metrics))
}

pub(crate) async fn shoptet_install(
    fleet: &Fleet,
    install: &AwsInstallCallback,
    eshop_id: u64,
) -> Result<StatusCode, Error> {
    let code = fleet.double.issue_install_code(eshop_id);
    Ok(get(install, &format!("/shoptet/install?code={code}")).await)
}

async fn get(install: &AwsInstallCallback, path_and_query: &str) -> StatusCode {
    let request = Request::builder()
        .method("GET")
        .uri(format!("https://broker.example{path_and_query}"))
        .body(Body::Empty)
        .expect("a valid request")
        // An operator's SigV4 request, as API Gateway vouches for it (the
        // platform callbacks ignore it).
        .with_request_context(iam_http_api_context());
    install.handle(request).await.status()
}

async fn signed_webhook(
    install: &AwsInstallCallback,
    eshop_id: u64,
    event: &str,
) -> Result<StatusCode, Error> {
    let created = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .replace('Z', "+0000");
    let body = format!(
        r#"{{"eshopId":{eshop_id},"event":"{event}","eventCreated":"{created}","eventInstance":"{eshop_id}"}}"#
    );
    let signature = shoptet_webhook::sign(&WebhookKey::new(WEBHOOK_KEY), body.as_bytes());
    let request = Request::builder()
        .method("POST")
        .uri("https://broker.example/shoptet/webhook")
        .header(shoptet_webhook::SIGNATURE_HEADER, signature)
        .body(Body::from(body))?;
    Ok(install.handle(request).await.status())
}

/// Metric lines into a sink: stdout carries the report.
fn quiet(vendor: AwsVendHandler) -> AwsVendHandler {
    vendor.with_metrics(Arc::new(Metrics::new(
        Service::TokenVendor,
        "Bench",
        std::io::sink(),
    )))
}

async fn vend(vendor: &AwsVendHandler, eshop_id: u64) -> Result<Source, Error> {
    Ok(vendor
        .vendor()
        .vend(&request(&shoptet(eshop_id)))
        .await?
        .source)
}

fn expect(status: StatusCode, wanted: StatusCode, what: &str) -> Result<(), Error> {
    if status == wanted {
        Ok(())
    } else {
        Err(format!("{what} answered {status}, not {wanted}").into())
    }
}

fn expect_source(source: Source, wanted: Source) -> Result<(), Error> {
    if source == wanted {
        Ok(())
    } else {
        Err(format!("a vend came from {source:?}, not {wanted:?}").into())
    }
}
