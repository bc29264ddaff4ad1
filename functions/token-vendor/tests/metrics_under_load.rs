//! Drives two vendor instances with concurrent requests (cache hits, one
//! mint, refusals), reads what each wrote as CloudWatch Embedded Metric
//! Format lines, and finds valid EMF whose counts add up to the requests
//! sent, with no token or secret in any line.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use broker_runtime::metrics::{Metrics, Service};
use common::{APP_CLIENT_SECRET, Fleet, http};
use lambda_http::http::StatusCode;
use platform_double::{DoubleConfig, Endpoint, Fault};
use serde_json::Value;
use test_support::{CapturedLogs, LeakScanner};
use token_vendor::AwsVendHandler;

const NAMESPACE: &str = "BrokerTest";

/// An instance whose metrics go to `out`, flushed every `interval`.
async fn instance_writing_to(
    fleet: &Fleet,
    out: &CapturedLogs,
    interval: Duration,
) -> Arc<AwsVendHandler> {
    let metrics =
        Metrics::new(Service::TokenVendor, NAMESPACE, out.clone()).with_flush_interval(interval);
    Arc::new(fleet.instance().await.with_metrics(Arc::new(metrics)))
}

/// Every line as JSON, each checked against the EMF specification: one
/// directive in our namespace, every dimension of every set and every
/// metric it names present at the root, values numbers (or arrays of at
/// most 100), within EMF's limits (30 dimensions a set, 100 metrics).
fn emf_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| {
            let line: Value = serde_json::from_str(line).expect("every line is JSON");
            let metadata = &line["_aws"];
            assert!(metadata["Timestamp"].is_u64(), "a timestamp in ms: {line}");
            let directives = metadata["CloudWatchMetrics"].as_array().unwrap();
            assert_eq!(directives.len(), 1, "{line}");
            let directive = &directives[0];
            assert_eq!(directive["Namespace"], NAMESPACE);
            let sets = directive["Dimensions"].as_array().unwrap();
            assert_eq!(
                sets[0],
                serde_json::json!(["Service"]),
                "the alarms' set first"
            );
            for set in sets {
                let set = set.as_array().unwrap();
                assert!((1..=30).contains(&set.len()));
                for name in set {
                    let value = &line[name.as_str().unwrap()];
                    assert!(
                        value
                            .as_str()
                            .is_some_and(|v| !v.is_empty() && v.is_ascii()),
                        "dimension {name} has a value: {line}"
                    );
                }
            }
            let definitions = directive["Metrics"].as_array().unwrap();
            assert!((1..=100).contains(&definitions.len()));
            for definition in definitions {
                let value = &line[definition["Name"].as_str().unwrap()];
                let valid = match value {
                    Value::Number(_) => true,
                    Value::Array(values) => {
                        (1..=100).contains(&values.len()) && values.iter().all(Value::is_number)
                    }
                    _ => false,
                };
                assert!(valid, "{} has a value: {line}", definition["Name"]);
                assert!(["Count", "Milliseconds"].contains(&definition["Unit"].as_str().unwrap()));
            }
            line
        })
        .collect()
}

/// The sum of a counter over the lines, by the value of one dimension.
fn counts_by(lines: &[Value], metric: &str, dimension: &str) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for line in lines.iter().filter(|line| line[metric].is_u64()) {
        let key = line[dimension].as_str().unwrap_or("-").to_owned();
        *counts.entry(key).or_default() += line[metric].as_u64().unwrap();
    }
    counts
}

fn total(lines: &[Value], metric: &str) -> u64 {
    counts_by(lines, metric, "Service").values().sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_lines_under_load_are_valid_emf_that_count_every_request_and_leak_nothing() {
    let fleet = Fleet::start_with(DoubleConfig::default(), &[]).await;
    fleet.install_shoptet(11).await;
    fleet.install_shoptet(12).await;
    // A slow mint: the other callers wait for it under the lease.
    fleet.double.set_latency(Duration::from_millis(300));
    let outs = [CapturedLogs::default(), CapturedLogs::default()];
    let instances = [
        instance_writing_to(&fleet, &outs[0], Duration::from_secs(60)).await,
        instance_writing_to(&fleet, &outs[1], Duration::from_secs(60)).await,
    ];

    let mut paths = vec!["/tokens/shoptet/11"; 24];
    paths.extend(["/tokens/shoptet/99"; 6]); // not installed
    paths.extend(["/nothing/here"; 2]); // no such route
    paths.extend(["/tokens/woocommerce/1"; 2]); // no such platform
    let sent = paths.len() as u64;
    let tasks: Vec<_> = paths
        .into_iter()
        .enumerate()
        .map(|(caller, path)| {
            let instance = Arc::clone(&instances[caller % 2]);
            tokio::spawn(async move { http(&instance, "GET", path, None).await })
        })
        .collect();
    let mut tokens = Vec::new();
    let mut statuses = BTreeMap::<u16, u64>::new();
    for task in tasks {
        let (status, _, body) = task.await.unwrap();
        *statuses.entry(status.as_u16()).or_default() += 1;
        if let Some(token) = body["access_token"].as_str() {
            tokens.push(token.to_owned());
        }
    }
    fleet.double.set_latency(Duration::ZERO);
    assert_eq!(statuses, BTreeMap::from([(200, 24), (400, 2), (404, 8)]));
    assert_eq!(fleet.double.calls(Endpoint::ShoptetGetAccessToken, "11"), 1);

    // A failed mint is written at once, flush or no flush.
    fleet.double.inject(
        Some(Endpoint::ShoptetGetAccessToken),
        Fault::ServerError(500),
        1,
    );
    let (status, _, _) = http(&instances[0], "GET", "/tokens/shoptet/12", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let sent = sent + 1;
    let before_flush: Vec<Value> = outs.iter().flat_map(|out| emf_lines(&out.text())).collect();
    assert_eq!(
        before_flush.len(),
        1,
        "within the minute only the failure is written: {before_flush:?}"
    );
    assert_eq!(before_flush[0]["MintFailures"], 1);
    assert_eq!(before_flush[0]["Code"], "upstream_unavailable");
    assert_eq!(before_flush[0]["Platform"], "shoptet");

    for instance in &instances {
        instance.metrics().flush();
    }
    let lines: Vec<Value> = outs.iter().flat_map(|out| emf_lines(&out.text())).collect();

    let vends = counts_by(&lines, "Vends", "Source");
    let errors = counts_by(&lines, "VendErrors", "Code");
    assert_eq!(
        vends.get("Minted"),
        Some(&1),
        "one mint for 24 callers: {vends:?}"
    );
    assert_eq!(vends.values().sum::<u64>(), 24, "{vends:?}");
    assert_eq!(
        errors,
        BTreeMap::from([
            ("invalid_request".to_owned(), 2),
            ("not_found".to_owned(), 2),
            ("not_installed".to_owned(), 6),
            ("upstream_unavailable".to_owned(), 1),
        ])
    );
    assert_eq!(total(&lines, "Vends") + total(&lines, "VendErrors"), sent);
    assert_eq!(total(&lines, "Mints"), 1);
    assert_eq!(total(&lines, "MintFailures"), 1);
    let mint = lines.iter().find(|line| line["Mints"] == 1).unwrap();
    let latency = mint["MintLatency"].as_array().unwrap();
    assert_eq!(latency.len(), 1);
    assert!(
        latency[0].as_f64().unwrap() >= 300.0,
        "the double's latency: {latency:?}"
    );
    // Waiters on the other instance wait for the lease; the minting
    // instance's own callers wait on its in-flight lock and read L1.
    let waits = total(&lines, "LeaseWaits");
    let waited: usize = lines
        .iter()
        .filter_map(|line| line["LeaseWaitDuration"].as_array())
        .map(Vec::len)
        .sum();
    assert_eq!(waited as u64, waits, "one duration per wait");
    assert!(waits >= 1, "the other instance waited for the lease");
    assert!(
        lines.iter().all(|line| line["Service"] == "token-vendor"),
        "every line names its service"
    );
    assert!(
        lines.iter().all(|line| line.get("Shop").is_none()),
        "no shop id is a dimension"
    );

    // Nothing new since the flush: the next one writes nothing.
    let written_before = outs[0].text();
    instances[0].metrics().flush();
    assert_eq!(outs[0].text(), written_before);

    // A zero interval flushes at the request itself.
    let immediate = CapturedLogs::default();
    let instance = instance_writing_to(&fleet, &immediate, Duration::ZERO).await;
    let (status, _, body) = http(&instance, "GET", "/tokens/shoptet/11", None).await;
    assert_eq!(status, StatusCode::OK);
    tokens.push(body["access_token"].as_str().unwrap().to_owned());
    let written = emf_lines(&immediate.text());
    assert_eq!(
        counts_by(&written, "Vends", "Source"),
        BTreeMap::from([("L2".to_owned(), 1)])
    );

    let mut secrets = LeakScanner::new(tokens);
    secrets.add(APP_CLIENT_SECRET);
    for eshop in [11, 12] {
        secrets.add(fleet.double.oauth_access_token(eshop).unwrap());
    }
    let text: String = outs
        .iter()
        .chain([&immediate])
        .map(CapturedLogs::text)
        .collect();
    secrets.assert_absent("the metric lines", &text);
    assert!(
        !text.contains("\"99\"") && !text.contains("\"11\""),
        "no shop id in a line"
    );
}
