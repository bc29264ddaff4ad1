//! What moves the metrics the alarms watch (template.yaml, docs/runbooks.md):
//! refusals the vendor answers on purpose, over HTTP and over direct
//! invocation, move none of them; a store fault, an upstream fault and an
//! invocation still running at its deadline each move theirs. Lines are
//! read as Lambda would deliver them at every allowed `LogLevel`.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use broker_runtime::metrics::{Metrics, Service};
use common::{Fleet, http};
use lambda_http::RequestExt;
use lambda_http::lambda_runtime::Context;
use platform_double::{Endpoint, Fault, InstallationState};
use serde_json::{Value, json};
use test_support::CapturedLogs;
use token_vendor::AwsVendHandler;

/// The metrics an alarm watches on the vendor.
const ALARMED: [&str; 5] = [
    "MintFailures",
    "CapRefusals",
    "StoreErrors",
    "Crashes",
    "Timeouts",
];

/// An instance whose metric lines go to a buffer, flushed at every request.
async fn observed(fleet: &Fleet) -> (AwsVendHandler, CapturedLogs) {
    let out = CapturedLogs::default();
    let metrics =
        Metrics::new(Service::TokenVendor, "Test", out.clone()).with_flush_interval(Duration::ZERO);
    let instance = fleet.instance().await.with_metrics(Arc::new(metrics));
    (instance, out)
}

fn alarmed(out: &CapturedLogs) -> Vec<(&'static str, u64)> {
    out.metrics_moved(&ALARMED)
}

fn total(out: &CapturedLogs, metric: &'static str) -> u64 {
    out.metrics_moved(&[metric]).first().map_or(0, |(_, n)| *n)
}

async fn direct(instance: &AwsVendHandler, payload: Value) -> Result<(), String> {
    let request = lambda_http::request::from_str(&payload.to_string()).unwrap();
    instance
        .handle(request)
        .await
        .map(drop)
        .map_err(|error| token_vendor::diagnostic(error).error_type)
}

#[tokio::test]
async fn refusals_answered_on_purpose_over_http_and_direct_invocation_move_no_alarmed_metric() {
    let fleet = Fleet::start().await;
    fleet.install_shoptet(31).await;
    fleet.install_shoptet(32).await;
    fleet
        .double
        .set_installation_state(31, InstallationState::Suspended);
    let (instance, out) = observed(&fleet).await;

    // not_installed, invalid_request, addon_suspended, each both ways.
    for (shop, code) in [
        ("30", "not_installed"),
        ("x", "invalid_request"),
        ("31", "addon_suspended"),
    ] {
        let payload = json!({"platform": "shoptet", "shop": shop});
        assert_eq!(direct(&instance, payload).await, Err(code.to_owned()));
        let (_, _, body) = http(&instance, "GET", &format!("/tokens/shoptet/{shop}"), None).await;
        assert_eq!(body["error"]["code"], code);
    }
    assert_eq!(
        direct(&instance, json!({"shop": "1"})).await,
        Err("invalid_request".to_owned())
    );
    // The platform's own rate limit, passed on with its retry time.
    fleet.double.inject(
        Some(Endpoint::ShoptetGetAccessToken),
        Fault::RateLimited {
            retry_after_secs: 5,
        },
        2,
    );
    let payload = json!({"platform": "shoptet", "shop": "32"});
    assert_eq!(
        direct(&instance, payload).await,
        Err("rate_limited".to_owned())
    );
    let (_, _, body) = http(&instance, "GET", "/tokens/shoptet/32", None).await;
    assert_eq!(body["error"]["code"], "rate_limited");

    assert_eq!(
        total(&out, "VendErrors"),
        9,
        "every refusal is counted by code"
    );
    assert_eq!(alarmed(&out), [], "and none moves an alarm");
}

#[tokio::test]
async fn an_upstream_fault_moves_mint_failures_and_nothing_else() {
    let fleet = Fleet::start().await;
    fleet.install_shoptet(33).await;
    let (instance, out) = observed(&fleet).await;
    fleet.double.inject(
        Some(Endpoint::ShoptetGetAccessToken),
        Fault::ServerError(502),
        1,
    );

    let payload = json!({"platform": "shoptet", "shop": "33"});
    assert_eq!(
        direct(&instance, payload).await,
        Err("upstream_unavailable".to_owned())
    );

    assert_eq!(alarmed(&out), [("MintFailures", 1)]);
}

#[tokio::test]
async fn a_store_fault_moves_store_errors() {
    let mut fleet = Fleet::start().await;
    fleet.install_shoptet(34).await;
    fleet.store_aws =
        test_support::sdk_config_for_endpoint(&test_support::unreachable_endpoint()).await;
    fleet.env.remove("SHOPRENTER_CLIENT_ID");
    fleet.env.remove("SHOPRENTER_CLIENT_SECRET_ID");
    let (instance, out) = observed(&fleet).await;

    let (_, _, body) = http(&instance, "GET", "/tokens/shoptet/34", None).await;
    assert_eq!(body["error"]["code"], "store_unavailable");
    let payload = json!({"platform": "shoptet", "shop": "34"});
    assert_eq!(
        direct(&instance, payload).await,
        Err("store_unavailable".to_owned())
    );

    assert!(total(&out, "StoreErrors") >= 2, "{}", out.text());
    assert_eq!(total(&out, "Crashes") + total(&out, "Timeouts"), 0);
}

#[tokio::test]
async fn an_invocation_still_running_at_its_lambda_deadline_moves_timeouts() {
    let fleet = Fleet::start().await;
    fleet.install_shoptet(35).await;
    let (instance, out) = observed(&fleet).await;
    // Lambda's deadline already inside the margin: Lambda would stop this
    // invocation before it answers.
    let mut context = Context::default();
    context.deadline = (SystemTime::now() + Duration::from_millis(50))
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let payload = json!({"platform": "shoptet", "shop": "35"}).to_string();
    let request = lambda_http::request::from_str(&payload)
        .unwrap()
        .with_lambda_context(context);

    instance.handle(request).await.unwrap();

    assert_eq!(alarmed(&out), [("Timeouts", 1)]);
}

/// Lambda's documented filter: a JSON line's `level` against the
/// `ApplicationLogLevel`; a line without a valid one counts as INFO.
fn lambda_delivers(line: &str, application_level: &str) -> bool {
    const LEVELS: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
    let rank = |level: &str| LEVELS.iter().position(|l| l.eq_ignore_ascii_case(level));
    let level = serde_json::from_str::<Value>(line)
        .ok()
        .and_then(|line| line["level"].as_str().and_then(rank))
        .unwrap_or(2);
    level >= rank(application_level).unwrap()
}

#[tokio::test]
async fn at_every_allowed_log_level_lambda_delivers_the_mints_vends_and_vend_errors() {
    let fleet = Fleet::start().await;
    for (eshop_id, level) in (40..).zip(["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]) {
        // A shop of its own: the first vend mints.
        fleet.install_shoptet(eshop_id).await;
        // The function's stdout: its JSON log lines (at the level Lambda
        // sets in AWS_LAMBDA_LOG_LEVEL) and its metric lines, interleaved.
        let stdout = CapturedLogs::default();
        let writer = stdout.clone();
        let logs = broker_runtime::logging::subscriber(
            move || writer.clone(),
            &level.to_ascii_lowercase(),
            true,
            false,
        );
        let metrics = Metrics::new(Service::TokenVendor, "Test", stdout.clone());
        let instance = fleet.instance().await.with_metrics(Arc::new(metrics));
        {
            let _guard = tracing::subscriber::set_default(logs);
            let minted = json!({"platform": "shoptet", "shop": eshop_id.to_string()});
            assert_eq!(direct(&instance, minted).await, Ok(()));
            let refused = json!({"platform": "shoptet", "shop": "39"});
            assert_eq!(
                direct(&instance, refused).await,
                Err("not_installed".to_owned())
            );
            instance.metrics().flush();
        }
        let delivered: Vec<Value> = stdout
            .text()
            .lines()
            .filter(|line| lambda_delivers(line, level))
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        for metric in ["Mints", "Vends", "VendErrors"] {
            assert!(
                delivered.iter().any(|line| line[metric].is_u64()),
                "LogLevel={level}: no {metric} reaches CloudWatch"
            );
        }
    }
}
