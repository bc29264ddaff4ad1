//! The installation lifecycle against moto and the platform double: Shoptet
//! add-on events (confirmed upstream before anything changes), Shoprenter's
//! signed app redirects, and the operator routes.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::lifecycle::{
    APP_SHOP, Lifecycle, SecretState, Setup, event, getaccesstoken_calls, unix_now, vend,
};
use common::{Secrets, error_code};
use lambda_http::Body;
use lambda_http::http::StatusCode;
use platform_double::{Endpoint, Fault, InstallationState};
use serde_json::{Value, json};

// Tests that read the detailed outcome run signed, as the README
// recommends: unsigned deliveries all answer `received`.

/// An answer as something a set can hold: status code and body text.
fn answer((status, body): (StatusCode, Value)) -> (u16, String) {
    (status.as_u16(), body.to_string())
}

fn status_of(body: &Value) -> &str {
    body["status"].as_str().unwrap_or("<none>")
}

#[tokio::test]
async fn a_forged_unsigned_uninstall_of_a_live_shop_changes_nothing() {
    let broker = Lifecycle::start(Setup::default()).await;
    let mut secrets = Secrets::default();
    broker.install_shoptet(7001, &mut secrets).await;
    let vendor = broker.vendor().await;
    assert_eq!(vend(&vendor, "shoptet", "7001").await.0, StatusCode::OK);
    broker.double.reset_counters();

    // A replay of an old event: the cached token, minted after it, answers.
    let old = humantime::parse_rfc3339("2019-01-08T14:13:39Z").unwrap();
    let (status, body) = broker.webhook(&event(7001, "addon:uninstall", old)).await;
    assert_eq!((status, status_of(&body)), (StatusCode::OK, "received"));
    assert_eq!(getaccesstoken_calls(&broker), 0);

    // A forged fresh one, right after the vend's mint: the budget withholds
    // a confirmation mint, and nothing changes.
    let (status, body) = broker
        .webhook(&event(7001, "addon:uninstall", SystemTime::now()))
        .await;
    assert_eq!((status, status_of(&body)), (StatusCode::OK, "received"));
    assert_eq!(getaccesstoken_calls(&broker), 0);
    assert_eq!(
        broker.secret_state("shoptet", "7001").await,
        SecretState::Active
    );
    assert_eq!(
        broker.registry_status("shoptet", "7001").await.as_deref(),
        Some("active")
    );

    // Ten forged deliveries at once mint nothing either.
    let broker = std::sync::Arc::new(broker);
    let body = event(
        7001,
        "addon:uninstall",
        SystemTime::now() + Duration::from_secs(3600),
    );
    let deliveries: Vec<_> = (0..10)
        .map(|_| {
            let (broker, body) = (std::sync::Arc::clone(&broker), body.clone());
            tokio::spawn(async move { broker.webhook(&body).await })
        })
        .collect();
    for delivery in deliveries {
        let (status, body) = delivery.await.unwrap();
        assert_eq!((status, status_of(&body)), (StatusCode::OK, "received"));
    }
    assert_eq!(getaccesstoken_calls(&broker), 0);
    let (status, body) = vend(&broker.vendor().await, "shoptet", "7001").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn two_hundred_forged_unsigned_events_get_one_answer_cost_at_most_one_mint_and_never_refuse_a_consumer()
 {
    let broker = Lifecycle::start(Setup::default()).await;
    // Installed without a vend: no token cached, so the first forged event
    // may mint (the budget's one) and the rest must not.
    broker.install_shoptet(7030, &mut Secrets::default()).await;
    broker.double.reset_counters();
    let vendor = broker.vendor().await;
    let started = std::time::Instant::now();
    let mut answers = std::collections::BTreeSet::new();
    for n in 0..100u64 {
        let kind = [
            "addon:uninstall",
            "addon:suspend",
            "addon:terminate",
            "addon:approve",
        ][n as usize % 4];
        answers.insert(answer(
            broker.webhook(&event(7030, kind, SystemTime::now())).await,
        ));
        answers.insert(answer(
            broker
                .webhook(&event(80_000 + n, kind, SystemTime::now()))
                .await,
        ));
        if n % 10 == 0 {
            let (status, body) = vend(&vendor, "shoptet", "7030").await;
            assert_eq!(
                status,
                StatusCode::OK,
                "a consumer during the stream: {body}"
            );
        }
    }
    let answers: Vec<_> = answers.into_iter().collect();
    assert_eq!(
        answers,
        [(200, json!({"status": "received"}).to_string())],
        "installed and unknown shops look alike"
    );
    assert!(
        getaccesstoken_calls(&broker) <= 1,
        "{} getAccessToken calls",
        getaccesstoken_calls(&broker)
    );
    assert!(broker.double.live_api_tokens(7030) <= 2);
    let (status, body) = vend(&broker.vendor().await, "shoptet", "7030").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a consumer after the stream: {body}"
    );
    assert_eq!(
        broker.registry_status("shoptet", "7030").await.as_deref(),
        Some("active")
    );
    assert_eq!(
        broker.secret_state("shoptet", "7030").await,
        SecretState::Active
    );
    for n in [0, 99] {
        let unknown = (80_000 + n).to_string();
        assert_eq!(broker.registry_status("shoptet", &unknown).await, None);
    }
    // The metric keeps the real outcome for the operator.
    let metrics = broker.metrics.text();
    assert!(metrics.contains("ignored"), "{metrics}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_single_bare_401_on_an_unsigned_uninstall_schedules_no_deletion() {
    let broker = Lifecycle::start(Setup::default()).await;
    broker.install_shoptet(7031, &mut Secrets::default()).await;
    broker.double.reset_counters();
    // A 401 with no error code (a proxy's HTML page), not Shoptet's `invalid_token`.
    broker.double.inject(
        Some(Endpoint::ShoptetGetAccessToken),
        Fault::ServerError(401),
        1,
    );

    let (status, body) = broker
        .webhook(&event(7031, "addon:uninstall", SystemTime::now()))
        .await;

    assert_eq!((status, status_of(&body)), (StatusCode::OK, "received"));
    assert_eq!(getaccesstoken_calls(&broker), 1);
    assert_eq!(
        broker.secret_state("shoptet", "7031").await,
        SecretState::Active
    );
    assert_eq!(
        broker.registry_status("shoptet", "7031").await.as_deref(),
        Some("active")
    );
    let (status, body) = vend(&broker.vendor().await, "shoptet", "7031").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_bad_or_missing_signature_is_refused_with_no_change_and_no_upstream_call() {
    let broker = Lifecycle::start(Setup {
        webhook_key: true,
        ..Setup::default()
    })
    .await;
    let mut secrets = Secrets::default();
    broker.install_shoptet(7002, &mut secrets).await;
    broker.double.uninstall(7002);
    broker.double.reset_counters();
    let body = event(7002, "addon:uninstall", SystemTime::now());
    let other_body = event(7003, "addon:uninstall", SystemTime::now());
    let key = broker.webhook_key.clone().unwrap();
    let wrong_key = broker_domain::secret::WebhookKey::new("not-the-key");
    for signature in [
        None,
        Some(String::new()),
        Some("zz-not-hex".to_owned()),
        Some(broker_platforms::shoptet_webhook::sign(
            &wrong_key,
            body.as_bytes(),
        )),
        Some(broker_platforms::shoptet_webhook::sign(
            &key,
            other_body.as_bytes(),
        )),
        Some(broker_platforms::shoptet_webhook::sign(&key, body.as_bytes()).to_uppercase() + "00"),
    ] {
        let (status, answer) = broker.webhook_signed(&body, signature.as_deref()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{signature:?}: {answer}");
        assert_eq!(error_code(&answer), "invalid_signature");
    }
    assert_eq!(broker.double.total_calls(), 0);
    assert_eq!(
        broker.secret_state("shoptet", "7002").await,
        SecretState::Active
    );
    assert_eq!(
        broker.registry_status("shoptet", "7002").await.as_deref(),
        Some("active")
    );

    let (status, answer) = broker.webhook(&body).await;
    assert_eq!((status, status_of(&answer)), (StatusCode::OK, "processed"));
    assert_eq!(
        broker.secret_state("shoptet", "7002").await,
        SecretState::ScheduledForDeletion
    );
}

#[tokio::test]
async fn an_oversized_webhook_body_is_refused_before_its_signature_is_checked() {
    let broker = Lifecycle::start(Setup {
        webhook_key: true,
        ..Setup::default()
    })
    .await;
    let padding = "x".repeat(broker_platforms::shoptet_webhook::MAX_BODY);
    let body = format!(r#"{{"eshopId": 7004, "event": "addon:uninstall", "pad": "{padding}"}}"#);

    let (status, answer) = broker.webhook_signed(&body, Some("forged")).await;

    // Size first: refused as too large (400), not as badly signed (401),
    // so an oversized flood costs no key read and no HMAC over its bytes.
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(error_code(&answer), "invalid_request");
    assert_eq!(broker.double.total_calls(), 0);
}

#[tokio::test]
async fn a_confirmed_uninstall_retires_the_shop_until_a_reinstall_restores_its_secret() {
    let broker = Lifecycle::start(Setup {
        webhook_key: true,
        ..Setup::default()
    })
    .await;
    common::lifecycle::uninstall_then_reinstall(&broker, 7004, &mut Secrets::default()).await;
}

#[tokio::test]
async fn a_warm_vendor_stops_serving_an_uninstalled_shop_once_its_l1_trust_ends() {
    let broker = Lifecycle::start(Setup {
        webhook_key: true,
        ..Setup::default()
    })
    .await;
    broker.install_shoptet(7009, &mut Secrets::default()).await;
    let warm = broker
        .vendor_trusting_l1_for(Duration::from_millis(300))
        .await;
    assert_eq!(vend(&warm, "shoptet", "7009").await.0, StatusCode::OK);
    broker.double.uninstall(7009);
    let (_, body) = broker
        .webhook(&event(7009, "addon:uninstall", SystemTime::now()))
        .await;
    assert_eq!(status_of(&body), "processed");
    broker.double.reset_counters();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, body) = vend(&warm, "shoptet", "7009").await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_installed")
    );
    assert_eq!(broker.double.total_calls(), 0);
}

#[tokio::test]
async fn a_suspended_shop_is_refused_without_upstream_calls_until_approved() {
    let broker = Lifecycle::start(Setup {
        webhook_key: true,
        ..Setup::default()
    })
    .await;
    common::lifecycle::suspend_then_approve(&broker, 7005, &mut Secrets::default()).await;
}

#[tokio::test]
async fn a_lost_approve_is_noticed_by_the_next_recheck() {
    let broker = Lifecycle::start(Setup {
        suspended_recheck_seconds: Some(1),
        ..Setup {
            webhook_key: true,
            ..Setup::default()
        }
    })
    .await;
    broker.install_shoptet(7006, &mut Secrets::default()).await;
    broker
        .double
        .set_installation_state(7006, InstallationState::Suspended);
    let (_, body) = broker
        .webhook(&event(7006, "addon:suspend", SystemTime::now()))
        .await;
    assert_eq!(status_of(&body), "processed");
    broker
        .double
        .set_installation_state(7006, InstallationState::Active);
    broker.double.reset_counters();
    let vendor = broker.vendor().await;
    assert_eq!(
        vend(&vendor, "shoptet", "7006").await.0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        broker.double.total_calls(),
        0,
        "the re-check is not due yet"
    );

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = vend(&vendor, "shoptet", "7006").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(getaccesstoken_calls(&broker), 1);
    assert_eq!(
        broker.registry_status("shoptet", "7006").await.as_deref(),
        Some("active")
    );
}

#[tokio::test]
async fn a_mint_that_finds_the_installation_gone_marks_it_uninstalled_but_keeps_the_secret() {
    let broker = Lifecycle::start(Setup::default()).await;
    broker.install_shoptet(7007, &mut Secrets::default()).await;
    broker.double.uninstall(7007);
    let vendor = broker.vendor().await;
    assert_eq!(
        vend(&vendor, "shoptet", "7007").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        broker.registry_status("shoptet", "7007").await.as_deref(),
        Some("uninstalled")
    );
    assert_eq!(
        broker.secret_state("shoptet", "7007").await,
        SecretState::Active
    );
    broker.double.reset_counters();
    assert_eq!(
        vend(&broker.vendor().await, "shoptet", "7007").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(broker.double.total_calls(), 0, "later vends fail fast");
}

#[tokio::test]
async fn twenty_duplicate_uninstall_deliveries_at_once_delete_once_and_all_answer_200() {
    let broker = Arc::new(
        Lifecycle::start(Setup {
            webhook_key: true,
            ..Setup::default()
        })
        .await,
    );
    broker.install_shoptet(7008, &mut Secrets::default()).await;
    broker.double.uninstall(7008);
    let body = event(7008, "addon:uninstall", SystemTime::now());
    let deliveries: Vec<_> = (0..20)
        .map(|_| {
            let broker = Arc::clone(&broker);
            let body = body.clone();
            tokio::spawn(async move { broker.webhook(&body).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for delivery in deliveries {
        let (status, answer) = delivery.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{answer}");
        outcomes.push(status_of(&answer).to_owned());
    }
    let processed = outcomes.iter().filter(|o| *o == "processed").count();
    assert_eq!(processed, 1, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|o| o == "processed" || o == "duplicate"),
        "{outcomes:?}"
    );
    assert_eq!(
        broker.secret_state("shoptet", "7008").await,
        SecretState::ScheduledForDeletion
    );
}

#[tokio::test]
async fn unknown_events_and_unknown_shops_are_acknowledged_and_bad_bodies_refused() {
    let broker = Lifecycle::start(Setup {
        webhook_key: true,
        ..Setup::default()
    })
    .await;
    let (status, body) = broker
        .webhook(r#"{"eshopId":1,"event":"addon:rename","eventInstance":1}"#)
        .await;
    assert_eq!((status, status_of(&body)), (StatusCode::OK, "ignored"));
    let (status, body) = broker
        .webhook(&event(424242, "addon:uninstall", SystemTime::now()))
        .await;
    assert_eq!((status, status_of(&body)), (StatusCode::OK, "ignored"));
    for bad in [
        "",
        "{}",
        "[1]",
        r#"{"eshopId":"x","event":"addon:suspend"}"#,
    ] {
        let (status, body) = broker.webhook(bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(error_code(&body), "invalid_request");
    }
}

#[tokio::test]
async fn a_shoprenter_app_installs_with_one_jwt_and_uninstalls_through_signed_redirects() {
    let broker = Lifecycle::start(Setup::default()).await;
    common::lifecycle::shoprenter_app_install_then_uninstall(&broker, &mut Secrets::default())
        .await;
}

#[tokio::test]
async fn a_shoprenter_redirect_with_a_bad_hmac_or_stale_timestamp_installs_nothing() {
    let broker = Lifecycle::start(Setup::default()).await;
    let secrets = &mut Secrets::default();
    let bad_hmac = "00".repeat(32);
    for (timestamp, hmac) in [
        (unix_now(), Some(bad_hmac.as_str())),
        (unix_now() - 301, None),
        (unix_now() + 301, None),
    ] {
        let response = broker
            .shoprenter_redirect("install", APP_SHOP, timestamp, "", hmac, secrets)
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let page = String::from_utf8(response.into_body().to_vec()).unwrap();
        assert!(page.contains("invalid_signature"), "{page}");
    }
    assert_eq!(broker.double.total_calls(), 0);
    assert_eq!(broker.registry_status("shoprenter", APP_SHOP).await, None);
    let (status, body) = vend(&broker.vendor().await, "shoprenter", APP_SHOP).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(error_code(&body), "not_installed");
    assert_eq!(
        broker.double.total_calls(),
        0,
        "app credentials serve only installed shops"
    );

    // Browsers get a page; API clients asking for JSON get the JSON error.
    let response = broker
        .request(
            "GET",
            &format!("/shoprenter/install?shopname={APP_SHOP}&timestamp=1&hmac=00"),
            &[("accept", "application/json")],
            Body::Empty,
        )
        .await;
    let (status, body) = test_support::into_json(response);
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNAUTHORIZED, "invalid_signature")
    );
}

fn page_of(response: lambda_http::Response<Body>) -> (StatusCode, String) {
    let status = response.status();
    (
        status,
        String::from_utf8(response.into_body().to_vec()).unwrap(),
    )
}

#[tokio::test]
async fn a_replayed_shoprenter_install_url_neither_uninstalls_nor_mints_again() {
    let broker = Lifecycle::start(Setup::default()).await;
    let secrets = &mut Secrets::default();
    let signed_at = unix_now();
    let install = broker
        .shoprenter_redirect("install", APP_SHOP, signed_at, "", None, secrets)
        .await;
    assert_eq!(install.status(), StatusCode::OK);
    assert_eq!(broker.double.calls_to(Endpoint::ShoprenterToken), 1);
    broker.double.reset_counters();

    // The merchant reloads the install page twice: still the installed
    // page, and nothing is done again.
    for _ in 0..2 {
        let (status, page) = page_of(
            broker
                .shoprenter_redirect("install", APP_SHOP, signed_at, "", None, secrets)
                .await,
        );
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(page.contains("The app is installed"), "{page}");
    }
    // The same signed query sent to the uninstall route (from the browser
    // history, a proxy's log, a screen share): refused, nothing changes.
    let (status, page) = page_of(
        broker
            .shoprenter_redirect("uninstall", APP_SHOP, signed_at, "", None, secrets)
            .await,
    );
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{page}");
    assert!(page.contains("already used"), "{page}");
    assert!(page.contains("invalid_signature"), "{page}");

    assert_eq!(
        broker.double.total_calls(),
        0,
        "no token request after the first"
    );
    assert_eq!(
        broker
            .registry_status("shoprenter", APP_SHOP)
            .await
            .as_deref(),
        Some("active")
    );
    let (status, body) = vend(&broker.vendor().await, "shoprenter", APP_SHOP).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        broker.double.calls_to(Endpoint::ShoprenterToken),
        0,
        "the install's one token is still the one served"
    );
}

#[tokio::test]
async fn an_old_uninstall_url_replayed_to_install_changes_nothing() {
    let broker = Lifecycle::start(Setup::default()).await;
    let secrets = &mut Secrets::default();
    let installed_at = unix_now();
    let uninstalled_at = installed_at + 1;
    broker
        .shoprenter_redirect("install", APP_SHOP, installed_at, "", None, secrets)
        .await;
    let (status, page) = page_of(
        broker
            .shoprenter_redirect("uninstall", APP_SHOP, uninstalled_at, "", None, secrets)
            .await,
    );
    assert_eq!(status, StatusCode::OK, "{page}");
    broker.double.reset_counters();

    // The uninstall's query, and the install's older one, sent to install:
    // neither re-activates the shop nor asks for a token.
    for signed_at in [uninstalled_at, installed_at] {
        let (status, page) = page_of(
            broker
                .shoprenter_redirect("install", APP_SHOP, signed_at, "", None, secrets)
                .await,
        );
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{signed_at}: {page}");
        assert!(page.contains("already used"), "{page}");
    }
    // A reload of the uninstall page still says it is uninstalled.
    let (status, page) = page_of(
        broker
            .shoprenter_redirect("uninstall", APP_SHOP, uninstalled_at, "", None, secrets)
            .await,
    );
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("The app is uninstalled"), "{page}");

    assert_eq!(broker.double.total_calls(), 0);
    assert_eq!(
        broker
            .registry_status("shoprenter", APP_SHOP)
            .await
            .as_deref(),
        Some("uninstalled")
    );
    let (status, body) = vend(&broker.vendor().await, "shoprenter", APP_SHOP).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(error_code(&body), "not_installed");
}

#[tokio::test]
async fn an_uninstall_signed_before_the_shops_install_is_ignored() {
    let broker = Lifecycle::start(Setup::default()).await;
    let secrets = &mut Secrets::default();
    let installed_at = unix_now();
    broker
        .shoprenter_redirect("install", APP_SHOP, installed_at, "", None, secrets)
        .await;
    broker.double.reset_counters();

    // Never seen before, signed and fresh, but older than the install (say
    // the uninstall of a previous installation, held back by a proxy).
    let (status, page) = page_of(
        broker
            .shoprenter_redirect("uninstall", APP_SHOP, installed_at - 10, "", None, secrets)
            .await,
    );
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{page}");
    assert_eq!(
        broker
            .registry_status("shoprenter", APP_SHOP)
            .await
            .as_deref(),
        Some("active")
    );
    let (status, body) = vend(&broker.vendor().await, "shoprenter", APP_SHOP).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        broker.double.total_calls(),
        0,
        "the install's token is served"
    );

    // A later uninstall is acted on.
    let (status, page) = page_of(
        broker
            .shoprenter_redirect("uninstall", APP_SHOP, installed_at + 1, "", None, secrets)
            .await,
    );
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(
        broker
            .registry_status("shoprenter", APP_SHOP)
            .await
            .as_deref(),
        Some("uninstalled")
    );
}

#[tokio::test]
async fn an_app_url_elsewhere_never_becomes_the_redirect_target() {
    let broker = Lifecycle::start(Setup::default()).await;
    let secrets = &mut Secrets::default();
    for app_url in [
        "https%3A%2F%2Fevil.example%2F",
        "https%3A%2F%2Fother.shoprenter.hu%2Fadmin",
    ] {
        let response = broker
            .shoprenter_redirect(
                "install",
                APP_SHOP,
                unix_now(),
                &format!("&app_url={app_url}"),
                None,
                secrets,
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK, "a page, not a redirect");
        assert!(response.headers().get("location").is_none());
    }
    let own = format!("https%3A%2F%2F{APP_SHOP}.shoprenter.hu%2Fadmin%2Fapp%2F9");
    let response = broker
        .shoprenter_redirect(
            "install",
            APP_SHOP,
            unix_now(),
            &format!("&app_url={own}"),
            None,
            secrets,
        )
        .await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(
        response.headers()["location"],
        format!("https://{APP_SHOP}.shoprenter.hu/admin/app/9").as_str()
    );

    let configured = Lifecycle::start(Setup {
        app_entry_url: true,
        ..Setup::default()
    })
    .await;
    configured.double.register_shoprenter_client(
        APP_SHOP,
        common::SHOPRENTER_CLIENT_ID,
        common::SHOPRENTER_CLIENT_SECRET,
        &[],
    );
    let response = configured
        .shoprenter_redirect(
            "install",
            APP_SHOP,
            unix_now(),
            "&app_url=https%3A%2F%2Fevil.example",
            None,
            secrets,
        )
        .await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(
        response.headers()["location"],
        format!("https://apps.example/{APP_SHOP}/welcome").as_str()
    );
}

#[tokio::test]
async fn an_import_of_another_eshops_token_is_refused_and_stores_nothing() {
    let broker = Lifecycle::start(Setup::default()).await;
    let secrets = &mut Secrets::default();
    broker.install_shoptet(7021, secrets).await;
    // A valid OAuth token, but e-shop 7021's, imported as e-shop 7022's.
    let theirs = json!({"oauth_access_token": broker.double.oauth_access_token(7021).unwrap()});

    let (status, body) = broker
        .send(
            "PUT",
            "/shoptet/7022/installation",
            Body::from(theirs.to_string()),
        )
        .await;

    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_credentials"),
        "{body}"
    );
    assert_eq!(
        broker.secret_state("shoptet", "7022").await,
        SecretState::Absent
    );
    assert_eq!(broker.registry_status("shoptet", "7022").await, None);
    // Nothing the verification cached serves e-shop 7022's consumers.
    let (status, refused) = vend(&broker.vendor().await, "shoptet", "7022").await;
    assert_eq!(
        (status, error_code(&refused)),
        (StatusCode::NOT_FOUND, "not_installed")
    );
}

#[tokio::test]
async fn operators_import_list_show_and_delete_installations_without_seeing_secrets() {
    let broker = Lifecycle::start(Setup::default()).await;
    let secrets = &mut Secrets::default();
    // An OAuth token Shoptet never issued is refused, and nothing is stored.
    let wrong = json!({"oauth_access_token": "not-a-real-oauth-token"});
    let (status, body) = broker
        .send(
            "PUT",
            "/shoptet/7010/installation",
            Body::from(wrong.to_string()),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_credentials")
    );
    assert_eq!(
        broker.secret_state("shoptet", "7010").await,
        SecretState::Absent
    );
    assert_eq!(broker.registry_status("shoptet", "7010").await, None);

    broker.install_shoptet(7011, secrets).await;
    let oauth = broker.double.oauth_access_token(7011).unwrap();
    broker.double.reset_counters();
    let import = json!({"oauth_access_token": oauth});
    let (status, body) = broker
        .send(
            "PUT",
            "/shoptet/7011/installation",
            Body::from(import.to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "a replacement: {body}");
    assert_eq!(
        getaccesstoken_calls(&broker),
        1,
        "verified with one getAccessToken"
    );
    let (status, _) = vend(&broker.vendor().await, "shoptet", "7011").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        getaccesstoken_calls(&broker),
        1,
        "the verifying token is served"
    );

    let (status, body) = broker
        .send(
            "PUT",
            &format!("/shoprenter/{APP_SHOP}/installation"),
            Body::Empty,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let (status, body) = broker
        .send("DELETE", "/installations/shoptet/7011", Body::Empty)
        .await;
    assert_eq!((status, status_of(&body)), (StatusCode::OK, "uninstalled"));
    assert_eq!(
        broker.secret_state("shoptet", "7011").await,
        SecretState::ScheduledForDeletion
    );

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/installations?limit=1&cursor={cursor}"),
            None => "/installations?limit=1".to_owned(),
        };
        let (status, page) = broker.send("GET", &path, Body::Empty).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for item in page["installations"].as_array().unwrap() {
            let keys: Vec<&str> = item
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(
                keys,
                [
                    "installed_at",
                    "last_event_sequence",
                    "platform",
                    "shop",
                    "status",
                    "updated_at"
                ]
            );
            seen.push((
                item["platform"].as_str().unwrap().to_owned(),
                item["shop"].as_str().unwrap().to_owned(),
                item["status"].as_str().unwrap().to_owned(),
            ));
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            (
                "shoprenter".to_owned(),
                APP_SHOP.to_owned(),
                "active".to_owned()
            ),
            (
                "shoptet".to_owned(),
                "7011".to_owned(),
                "uninstalled".to_owned()
            ),
        ]
    );
    let (status, page) = broker
        .send(
            "GET",
            "/installations?platform=shoptet&status=active",
            Body::Empty,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["installations"], json!([]));
    for bad in [
        "/installations?limit=0",
        "/installations?limit=101",
        "/installations?status=gone",
        "/installations?cursor=%%%",
        "/installations?shop=1",
    ] {
        let (status, body) = broker.send("GET", bad, Body::Empty).await;
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{bad}"
        );
    }
    let (status, body) = broker
        .send("GET", "/installations/shoptet/999", Body::Empty)
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (status, body) = broker
        .send("DELETE", "/installations/shoptet/999", Body::Empty)
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_found"),
        "an unknown shop is not registered as uninstalled"
    );
    assert_eq!(broker.registry_status("shoptet", "999").await, None);
    // A shop named like the listing is still one shop.
    let (status, body) = broker
        .send(
            "GET",
            "/installations/shoprenter/installations",
            Body::Empty,
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    for body in ["[\"token\"]", "[]"] {
        let (status, answer) = broker
            .send("PUT", "/shoptet/7012/installation", Body::from(body))
            .await;
        assert_eq!(
            (status, error_code(&answer)),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "an array is not a body: {body}"
        );
    }
}

#[tokio::test]
async fn fuzzed_webhook_bodies_and_shoprenter_queries_always_get_well_formed_answers() {
    let broker = Lifecycle::start(Setup::default()).await;
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let pieces = [
        "{",
        "}",
        "[",
        "]",
        "\"eshopId\"",
        ":",
        ",",
        "\"event\"",
        "\"addon:uninstall\"",
        "\"addon:suspend\"",
        "1",
        "-1",
        "1e400",
        "\"7012\"",
        "null",
        "true",
        "\"eventInstance\"",
        "\"\u{0}\"",
        "\"é\"",
        "\\",
    ];
    for _ in 0..300 {
        let body: String = (0..rng.usize(0..12))
            .map(|_| pieces[rng.usize(..pieces.len())])
            .collect();
        let (status, answer) = broker.webhook(&body).await;
        match status {
            StatusCode::OK => assert!(
                ["processed", "duplicate", "ignored"].contains(&status_of(&answer)),
                "{body}: {answer}"
            ),
            StatusCode::BAD_REQUEST | StatusCode::SERVICE_UNAVAILABLE => {
                assert!(answer["error"]["code"].is_string(), "{body}: {answer}")
            }
            other => panic!("{body}: {other} {answer}"),
        }
    }
    let bytes: Vec<u8> = (0..2000).map(|_| rng.u8(..)).collect();
    let (status, _) = broker.webhook(&String::from_utf8_lossy(&bytes)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let params = [
        "shopname=",
        "code=",
        "timestamp=",
        "hmac=",
        "app_url=",
        "&",
        "=",
        "%",
        "%zz",
        "demo",
        "1",
        "a%26b",
        "shopname=demo",
        "&&",
    ];
    for _ in 0..300 {
        let query: String = (0..rng.usize(0..10))
            .map(|_| params[rng.usize(..params.len())])
            .collect();
        for route in ["install", "uninstall"] {
            let response = broker
                .request(
                    "GET",
                    &format!("/shoprenter/{route}?{query}"),
                    &[("accept", "application/json")],
                    Body::Empty,
                )
                .await;
            let (status, answer) = test_support::into_json(response);
            assert!(
                [StatusCode::BAD_REQUEST, StatusCode::UNAUTHORIZED].contains(&status),
                "{query}: {status} {answer}"
            );
            assert!(answer["error"]["code"].is_string(), "{query}: {answer}");
        }
    }
    assert_eq!(broker.double.calls_to(Endpoint::ShoprenterToken), 0);
}
