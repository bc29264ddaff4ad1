//! What moves the install callback's alarmed metrics (template.yaml,
//! docs/runbooks.md): anonymous junk on the install routes is an
//! `InstallRejects`, which pages no one; an install a platform started and
//! our side failed is an `InstallFailures`; a store fault, and an
//! invocation still running at its deadline, move theirs.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::Broker;
use lambda_http::http::Request;
use lambda_http::lambda_runtime::Context;
use lambda_http::{Body, RequestExt};
use test_support::CapturedLogs;

const ALARMED: [&str; 5] = [
    "InstallFailures",
    "MintFailures",
    "StoreErrors",
    "Crashes",
    "Timeouts",
];

fn alarmed(out: &CapturedLogs) -> Vec<(&'static str, u64)> {
    out.metrics_moved(&ALARMED)
}

fn total(out: &CapturedLogs, metric: &'static str) -> u64 {
    out.metrics_moved(&[metric]).first().map_or(0, |(_, n)| *n)
}

#[tokio::test]
async fn anonymous_junk_on_both_install_routes_is_a_reject_and_moves_no_alarmed_metric() {
    let broker = Broker::start().await;
    for junk in [
        // A code Shoptet's OAuth server does not know: invalid_grant.
        "/shoptet/install?code=x",
        "/shoptet/install",
        "/shoprenter/install?shopname=a&hmac=00",
        "/shoprenter/install?shopname=a&code=b&timestamp=1&hmac=00",
    ] {
        let request = Request::builder()
            .uri(format!("https://broker.example{junk}"))
            .header("accept", "application/json")
            .body(Body::Empty)
            .unwrap();
        let status = broker.handler.handle(request).await.status();
        assert!(!status.is_success(), "{junk}: {status}");
    }
    assert_eq!(
        total(&broker.metrics, "InstallRejects"),
        4,
        "{}",
        broker.metrics.text()
    );
    assert_eq!(alarmed(&broker.metrics), []);
}

#[tokio::test]
async fn shoptet_refusing_our_client_credentials_is_a_failed_install() {
    let broker = Broker::start_with_env(&[("SHOPTET_CLIENT_ID", "not-our-client")]).await;
    let code = broker.double.issue_install_code(51);

    let (_, body) = broker.get(&format!("/shoptet/install?code={code}")).await;

    assert_eq!(body["error"]["upstream_code"], "invalid_client", "{body}");
    assert_eq!(alarmed(&broker.metrics), [("InstallFailures", 1)]);
    assert_eq!(total(&broker.metrics, "InstallRejects"), 0);
}

#[tokio::test]
async fn a_redirect_uri_other_than_the_registered_one_is_a_failed_install() {
    let broker =
        Broker::start_with_env(&[("SHOPTET_REDIRECT_URI", "https://elsewhere.example/install")])
            .await;
    let code = broker.double.issue_install_code(52);

    broker.get(&format!("/shoptet/install?code={code}")).await;

    assert_eq!(alarmed(&broker.metrics), [("InstallFailures", 1)]);
}

#[tokio::test]
async fn a_store_fault_during_a_genuine_install_moves_install_failures_and_store_errors() {
    let aws = test_support::emulator_sdk_config().await;
    let store = test_support::sdk_config_for_endpoint(&test_support::unreachable_endpoint()).await;
    let broker = Broker::start_with_store(aws, store).await;
    let code = broker.double.issue_install_code(53);

    let (_, body) = broker.get(&format!("/shoptet/install?code={code}")).await;

    assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
    assert_eq!(
        alarmed(&broker.metrics),
        [("InstallFailures", 1), ("StoreErrors", 1)]
    );
}

#[tokio::test]
async fn an_invocation_still_running_at_its_lambda_deadline_moves_timeouts() {
    let broker = Broker::start().await;
    let code = broker.double.issue_install_code(54);
    let mut context = Context::default();
    context.deadline = (SystemTime::now() + Duration::from_millis(50))
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let request = Request::builder()
        .uri(format!(
            "https://broker.example/shoptet/install?code={code}"
        ))
        .body(Body::Empty)
        .unwrap()
        .with_lambda_context(context);

    // A genuine install: it waits on Shoptet's OAuth server and the store.
    let answer = broker.handler.handle(request).await;

    assert!(answer.status().is_success(), "it still answers");
    assert_eq!(alarmed(&broker.metrics), [("Timeouts", 1)]);
}
