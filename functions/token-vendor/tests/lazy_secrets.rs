//! No network call during init: the Shoprenter app's secret is read by the
//! first mint that needs it, kept after a success and read again after a
//! failure.

mod common;

use broker_domain::ids::ShopRef;
use common::{APP_CLIENT_ID, APP_CLIENT_SECRET, Fleet, http};
use lambda_http::http::StatusCode;

#[tokio::test]
async fn an_app_secret_that_cannot_be_read_fails_the_request_not_the_start_and_is_read_after_the_back_off()
 {
    let fleet = Fleet::start().await;
    // Named but not created yet: a start-up read would have refused to start.
    let late_secret_id = format!("{}late-app-secret", fleet.secret_prefix);
    let instance = fleet
        .instance_with(|config| {
            config.shoprenter_app.as_mut().unwrap().secret_id = late_secret_id;
        })
        .await;
    fleet.double.register_shoprenter_client(
        "app-shop",
        APP_CLIENT_ID,
        APP_CLIENT_SECRET,
        &["product:read"],
    );
    fleet
        .register_installed(&ShopRef::parse("shoprenter", "app-shop").unwrap())
        .await;

    let (status, _, refused) = http(&instance, "GET", "/tokens/shoprenter/app-shop", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{refused}");
    assert_eq!(refused["error"]["code"], "store_unavailable");
    assert_eq!(fleet.double.total_calls(), 0);

    fleet
        .create_secret("late-app-secret", APP_CLIENT_SECRET)
        .await;
    // Within the back-off after the failed read, requests fail without one.
    let (status, _, _) = http(&instance, "GET", "/tokens/shoprenter/app-shop", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    tokio::time::sleep(broker_domain::lazy_secret::FIRST_BACK_OFF).await;
    let (status, _, vended) = http(&instance, "GET", "/tokens/shoprenter/app-shop", None).await;

    assert_eq!(status, StatusCode::OK, "{vended}");
    assert_eq!(vended["scopes"], serde_json::json!(["product:read"]));
    assert_eq!(fleet.double.total_calls(), 1);
}

#[tokio::test]
async fn the_sdk_on_the_brokers_own_transport_reads_the_secret_and_the_cache() {
    let fleet = Fleet::start().await;
    fleet.double.register_shoprenter_client(
        "app-shop",
        APP_CLIENT_ID,
        APP_CLIENT_SECRET,
        &["product:read"],
    );
    fleet
        .register_installed(&ShopRef::parse("shoprenter", "app-shop").unwrap())
        .await;
    // What `main` builds: the SDK on reqwest and the process's one TLS
    // configuration (the emulator is plain http on loopback).
    let aws = aws_config::from_env()
        .endpoint_url(fleet.store_aws.endpoint_url().unwrap())
        .region(fleet.store_aws.region().cloned())
        .credentials_provider(fleet.store_aws.credentials_provider().unwrap())
        .http_client(broker_aws::sdk_http::http_client())
        .load()
        .await;
    let minting = token_vendor::build_on_aws(fleet.config(), &aws);
    let serving = token_vendor::build_on_aws(fleet.config(), &aws);

    let (status, _, minted) = http(&minting, "GET", "/tokens/shoprenter/app-shop", None).await;
    let (_, _, served) = http(&serving, "GET", "/tokens/shoprenter/app-shop", None).await;

    assert_eq!(status, StatusCode::OK, "{minted}");
    assert_eq!(served["access_token"], minted["access_token"]);
    assert_eq!(fleet.double.total_calls(), 1);
    assert_eq!(broker_runtime::tls::builds(), 1);
}
