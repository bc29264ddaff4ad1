//! Single-platform stacks against moto and the platform double: each starts
//! with only its platform's environment, installs and vends on it, and
//! answers the other platform's routes with `not_configured` without a
//! call upstream or a write to any store.

mod common;

use common::lifecycle::{APP_SHOP, Lifecycle, Platforms, Setup, event, unix_now, vend};
use common::{Secrets, error_code};
use lambda_http::Body;
use lambda_http::http::StatusCode;

const ESHOP: u64 = 8101;

async fn start(platforms: Platforms) -> Lifecycle {
    Lifecycle::start(Setup {
        platforms,
        ..Setup::default()
    })
    .await
}

/// The registry's page of every installation, as the operator lists it.
async fn installations(broker: &Lifecycle) -> serde_json::Value {
    let (status, body) = broker.send("GET", "/installations", Body::Empty).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["installations"].clone()
}

#[tokio::test]
async fn a_shoptet_only_stack_installs_and_vends_and_refuses_the_shoprenter_app_routes() {
    let broker = start(Platforms::ShoptetOnly).await;
    let mut secrets = Secrets::default();

    broker.install_shoptet(ESHOP, &mut secrets).await;
    let (status, body) = vend(&broker.vendor().await, "shoptet", &ESHOP.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    broker.double.reset_counters();
    for route in ["install", "uninstall"] {
        let response = broker
            .shoprenter_redirect(route, APP_SHOP, unix_now(), "", None, &mut secrets)
            .await;
        assert_eq!(
            response.status(),
            StatusCode::NOT_FOUND,
            "/shoprenter/{route}"
        );
    }
    let (status, body) = vend(&broker.vendor().await, "shoprenter", APP_SHOP).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // No app and no credentials of the shop's own: nothing to vend with.
    assert_eq!(error_code(&body), "not_installed");
    assert_eq!(broker.double.total_calls(), 0);
    assert_eq!(installations(&broker).await.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_shoprenter_only_stack_installs_and_vends_and_answers_shoptets_routes_not_configured() {
    let broker = start(Platforms::ShoprenterOnly).await;
    let mut secrets = Secrets::default();

    let response = broker
        .shoprenter_redirect("install", APP_SHOP, unix_now(), "", None, &mut secrets)
        .await;
    assert!(
        matches!(response.status(), StatusCode::FOUND | StatusCode::OK),
        "{}",
        response.status()
    );
    let (status, body) = vend(&broker.vendor().await, "shoprenter", APP_SHOP).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let code = broker.double.issue_install_code(ESHOP);
    broker.double.reset_counters();
    let eshop = ESHOP.to_string();
    let uninstall = event(ESHOP, "addon:uninstall", std::time::SystemTime::now());
    for (method, path, body) in [
        ("GET", format!("/shoptet/install?code={code}"), Body::Empty),
        ("POST", "/shoptet/webhook".to_owned(), Body::from(uninstall)),
        (
            "PUT",
            format!("/shoptet/{eshop}/installation"),
            Body::from(r#"{"oauth_access_token":"imported-token"}"#),
        ),
    ] {
        let (status, body) = broker.send(method, &path, body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
        assert_eq!(error_code(&body), "not_configured", "{method} {path}");
    }
    let (status, body) = vend(&broker.vendor().await, "shoptet", &eshop).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(error_code(&body), "not_configured");

    assert_eq!(broker.double.total_calls(), 0, "nothing asked upstream");
    let listed = installations(&broker).await;
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1, "only the Shoprenter shop: {listed:?}");
    assert_eq!(listed[0]["platform"], "shoprenter");
    assert_eq!(
        broker.secret_state("shoptet", &eshop).await,
        common::lifecycle::SecretState::Absent
    );
}
