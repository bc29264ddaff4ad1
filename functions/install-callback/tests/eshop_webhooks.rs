//! Shoptet e-shop webhooks through the real handlers, on moto and the
//! platform double: an install registers the configured events and keeps
//! the key (on both installation stores); the double's signed deliveries
//! reach a subscriber's queue on the bus once; forgeries forward nothing;
//! what the route missed is reconciled once; a reinstall re-registers.

mod common;

use std::time::{Duration, Instant};

use common::eshop::{EVENTS, EshopPipeline, StoreKind};
use platform_double::{Endpoint, Fault};
use serde_json::Value;

const ESHOP: u64 = 510001;

fn configured_events() -> Vec<String> {
    let mut events: Vec<String> = EVENTS.split(',').map(str::to_owned).collect();
    events.sort();
    events
}

fn registered(pipeline: &EshopPipeline, eshop: u64) -> Vec<(String, String)> {
    let mut webhooks: Vec<_> = pipeline
        .double
        .webhooks(eshop)
        .into_iter()
        .map(|w| (w.event, w.url))
        .collect();
    webhooks.sort();
    webhooks
}

async fn post(url: &str, signature: Option<&str>, body: &[u8]) -> u16 {
    let mut request = reqwest::Client::new().post(url).body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header("Shoptet-Webhook-Signature", signature);
    }
    request.send().await.unwrap().status().as_u16()
}

fn sign(key: &str, body: &[u8]) -> String {
    broker_platforms::shoptet_eshop_webhooks::sign(
        &broker_domain::secret::EshopSignatureKey::new(key),
        body,
    )
}

async fn install_registers_and_keeps_the_key(kind: StoreKind) {
    let pipeline = EshopPipeline::start(kind).await;

    pipeline.install_shop(ESHOP).await;
    let answer = pipeline.register_from_bus().await;

    assert_eq!(answer["batchItemFailures"], serde_json::json!([]));
    let expected: Vec<(String, String)> = configured_events()
        .into_iter()
        .map(|event| (event, pipeline.route.url.clone()))
        .collect();
    assert_eq!(registered(&pipeline, ESHOP), expected);
    let key = pipeline.double.webhook_signature_key(ESHOP).unwrap();
    assert_eq!(
        pipeline.stored_key(ESHOP).await.as_deref(),
        Some(key.as_str())
    );
    let announced = pipeline.take(&["Shoptet Webhooks Registered"]).await;
    assert_eq!(announced.len(), 1);
    assert_eq!(announced[0]["detail"]["key_renewed"], true);
    test_support::events::assert_valid_against_schemas(&[announced[0]["detail"].clone()]);
    // The key is in no answer, metric line or event.
    let everything = pipeline.take_all().await;
    let scanner = test_support::LeakScanner::new([key]);
    scanner.assert_absent("the worker's answer", &answer.to_string());
    scanner.assert_absent("the events", &serde_json::to_string(&announced).unwrap());
    scanner.assert_absent(
        "the other events",
        &serde_json::to_string(&everything).unwrap(),
    );
    scanner.assert_absent("the install callback's metrics", &pipeline.metrics.text());
    scanner.assert_absent("the worker's metrics", &pipeline.worker_metrics.text());
    assert!(
        pipeline
            .worker_metrics
            .text()
            .contains("\"WebhookRegistrations\"")
    );
}

#[tokio::test]
async fn an_install_registers_exactly_the_configured_events_and_keeps_the_key_in_secrets_manager() {
    install_registers_and_keeps_the_key(StoreKind::SecretsManager).await;
}

#[tokio::test]
async fn an_install_registers_exactly_the_configured_events_and_keeps_the_key_in_the_dynamodb_store()
 {
    install_registers_and_keeps_the_key(StoreKind::DynamoDb).await;
}

#[tokio::test]
async fn a_signed_delivery_yields_one_event_carrying_the_body_byte_for_byte_and_retries_none() {
    let pipeline = EshopPipeline::start(StoreKind::SecretsManager).await;
    pipeline.install_shop(ESHOP).await;
    pipeline.register_from_bus().await;

    let report = pipeline.double.place_order(ESHOP).await;
    let notification = &report.notifications[0];
    assert!(notification.attempts[0].succeeded(), "{notification:?}");
    let forwarded = pipeline.forwarded().await;

    assert_eq!(forwarded.len(), 1);
    assert_eq!(
        forwarded[0]["body"].as_str().unwrap().as_bytes(),
        &notification.body[..]
    );
    assert_eq!(forwarded[0]["event"], "order:create");
    assert_eq!(forwarded[0]["shop"], ESHOP.to_string());
    assert_eq!(forwarded[0]["delivery"], "live");
    test_support::events::assert_valid_against_schemas(&forwarded);

    // The platform's retries of the same notification: the same bytes,
    // the same signature, twice more.
    let signature = notification.attempts[0].signature.clone().unwrap();
    for _ in 0..2 {
        assert_eq!(
            post(&pipeline.route.url, Some(&signature), &notification.body).await,
            200
        );
    }
    assert!(
        pipeline.forwarded().await.is_empty(),
        "retries forward nothing"
    );
    assert!(
        pipeline
            .metrics
            .text()
            .contains("\"EshopWebhookDuplicates\"")
    );
}

#[tokio::test]
async fn the_platform_delivering_one_notification_three_times_yields_one_event() {
    let pipeline = EshopPipeline::start(StoreKind::SecretsManager).await;
    pipeline.install_shop(ESHOP).await;
    pipeline.register_from_bus().await;
    // The broker takes the first two attempts, but Shoptet never hears so.
    pipeline.route.lose_answers(2);

    let report = pipeline.double.place_order(ESHOP).await;
    let forwarded = pipeline.forwarded().await;

    let attempts = &report.notifications[0].attempts;
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    assert!(attempts[2].succeeded());
    assert_eq!(forwarded.len(), 1);
    assert_eq!(
        forwarded[0]["body"].as_str().unwrap().as_bytes(),
        &report.notifications[0].body[..]
    );
    let duplicates = pipeline
        .metrics
        .metrics_moved(&["EshopWebhookDuplicates", "EshopWebhooksForwarded"]);
    assert_eq!(
        duplicates,
        [("EshopWebhookDuplicates", 2), ("EshopWebhooksForwarded", 1)]
    );
}

#[tokio::test]
async fn forged_replayed_and_oversized_deliveries_are_refused_and_forward_nothing() {
    let pipeline = EshopPipeline::start(StoreKind::SecretsManager).await;
    let other = ESHOP + 1;
    pipeline.install_shop(ESHOP).await;
    pipeline.install_shop(other).await;
    pipeline.register_from_bus().await;
    let key = pipeline.double.webhook_signature_key(ESHOP).unwrap();
    let others_key = pipeline.double.webhook_signature_key(other).unwrap();
    let body = format!(
        r#"{{"eshopId":{ESHOP},"event":"order:create","eventCreated":"2026-12-06T10:00:00+0100","eventInstance":"2026000001"}}"#
    );
    let for_other = body.replace(&ESHOP.to_string(), &other.to_string());
    let oversized = body.replacen('{', &format!(r#"{{"pad":"{}","#, "x".repeat(210 * 1024)), 1);
    let url = &pipeline.route.url;

    let statuses = [
        post(
            url,
            Some(&sign("not-the-key", body.as_bytes())),
            body.as_bytes(),
        )
        .await,
        post(
            url,
            Some(&sign(&others_key, body.as_bytes())),
            body.as_bytes(),
        )
        .await,
        // A genuine delivery's signature, its body claiming the other shop.
        post(
            url,
            Some(&sign(&key, body.as_bytes())),
            for_other.as_bytes(),
        )
        .await,
        post(url, None, body.as_bytes()).await,
        post(
            url,
            Some(&sign(&key, oversized.as_bytes())),
            oversized.as_bytes(),
        )
        .await,
    ];

    assert_eq!(statuses, [401, 401, 401, 401, 400]);
    assert!(pipeline.forwarded().await.is_empty());
    assert!(pipeline.metrics.text().contains("\"EshopWebhookRejects\""));
}

#[tokio::test]
async fn deliveries_missed_while_the_route_was_down_are_reconciled_once_and_not_again() {
    let pipeline = EshopPipeline::start(StoreKind::SecretsManager).await;
    pipeline.install_shop(ESHOP).await;
    pipeline.register_from_bus().await;
    pipeline.route.set_up(false);
    let missed = [
        pipeline.double.place_order(ESHOP).await,
        pipeline.double.place_order(ESHOP).await,
    ];
    for report in &missed {
        assert_eq!(
            report.notifications[0].attempts.len(),
            3,
            "Shoptet tried three times"
        );
    }
    pipeline.route.set_up(true);

    pipeline
        .invoke(serde_json::json!({"reconcile_all": {}}))
        .await;
    let first_run = pipeline.work_off_queue().await;
    let forwarded = pipeline.forwarded().await;
    pipeline
        .invoke(serde_json::json!({"reconcile_all": {}}))
        .await;
    pipeline.work_off_queue().await;
    let second = pipeline.forwarded().await;

    assert_eq!(forwarded.len(), 2, "{first_run:?}");
    let mut instances: Vec<&str> = forwarded
        .iter()
        .map(|e| e["event_instance"].as_str().unwrap())
        .collect();
    instances.sort();
    let mut expected: Vec<&str> = missed.iter().map(|r| r.event_instance.as_str()).collect();
    expected.sort();
    assert_eq!(instances, expected);
    for event in &forwarded {
        assert_eq!(event["delivery"], "reconciliation");
        let missed_body = missed
            .iter()
            .find(|r| r.event_instance == event["event_instance"].as_str().unwrap())
            .map(|r| serde_json::from_slice::<Value>(&r.notifications[0].body).unwrap());
        let body: Value = serde_json::from_str(event["body"].as_str().unwrap()).unwrap();
        assert_eq!(Some(body), missed_body);
    }
    assert!(second.is_empty(), "the next run forwards nothing again");
}

#[tokio::test]
async fn a_reinstall_re_registers_and_verifies_with_the_new_key_and_an_uninstall_removes_it() {
    let pipeline = EshopPipeline::start(StoreKind::SecretsManager).await;
    pipeline.install_shop(ESHOP).await;
    pipeline.register_from_bus().await;
    let old_key = pipeline.stored_key(ESHOP).await.unwrap();

    pipeline.install_shop(ESHOP).await;
    // The queue delivers the install event twice, at once (at least once):
    // one registration meets the other's webhooks (422) and is content.
    let answer = pipeline.register_from_bus().await;
    assert_eq!(answer["batchItemFailures"], serde_json::json!([]));
    let installs = serde_json::json!({
        "detail-type": "Installation Installed",
        "detail": {
            "schema_version": 1, "id": "00000000-0000-4000-8000-000000000001", "kind": "installed",
            "platform": "shoptet", "shop": ESHOP.to_string(), "sequence": 9,
            "occurred_at": "2026-12-06T10:00:00.000Z", "cause": "platform_install"
        }
    });
    let (a, b) = tokio::join!(
        pipeline.work(std::slice::from_ref(&installs)),
        pipeline.work(std::slice::from_ref(&installs)),
    );
    assert_eq!(
        (
            a["batchItemFailures"].clone(),
            b["batchItemFailures"].clone()
        ),
        (serde_json::json!([]), serde_json::json!([]))
    );
    let new_key = pipeline.stored_key(ESHOP).await.unwrap();
    assert_ne!(new_key, old_key);
    assert_eq!(
        new_key,
        pipeline.double.webhook_signature_key(ESHOP).unwrap()
    );
    assert_eq!(
        registered(&pipeline, ESHOP).len(),
        configured_events().len()
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let report = pipeline.double.place_order(ESHOP).await;
    assert!(
        report.notifications[0].attempts[0].succeeded(),
        "verified with the new key"
    );
    assert_eq!(pipeline.forwarded().await.len(), 1);

    pipeline.uninstall_shop(ESHOP).await;

    assert_eq!(pipeline.stored_key(ESHOP).await, None);
    let body = format!(
        r#"{{"eshopId":{ESHOP},"event":"order:create","eventCreated":"2026-12-06T11:00:00+0100","eventInstance":"2026000009"}}"#
    );
    // An instance that remembers the key verifies with it for at most a
    // minute (it is read again then); any other finds none.
    assert_eq!(
        pipeline
            .deliver_cold(&sign(&new_key, body.as_bytes()), &body)
            .await,
        401
    );
}

#[tokio::test]
async fn a_failed_registration_never_fails_the_install_and_is_retried_visibly() {
    let pipeline = EshopPipeline::start(StoreKind::SecretsManager).await;
    pipeline.double.inject(
        Some(Endpoint::ShoptetWebhookRegister),
        Fault::ServerError(503),
        1,
    );

    let started = Instant::now();
    pipeline.install_shop(ESHOP).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let answer = pipeline.register_from_bus().await;

    assert_eq!(
        answer["batchItemFailures"].as_array().unwrap().len(),
        1,
        "retried by the queue"
    );
    let failed = pipeline
        .take(&["Shoptet Webhooks Registration Failed"])
        .await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["detail"]["will_retry"], true);
    test_support::events::assert_valid_against_schemas(&[failed[0]["detail"].clone()]);
    assert!(
        pipeline
            .worker_metrics
            .text()
            .contains("\"WebhookRegistrationFailures\"")
    );

    // The queue's retry.
    let installs = serde_json::json!({
        "detail-type": "Installation Installed",
        "detail": {
            "schema_version": 1, "id": "00000000-0000-4000-8000-000000000002", "kind": "installed",
            "platform": "shoptet", "shop": ESHOP.to_string(), "sequence": 1,
            "occurred_at": "2026-12-06T10:00:00.000Z", "cause": "platform_install"
        }
    });
    let retried = pipeline.work(&[installs]).await;
    assert_eq!(retried["batchItemFailures"], serde_json::json!([]));
    assert_eq!(
        registered(&pipeline, ESHOP).len(),
        configured_events().len()
    );
}

#[tokio::test]
async fn the_operators_re_registration_pages_through_the_worker_and_registers_what_is_missing() {
    let pipeline = EshopPipeline::start(StoreKind::SecretsManager).await;
    pipeline.install_shop(ESHOP).await;
    pipeline.register_from_bus().await;
    // The add-on's event list grew after the install: one is missing now.
    let missing = pipeline.double.webhooks(ESHOP)[0].id;
    let http = reqwest::Client::new();
    let minted: Value = http
        .get(format!(
            "{}/action/ApiOAuthServer/getAccessToken",
            pipeline.double.shoptet_oauth_url()
        ))
        .bearer_auth(pipeline.double.oauth_access_token(ESHOP).unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let deleted = http
        .delete(format!(
            "{}/webhooks/{missing}",
            pipeline.double.shoptet_api_url()
        ))
        .header(
            "Shoptet-Access-Token",
            minted["access_token"].as_str().unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());

    let dry: broker_shoptet_webhooks::ReregisterPage = serde_json::from_value(
        pipeline
            .invoke(serde_json::json!({"reregister": {"limit": 10, "dry_run": true}}))
            .await,
    )
    .unwrap();
    let real: broker_shoptet_webhooks::ReregisterPage = serde_json::from_value(
        pipeline
            .invoke(serde_json::json!({"reregister": {"limit": 10}}))
            .await,
    )
    .unwrap();

    assert_eq!(dry.installations.len(), 1);
    assert_eq!(dry.installations[0].added.len(), 1);
    assert_eq!(real.installations[0].added, dry.installations[0].added);
    assert_eq!(real.installations[0].key_renewed, Some(false));
    assert_eq!(real.next, None);
    assert_eq!(
        registered(&pipeline, ESHOP).len(),
        configured_events().len()
    );
}
