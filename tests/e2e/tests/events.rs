//! The event publisher's real bootstrap under `cargo lambda watch`: the
//! registry's stream of this pass (every change the other checks made) is
//! read as Lambda's event source mapping reads it and handed, batch by
//! batch, to the `event-publisher` binary through the watch server's
//! Lambda Invoke API; a rule on the pass's bus (`EVENT_BUS_NAME`) feeds a
//! queue, where every event arrives once, valid against its schema. The
//! publisher's log lines are in the watch log the leak scan reads next.

use broker_e2e::required;
use serde_json::Value;
use test_support::events::{BusTap, RegistryStream, assert_valid_against_schemas};

#[tokio::test]
async fn the_publisher_binary_puts_every_committed_change_of_the_pass_on_the_bus_once() {
    let watch = required("E2E_WATCH_URL");
    let table = required("E2E_REGISTRY_TABLE");
    let bus = required("E2E_EVENT_BUS");
    let aws = test_support::emulator_sdk_config().await;
    let tap = BusTap::on(&aws, &bus).await;
    let mut stream = RegistryStream::open(&aws, &table).await;
    let http = reqwest::Client::new();
    let url = format!("{watch}/2015-03-31/functions/event-publisher/invocations");

    let pumped = stream
        .pump(25, |batch| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let response = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(batch.to_string())
                    .send()
                    .await
                    .expect("invoking event-publisher through the watch server");
                let status = response.status();
                let answer: Value = response.json().await.expect("the publisher's answer");
                assert!(
                    status.is_success(),
                    "event-publisher answered {status}: {answer}"
                );
                answer
            }
        })
        .await;
    assert!(
        !pumped.stuck,
        "the publisher reported a failure: {pumped:?}"
    );
    assert!(pumped.handled > 0, "the pass's checks changed the registry");

    let details: Vec<Value> = tap
        .drain()
        .await
        .into_iter()
        .map(|envelope| envelope["detail"].clone())
        .collect();
    let kinds: Vec<&str> = details.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert!(kinds.contains(&"installed"), "{kinds:?}");
    assert!(kinds.contains(&"uninstalled"), "{kinds:?}");
    let ids: std::collections::HashSet<&str> =
        details.iter().filter_map(|d| d["id"].as_str()).collect();
    assert_eq!(ids.len(), details.len(), "each event once");
    // Per shop, the sequence numbers arrive without a repeat.
    let mut numbered: Vec<(String, u64)> = details
        .iter()
        .map(|d| {
            (
                format!("{}#{}", d["platform"], d["shop"]),
                d["sequence"].as_u64().unwrap(),
            )
        })
        .collect();
    let before = numbered.len();
    numbered.sort();
    numbered.dedup();
    assert_eq!(numbered.len(), before);
    assert_valid_against_schemas(&details);
    println!(
        "e2e events: {} stream records, {} events: {kinds:?}",
        pumped.handled,
        details.len()
    );
}
