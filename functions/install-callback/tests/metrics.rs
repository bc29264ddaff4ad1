//! The install callback's metric lines (EMF), from the same scenarios the
//! behaviour tests run: installs counted by outcome, a failed install
//! written at once, malformed requests not counted as install failures,
//! and lifecycle events by event and outcome.

mod common;

use std::collections::BTreeMap;

use common::lifecycle::{Lifecycle, Setup};
use common::{Broker, Secrets};
use serde_json::Value;

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).expect("every metric line is JSON"))
        .collect()
}

/// The sum of `metric` over the lines, by the values of `dimensions`.
fn counts(lines: &[Value], metric: &str, dimensions: &[&str]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for line in lines.iter().filter(|line| line[metric].is_u64()) {
        assert_eq!(line["Service"], "install-callback");
        let key: Vec<&str> = dimensions
            .iter()
            .map(|name| line[*name].as_str().unwrap())
            .collect();
        *counts.entry(key.join(" ")).or_default() += line[metric].as_u64().unwrap();
    }
    counts
}

fn map<const N: usize>(entries: [(&str, u64); N]) -> BTreeMap<String, u64> {
    entries
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installs_and_their_failures_are_counted_by_outcome_and_code_as_each_request_ends() {
    let broker = Broker::start().await;
    let mut secrets = Secrets::default();
    common::install_then_reinstall(&broker, 910001, &mut secrets).await;
    let written = lines(&broker.metrics.text());
    assert_eq!(
        counts(&written, "Installs", &["Platform", "Outcome"]),
        map([("shoptet installed", 1), ("shoptet reinstalled", 1)]),
        "written by the requests themselves, no flush called"
    );

    common::malformed_codes(&broker, &mut secrets).await;
    common::upstream_faults(&broker, 910002, &mut secrets).await;
    let written = lines(&broker.metrics.text());
    assert_eq!(
        counts(&written, "InstallFailures", &["Platform", "Code"]),
        map([("shoptet upstream_unavailable", 4)]),
        "four upstream faults; the eight malformed codes were no install attempts"
    );
    assert!(
        written
            .iter()
            .filter(|line| line["InstallFailures"].is_u64())
            .all(|line| line["InstallFailures"] == 1),
        "each failure is its own line, written at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_events_are_counted_by_event_and_outcome() {
    // Signed, so the scenarios' genuine events are settled (see lifecycle.rs).
    let lifecycle = Lifecycle::start(Setup {
        webhook_key: true,
        ..Setup::default()
    })
    .await;
    let mut secrets = Secrets::default();
    common::lifecycle::uninstall_then_reinstall(&lifecycle, 910011, &mut secrets).await;
    let written = lines(&lifecycle.metrics.text());
    let events = counts(
        &written,
        "LifecycleEvents",
        &["Platform", "Event", "Outcome"],
    );
    assert_eq!(
        events.get("shoptet addon:uninstall processed"),
        Some(&1),
        "{events:?}"
    );
    assert!(
        written.iter().all(|line| line.get("Shop").is_none()),
        "no shop id is a dimension"
    );
}
