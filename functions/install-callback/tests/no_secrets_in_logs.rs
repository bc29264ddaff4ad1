//! Runs every install scenario with all logs captured at TRACE level (ours,
//! the AWS SDK's, the HTTP stack's) and finds no code, OAuth access token,
//! API token or client secret in any log line or response body.

mod common;

use common::{Broker, Secrets};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_log_line_or_a_response_body() {
    let captured = test_support::CapturedLogs::default();
    let writer = captured.clone();
    // Everything at TRACE, through the same filter the functions install.
    let subscriber =
        broker_shared::logging::subscriber(move || writer.clone(), "trace", false, false);
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let broker = Broker::start().await;
    let mut secrets = Secrets::default();
    secrets.values.push(
        broker
            .double
            .config()
            .shoptet_client_secret
            .clone()
            .unwrap(),
    );
    common::install_then_reinstall(&broker, 900001, &mut secrets).await;
    common::code_used_twice(&broker, 900002, &mut secrets).await;
    common::malformed_codes(&broker, &mut secrets).await;
    common::upstream_faults(&broker, 900003, &mut secrets).await;
    common::shoprenter_credentials(&broker, &mut secrets).await;

    let logs = captured.text();
    assert!(logs.contains("installation stored"), "the capture works");
    assert!(secrets.values.len() >= 10, "scenarios handled secrets");
    let scanner = test_support::LeakScanner::new(secrets.values.iter().cloned());
    scanner.assert_absent("the logs", &logs);
    for body in &secrets.bodies {
        scanner.assert_absent("a response body", body);
    }
}
