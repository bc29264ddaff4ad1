//! Vends tokens through every path (mint, L1, L2, stale replacement, cap,
//! failures, Shoprenter, direct invocation) with all logs captured at TRACE
//! level, and the instance's metric lines (EMF) beside them, and finds no API
//! token, OAuth access token or client secret in them.

mod common;

use std::sync::Arc;

use broker_domain::secret::ExposeSecret;
use broker_runtime::metrics::{Metrics, Service};
use common::{Fleet, http, request, shoptet, vend};
use platform_double::{DoubleConfig, Endpoint, Fault};
use serde_json::json;
use token_vendor::VendRequest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_or_secret_reaches_a_log_line() {
    let captured = test_support::CapturedLogs::default();
    let writer = captured.clone();
    // Everything at TRACE, through the same filter the functions install.
    let subscriber =
        broker_runtime::logging::subscriber(move || writer.clone(), "trace", false, false);
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let fleet = Fleet::start_with(
        DoubleConfig {
            api_token_lifetime: std::time::Duration::from_secs(1000),
            ..DoubleConfig::default()
        },
        &[],
    )
    .await;
    let mut secrets = vec![
        common::APP_CLIENT_SECRET.to_owned(),
        "own-secret-0123456789".to_owned(),
    ];
    fleet.install_shoptet(11).await;
    secrets.push(fleet.double.oauth_access_token(11).unwrap());
    fleet.double.register_shoprenter_client(
        "log-shop",
        "own-client",
        "own-secret-0123456789",
        &["product:read"],
    );
    fleet
        .store_shoprenter_credentials("log-shop", "own-client", "own-secret-0123456789")
        .await;
    // Metric lines into the same capture, written at every request.
    let metrics = Metrics::new(Service::TokenVendor, "LeakTest", captured.clone())
        .with_flush_interval(std::time::Duration::ZERO);
    let instance = fleet.instance().await.with_metrics(Arc::new(metrics));
    let shop = shoptet(11);

    let minted = vend(&instance, &request(&shop)).await.unwrap();
    vend(&instance, &request(&shop)).await.unwrap();
    vend(&fleet.instance().await, &request(&shop))
        .await
        .unwrap();
    let replaced = vend(
        &instance,
        &VendRequest {
            stale_token: Some(minted.token.access_token.clone()),
            ..request(&shop)
        },
    )
    .await
    .unwrap();
    for _ in 0..6 {
        let (_, _, body) = http(
            &instance,
            "POST",
            "/tokens/shoptet/11",
            Some(json!({"min_ttl_seconds": 1200})),
        )
        .await;
        if let Some(token) = body["access_token"].as_str() {
            secrets.push(token.to_owned());
        }
    }
    let (_, _, shoprenter) = http(&instance, "GET", "/tokens/shoprenter/log-shop", None).await;
    secrets.push(shoprenter["access_token"].as_str().unwrap().to_owned());
    fleet
        .double
        .inject(Some(Endpoint::ShoprenterToken), Fault::ServerError(503), 1);
    fleet
        .store_shoprenter_credentials("log-shop-2", "own-client", "own-secret-0123456789")
        .await;
    http(&instance, "GET", "/tokens/shoprenter/log-shop-2", None).await;
    let payload = json!({"platform": "shoptet", "shop": "11", "stale_token": replaced.token.access_token.expose_secret()});
    instance
        .handle(lambda_http::request::from_str(&payload.to_string()).unwrap())
        .await
        .unwrap();
    secrets.push(minted.token.access_token.expose_secret().to_owned());
    secrets.push(replaced.token.access_token.expose_secret().to_owned());

    let logs = captured.text();
    assert!(logs.contains("token vended"), "the capture works");
    assert!(
        logs.contains("\"Vends\"") && logs.contains("\"MintFailures\""),
        "metric lines are captured and scanned too"
    );
    test_support::LeakScanner::new(secrets).assert_absent("the logs", &logs);
}
