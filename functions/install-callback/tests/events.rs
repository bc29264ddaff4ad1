//! Lifecycle events, end to end in the emulator: the real install callback
//! and vendor change the registry (DynamoDB in moto, its stream on), the
//! real publisher handler publishes the stream's records to a bus of
//! moto's, and a rule on the bus feeds the queue these tests read, as a
//! subscriber would. Only the event source mapping's polling is played
//! (`test_support::events::RegistryStream`): moto runs no Lambda.

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::Secrets;
use common::events::{Pipeline, publisher_at, queued, webhook_publisher};
use common::lifecycle::{APP_SHOP, event, unix_now, vend};
use lambda_http::http::StatusCode;
use platform_double::InstallationState;
use serde_json::Value;
use test_support::LeakScanner;
use test_support::events::{
    Pumped, assert_valid_against_schemas, endpoint_answering, endpoint_never_answering,
};

fn kinds(details: &[Value]) -> Vec<&str> {
    details
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn install_suspend_approve_uninstall_and_reinstall_each_yield_exactly_one_event() {
    let pipeline = Pipeline::start().await;
    let broker = &pipeline.broker;
    let eshop = 770_001;
    let shop = eshop.to_string();
    let mut secrets = Secrets::default();
    let mut all = Vec::new();

    broker.install_shoptet(eshop, &mut secrets).await;
    let installed = pipeline.published().await;
    assert_eq!(kinds(&installed), ["installed"]);
    let first = &installed[0];
    assert_eq!(first["platform"], "shoptet");
    assert_eq!(first["shop"], shop);
    assert_eq!(first["sequence"], 1);
    assert_eq!(first["cause"], "platform_install");
    assert_eq!(first["reinstall"], false);
    assert!(
        first["shop_details"]["eshop_url"]
            .as_str()
            .unwrap()
            .starts_with("http")
    );
    all.extend(installed);

    let webhook = async |name: &str| {
        let (status, body) = broker.webhook(&event(eshop, name, SystemTime::now())).await;
        assert_eq!(
            (status, &body["status"]),
            (StatusCode::OK, &Value::from("processed")),
            "{name}"
        );
        pipeline.published().await
    };
    broker
        .double
        .set_installation_state(eshop, InstallationState::Suspended);
    let suspended = webhook("addon:suspend").await;
    assert_eq!(kinds(&suspended), ["suspended"]);
    assert_eq!(suspended[0]["platform_event"], "addon:suspend");
    assert_eq!(suspended[0]["cause"], "platform_webhook");
    all.extend(suspended);

    broker
        .double
        .set_installation_state(eshop, InstallationState::Active);
    let resumed = webhook("addon:approve").await;
    assert_eq!(kinds(&resumed), ["resumed"]);
    all.extend(resumed);

    broker.double.uninstall(eshop);
    let uninstalled = webhook("addon:uninstall").await;
    assert_eq!(kinds(&uninstalled), ["uninstalled"]);
    all.extend(uninstalled);

    broker.install_shoptet(eshop, &mut secrets).await;
    let reinstalled = pipeline.published().await;
    assert_eq!(kinds(&reinstalled), ["installed"]);
    assert_eq!(reinstalled[0]["reinstall"], true);
    all.extend(reinstalled);

    // The operator view says which event the shop is at.
    let (status, view) = broker
        .send(
            "GET",
            &format!("/installations/shoptet/{shop}"),
            lambda_http::Body::Empty,
        )
        .await;
    assert_eq!(
        (status, &view["last_event_sequence"]),
        (StatusCode::OK, &Value::from(5))
    );

    // Nothing more: one event per change, numbered 1..=5 for the shop.
    assert_eq!(pipeline.pump().await, Pumped::default());
    assert!(pipeline.delivered().await.is_empty());
    let sequences: Vec<u64> = all
        .iter()
        .map(|d| d["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(sequences, [1, 2, 3, 4, 5]);
    let ids: std::collections::HashSet<_> = all.iter().map(|d| d["id"].to_string()).collect();
    assert_eq!(ids.len(), 5);
    assert_valid_against_schemas(&all);

    // No code, token, key or signature in any event, nor in the publisher's
    // metric lines.
    let mut scanner = LeakScanner::new(secrets.values.clone());
    scanner.add(common::lifecycle::WEBHOOK_KEY);
    for signature in broker.signatures.lock().unwrap().iter() {
        scanner.add(signature.clone());
    }
    assert!(scanner.len() >= 5, "the scan has secrets to look for");
    scanner.assert_absent("the events", &serde_json::to_string(&all).unwrap());
    scanner.assert_absent("the publisher's metrics", &pipeline.metrics.text());
    assert_eq!(
        pipeline.metrics.metrics_moved(&["EventsPublished"]),
        [("EventsPublished", 5)]
    );

    // The example subscriber's tenant table, after these events and after
    // the same events delivered twice: the same, and right.
    let envelopes: Vec<Value> = all
        .iter()
        .map(|detail| {
            serde_json::json!({
                "id": "eb-envelope", "source": "shop-token-broker",
                "detail-type": "x", "detail": detail
            })
        })
        .collect();
    let once = subscriber_tenants(&envelopes, 1);
    let twice = subscriber_tenants(&envelopes, 2);
    assert_eq!(once, twice);
    let tenants: Value = serde_json::from_str(&once).unwrap();
    assert_eq!(tenants.as_array().unwrap().len(), 1, "{tenants}");
    assert_eq!(tenants[0]["shop"], shop);
    assert_eq!(tenants[0]["status"], "active");
    assert_eq!(tenants[0]["last_sequence"], 5);
}

/// Runs the example subscriber (`examples/subscriber`) on `envelopes`,
/// `times` over, against the emulator; its tenant items as JSON.
fn subscriber_tenants(envelopes: &[Value], times: u32) -> String {
    use test_support::events::{python, repo_root, tempfile_path};
    let file = tempfile_path("envelopes.json");
    std::fs::write(&file, serde_json::to_vec(envelopes).unwrap()).unwrap();
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("the emulator");
    let output = std::process::Command::new(python())
        .arg(repo_root().join("examples/subscriber/check.py"))
        .args(["--endpoint", &endpoint, "--events"])
        .arg(&file)
        .args(["--times", &times.to_string()])
        .output()
        .expect("running examples/subscriber/check.py");
    let _ = std::fs::remove_file(&file);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn an_uninstall_while_eventbridge_refuses_answers_as_before_and_its_event_arrives_once_after()
{
    let pipeline = Pipeline::start().await;
    let broker = &pipeline.broker;
    let eshop = 770_002;
    let mut secrets = Secrets::default();
    broker.install_shoptet(eshop, &mut secrets).await;
    assert_eq!(kinds(&pipeline.published().await), ["installed"]);

    broker.double.uninstall(eshop);
    let (status, body) = broker
        .webhook(&event(eshop, "addon:uninstall", SystemTime::now()))
        .await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::OK, &Value::from("processed"))
    );
    assert_eq!(
        broker
            .registry_status("shoptet", &eshop.to_string())
            .await
            .as_deref(),
        Some("uninstalled")
    );

    // EventBridge answers 500: the batch is reported failed, nothing is
    // published, and the mapping would retry from the uninstall's record.
    let (refusing, _) = publisher_at(&endpoint_answering(500).await, &pipeline.tap.bus).await;
    for _ in 0..2 {
        assert_eq!(
            pipeline.pump_with(&refusing).await,
            Pumped {
                handled: 0,
                stuck: true
            }
        );
    }
    assert!(pipeline.delivered().await.is_empty());

    // Back: exactly one uninstalled event, and nothing after it.
    let after = pipeline.published().await;
    assert_eq!(kinds(&after), ["uninstalled"]);
    assert_eq!(after[0]["sequence"], 2);
    assert_eq!(pipeline.pump().await, Pumped::default());
    assert!(pipeline.delivered().await.is_empty());
}

#[tokio::test]
async fn an_install_while_eventbridge_hangs_answers_within_shoptets_five_seconds_and_its_event_follows()
 {
    let pipeline = Pipeline::start().await;
    let broker = &pipeline.broker;
    let (hanging, hanging_metrics) =
        publisher_at(&endpoint_never_answering().await, &pipeline.tap.bus).await;
    let eshop = 770_003;
    let mut secrets = Secrets::default();
    // The publisher is mid-batch against a hanging EventBridge while the
    // install runs: the install neither waits for it nor notices it.
    let started = Instant::now();
    let (pumped, ()) = tokio::join!(pipeline.pump_with(&hanging), async {
        broker.install_shoptet(eshop, &mut secrets).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    });
    assert!(pumped.handled <= 1);
    // Whatever that batch held, the publish that hangs fails the batch; the
    // age of its oldest change was written before it, while it hung (what
    // the lag alarm watches, even for an invocation that never finishes).
    let written_before = hanging_metrics.text().len();
    let (stuck, age_written_while_hanging) = tokio::join!(pipeline.pump_with(&hanging), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        hanging_metrics.text()[written_before..].contains("OldestChangeAge")
    });
    assert!(stuck.stuck, "{stuck:?}");
    assert!(age_written_while_hanging, "{}", hanging_metrics.text());
    assert!(pipeline.delivered().await.is_empty());

    let after = pipeline.published().await;
    assert_eq!(kinds(&after), ["installed"]);
    assert_eq!(pipeline.pump().await, Pumped::default());
    assert!(pipeline.delivered().await.is_empty());
}

#[tokio::test]
async fn twenty_duplicate_uninstall_deliveries_at_once_produce_exactly_one_uninstalled_event() {
    let pipeline = Pipeline::start().await;
    let broker = &pipeline.broker;
    let eshop = 770_004;
    let mut secrets = Secrets::default();
    broker.install_shoptet(eshop, &mut secrets).await;
    assert_eq!(kinds(&pipeline.published().await), ["installed"]);

    broker.double.uninstall(eshop);
    let body = event(eshop, "addon:uninstall", SystemTime::now());
    let answers = futures_util::future::join_all((0..20).map(|_| broker.webhook(&body))).await;
    for (status, body) in &answers {
        assert_eq!(*status, StatusCode::OK, "{body}");
    }
    let processed = answers
        .iter()
        .filter(|(_, body)| body["status"] == "processed")
        .count();
    assert!(processed >= 1, "{answers:?}");

    let events = pipeline.published().await;
    assert_eq!(kinds(&events), ["uninstalled"], "{events:?}");
}

#[tokio::test]
async fn an_install_then_an_uninstall_within_a_second_produce_both_events_in_sequence_order() {
    let pipeline = Pipeline::start().await;
    let broker = &pipeline.broker;
    let eshop = 770_005;
    let mut secrets = Secrets::default();
    let started = Instant::now();
    broker.install_shoptet(eshop, &mut secrets).await;
    broker.double.uninstall(eshop);
    let (status, _) = broker
        .webhook(&event(eshop, "addon:uninstall", SystemTime::now()))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    let mut events = pipeline.published().await;
    events.sort_by_key(|e| e["sequence"].as_u64());
    assert_eq!(kinds(&events), ["installed", "uninstalled"]);
    assert_eq!(
        events
            .iter()
            .map(|e| e["sequence"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2]
    );
}

#[tokio::test]
async fn a_shop_whose_mints_are_refused_three_times_in_a_row_fails_once_and_recovers_once() {
    let pipeline = Pipeline::start().await;
    let broker = &pipeline.broker;
    let mut secrets = Secrets::default();
    let response = broker
        .shoprenter_redirect("install", APP_SHOP, unix_now(), "", None, &mut secrets)
        .await;
    assert!(response.status().is_success() || response.status().is_redirection());
    assert_eq!(kinds(&pipeline.published().await), ["installed"]);

    // The install's token is in the shared cache; without it every vend
    // of a new instance mints.
    aws_sdk_dynamodb::Client::new(&broker.aws)
        .delete_item()
        .table_name(&broker.table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("shoprenter#{APP_SHOP}")),
        )
        .send()
        .await
        .unwrap();
    // Shoprenter stops taking the app's credentials for the shop.
    broker.double.register_shoprenter_client(
        APP_SHOP,
        common::SHOPRENTER_CLIENT_ID,
        "a-secret-the-broker-does-not-have",
        &["product:read"],
    );
    // Each vend a new instance's, each one mint refused (invalid_client).
    for attempt in 1..=5 {
        let (status, body) = vend(&broker.vendor().await, "shoprenter", APP_SHOP).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "attempt {attempt}: {body}");
        assert_eq!(body["error"]["code"], "upstream_rejected");
    }
    let failing = pipeline.published().await;
    assert_eq!(kinds(&failing), ["minting_failing"]);
    assert_eq!(failing[0]["cause"], "vendor");
    assert_eq!(failing[0]["minting"]["error_code"], "upstream_rejected");
    assert_eq!(failing[0]["minting"]["consecutive_failures"], 3);

    // The credentials work again: the first success recovers, once.
    broker.double.register_shoprenter_client(
        APP_SHOP,
        common::SHOPRENTER_CLIENT_ID,
        common::SHOPRENTER_CLIENT_SECRET,
        &["product:read"],
    );
    for _ in 0..2 {
        let (status, body) = vend(&broker.vendor().await, "shoprenter", APP_SHOP).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        secrets
            .values
            .push(body["access_token"].as_str().unwrap().to_owned());
    }
    let recovered = pipeline.published().await;
    assert_eq!(kinds(&recovered), ["minting_recovered"]);
    assert_eq!(recovered[0]["minting"]["consecutive_failures"], 5);
    assert!(recovered[0]["minting"].get("error_code").is_none());
    let mut both = failing;
    both.extend(recovered);
    assert_valid_against_schemas(&both);
    LeakScanner::new(secrets.values)
        .assert_absent("the minting events", &serde_json::to_string(&both).unwrap());
}

#[tokio::test]
async fn queued_events_reach_the_endpoint_signed_byte_for_byte_and_a_refusal_is_retried() {
    use test_support::events::EventReceiver;
    let pipeline = Pipeline::start().await;
    let broker = &pipeline.broker;
    let mut secrets = Secrets::default();
    broker.install_shoptet(770_006, &mut secrets).await;
    pipeline.pump().await;
    let envelopes = pipeline.tap.drain().await;
    assert_eq!(envelopes.len(), 1);
    let secret = "endpoint-signing-secret-under-test";

    let endpoint = EventReceiver::start(200);
    let publisher = webhook_publisher(&pipeline.tap.bus, &broker.aws, &endpoint.url, secret);
    let answer = publisher.handle(queued(&envelopes)).await;
    assert!(answer.failures.is_empty(), "{answer:?}");
    let [delivery] = &endpoint.received()[..] else {
        panic!("one delivery: {:?}", endpoint.received());
    };
    let body: Value = serde_json::from_slice(&delivery.body).unwrap();
    assert_eq!(body, envelopes[0]["detail"]);
    assert_eq!(delivery.header("webhook-id"), body["id"]);
    assert_eq!(delivery.header("content-type"), "application/json");
    let check = |secret: &str, body: &[u8]| {
        broker_events::verify(
            &broker_domain::secret::EventSigningSecret::new(secret),
            delivery.header("webhook-id"),
            delivery.header("webhook-timestamp"),
            delivery.header("webhook-signature"),
            body,
            SystemTime::now(),
        )
    };
    assert_eq!(check(secret, &delivery.body), Ok(()));
    assert!(check("another-secret", &delivery.body).is_err());
    assert!(check(secret, br#"{"kind":"uninstalled"}"#).is_err());
    LeakScanner::new([secret]).assert_absent(
        "the delivery",
        &format!(
            "{:?}{}",
            delivery.headers,
            String::from_utf8_lossy(&delivery.body)
        ),
    );

    // An endpoint that refuses: the message is reported for a retry.
    let refusing = EventReceiver::start(503);
    let publisher = webhook_publisher(&pipeline.tap.bus, &broker.aws, &refusing.url, secret);
    let answer = publisher.handle(queued(&envelopes)).await;
    assert_eq!(
        serde_json::to_value(&answer).unwrap(),
        serde_json::json!({"batchItemFailures": [{"itemIdentifier": "message-0"}]})
    );
    assert_eq!(refusing.received().len(), 1);
}
