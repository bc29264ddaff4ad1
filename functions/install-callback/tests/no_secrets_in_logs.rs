//! Runs every install scenario with all logs captured at TRACE level (ours,
//! the AWS SDK's, the HTTP stack's) and finds no code, OAuth access token,
//! API token, client secret, webhook signature key, webhook signature or
//! Shoprenter hmac in any log line, metric line or response body.

mod common;

use common::lifecycle::{Lifecycle, Setup, WEBHOOK_KEY};
use common::{Broker, Secrets};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_log_line_or_a_response_body() {
    let captured = test_support::CapturedLogs::default();
    let writer = captured.clone();
    // Everything at TRACE, through the same filter the functions install.
    let subscriber =
        broker_runtime::logging::subscriber(move || writer.clone(), "trace", false, false);
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

    // The lifecycle, with signed webhooks and Shoprenter's signed redirects.
    let lifecycle = Lifecycle::start(Setup {
        webhook_key: true,
        ..Setup::default()
    })
    .await;
    secrets.values.push(WEBHOOK_KEY.to_owned());
    common::lifecycle::uninstall_then_reinstall(&lifecycle, 900011, &mut secrets).await;
    common::lifecycle::suspend_then_approve(&lifecycle, 900012, &mut secrets).await;
    common::lifecycle::shoprenter_app_install_then_uninstall(&lifecycle, &mut secrets).await;
    let signatures = lifecycle.signatures.lock().unwrap().clone();
    assert!(signatures.len() >= 3, "webhooks were signed");
    secrets.values.extend(signatures);

    // The events' path: the publisher's stream batch, its PutEvents, and a
    // signed delivery to an endpoint (the signing secret, the signature).
    let pipeline = common::events::Pipeline::start().await;
    pipeline.broker.install_shoptet(900021, &mut secrets).await;
    pipeline.pump().await;
    let envelopes = pipeline.tap.drain().await;
    assert_eq!(envelopes.len(), 1, "the install's event was published");
    let endpoint = test_support::events::EventReceiver::start(200);
    let signing_secret = "events-signing-secret-in-the-log-scan";
    let webhook = common::events::webhook_publisher(
        &pipeline.tap.bus,
        &pipeline.broker.aws,
        &endpoint.url,
        signing_secret,
    );
    let answer = webhook.handle(common::events::queued(&envelopes)).await;
    assert!(answer.failures.is_empty(), "{answer:?}");
    secrets.values.push(signing_secret.to_owned());
    for delivery in endpoint.received() {
        secrets
            .values
            .push(delivery.header("webhook-signature").to_owned());
    }

    // E-shop webhooks: registration (the installation's signature key),
    // a signed delivery, a forged one, and a reconciliation run.
    let eshop = common::eshop::EshopPipeline::start(common::eshop::StoreKind::SecretsManager).await;
    eshop.install_shop(900031).await;
    eshop.register_from_bus().await;
    let report = eshop.double.place_order(900031).await;
    secrets
        .values
        .push(eshop.double.webhook_signature_key(900031).unwrap());
    secrets
        .values
        .push(eshop.double.oauth_access_token(900031).unwrap());
    secrets.values.push(
        report.notifications[0].attempts[0]
            .signature
            .clone()
            .unwrap(),
    );
    let forged = eshop
        .deliver_cold(
            "0123456789abcdef0123456789abcdef01234567",
            &report.notifications[0].body_text(),
        )
        .await;
    assert_eq!(forged, 401);
    eshop.invoke(serde_json::json!({"reconcile_all": {}})).await;
    eshop.work_off_queue().await;
    let eshop_events = serde_json::to_string(&eshop.take_all().await).unwrap();
    assert!(
        eshop_events.contains("Shoptet Webhook"),
        "the events are scanned"
    );

    let logs = captured.text();
    assert!(
        logs.contains("event published"),
        "the publisher's logs are scanned"
    );
    assert!(logs.contains("installation stored"), "the capture works");
    assert!(
        logs.contains("add-on event handled"),
        "lifecycle events are logged"
    );
    assert!(secrets.values.len() >= 10, "scenarios handled secrets");
    let scanner = test_support::LeakScanner::new(secrets.values.iter().cloned());
    scanner.assert_absent("the logs", &logs);
    let metric_lines = broker.metrics.text() + &lifecycle.metrics.text();
    assert!(
        metric_lines.contains("\"Installs\"") && metric_lines.contains("\"LifecycleEvents\""),
        "the metric capture works"
    );
    scanner.assert_absent("the metric lines", &metric_lines);
    assert!(
        logs.contains("e-shop webhook received") && logs.contains("e-shop webhooks registered"),
        "the e-shop webhooks' logs are scanned"
    );
    scanner.assert_absent("the e-shop webhook events", &eshop_events);
    scanner.assert_absent(
        "the e-shop webhooks' metric lines",
        &(eshop.metrics.text() + &eshop.worker_metrics.text()),
    );
    for body in &secrets.bodies {
        scanner.assert_absent("a response body", body);
    }
}
