//! The install callback against moto and the platform double, over the real SDK.

mod common;

use std::time::Duration;

use common::{Broker, Secrets, error_code};
use lambda_http::Body;
use lambda_http::http::StatusCode;
use platform_double::Endpoint;

#[tokio::test]
async fn install_answers_200_only_after_the_secret_is_stored() {
    let broker = Broker::start().await;
    let code = broker.double.issue_install_code(222651);

    let (status, body) = broker.get(&format!("/shoptet/install?code={code}")).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    let stored = broker
        .secret("shoptet", "222651")
        .await
        .expect("secret stored");
    assert_eq!(
        stored["oauth_access_token"].as_str(),
        broker.double.oauth_access_token(222651).as_deref()
    );
    assert_eq!(stored["eshop_id"], 222651);
    assert!(
        stored["eshop_url"]
            .as_str()
            .unwrap()
            .starts_with("https://")
    );
    assert!(stored["contact_email"].is_string());
    assert_eq!(stored["trial"], false);
    assert!(humantime::parse_rfc3339(stored["installed_at"].as_str().unwrap()).is_ok());

    let described = aws_sdk_secretsmanager::Client::new(&broker.aws)
        .describe_secret()
        .secret_id(broker.secret_name("shoptet", "222651"))
        .send()
        .await
        .unwrap();
    let tags: Vec<(&str, &str)> = described
        .tags()
        .iter()
        .map(|t| (t.key().unwrap(), t.value().unwrap()))
        .collect();
    assert!(tags.contains(&("platform", "shoptet")), "{tags:?}");
    assert!(tags.contains(&("shop", "222651")), "{tags:?}");
}

#[tokio::test]
async fn a_code_used_twice_fails_the_second_time_and_leaves_the_secret_unchanged() {
    let broker = Broker::start().await;
    let mut secrets = Secrets::default();
    let eshop_id = 31337;

    common::code_used_twice(&broker, eshop_id, &mut secrets).await;

    let stored = broker.secret("shoptet", "31337").await.unwrap();
    assert_eq!(
        stored["oauth_access_token"].as_str(),
        broker.double.oauth_access_token(eshop_id).as_deref()
    );
    let versions = aws_sdk_secretsmanager::Client::new(&broker.aws)
        .list_secret_version_ids()
        .secret_id(broker.secret_name("shoptet", "31337"))
        .send()
        .await
        .unwrap();
    assert_eq!(versions.versions().len(), 1);
}

#[tokio::test]
async fn a_reinstall_puts_a_new_secret_version_and_drops_the_cached_api_token() {
    let broker = Broker::start().await;
    let first_code = broker.double.issue_install_code(4242);
    assert_eq!(
        broker
            .get(&format!("/shoptet/install?code={first_code}"))
            .await
            .0,
        StatusCode::OK
    );
    let first_token = broker.double.oauth_access_token(4242).unwrap();
    broker.put_cached_token_item("shoptet#4242").await;
    broker.put_cached_token_item("shoptet#4243").await;

    let second_code = broker.double.issue_install_code(4242);
    let (status, _) = broker
        .get(&format!("/shoptet/install?code={second_code}"))
        .await;

    assert_eq!(status, StatusCode::OK);
    let second_token = broker.double.oauth_access_token(4242).unwrap();
    assert_ne!(first_token, second_token);
    let stored = broker.secret("shoptet", "4242").await.unwrap();
    assert_eq!(
        stored["oauth_access_token"].as_str(),
        Some(second_token.as_str())
    );
    let versions = aws_sdk_secretsmanager::Client::new(&broker.aws)
        .list_secret_version_ids()
        .secret_id(broker.secret_name("shoptet", "4242"))
        .send()
        .await
        .unwrap();
    assert_eq!(versions.versions().len(), 2);
    assert!(!broker.cached_token_item_exists("shoptet#4242").await);
    assert!(
        broker.cached_token_item_exists("shoptet#4243").await,
        "another shop's token stays"
    );
}

#[tokio::test]
async fn malformed_codes_are_refused_before_any_upstream_call_and_nothing_is_stored() {
    let broker = Broker::start().await;

    common::malformed_codes(&broker, &mut Secrets::default()).await;

    assert_eq!(broker.double.total_calls(), 0);
    assert!(broker.stored_secret_names().await.is_empty());
}

#[tokio::test]
async fn upstream_failures_answer_503_within_shoptets_five_seconds_and_store_nothing() {
    let broker = Broker::start().await;

    common::upstream_faults(&broker, 5150, &mut Secrets::default()).await;

    assert_eq!(
        broker.double.calls(Endpoint::ShoptetCodeExchange, "5150"),
        4
    );
    assert!(broker.stored_secret_names().await.is_empty());
}

#[tokio::test]
async fn an_unreachable_secrets_manager_answers_503_and_never_200() {
    let aws = test_support::emulator_sdk_config().await;
    let closed = test_support::sdk_config_for_endpoint(&test_support::unreachable_endpoint()).await;
    let broker = Broker::start_with_store(aws, closed).await;
    let code = broker.double.issue_install_code(777);

    let started = std::time::Instant::now();
    let (status, body) = broker.get(&format!("/shoptet/install?code={code}")).await;

    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(error_code(&body), "store_unavailable");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(broker.stored_secret_names().await.is_empty());
}

#[tokio::test]
async fn shoprenter_credentials_are_stored_only_when_shoprenter_accepts_them() {
    let broker = Broker::start().await;

    common::shoprenter_credentials(&broker, &mut Secrets::default()).await;
}

#[tokio::test]
async fn shoprenter_credentials_with_a_bad_shop_name_or_body_are_refused_without_upstream_calls() {
    let broker = Broker::start().await;
    let cases = [
        (
            "/shoprenter/Bad_Shop/credentials",
            r#"{"client_id":"a","client_secret":"b"}"#,
        ),
        ("/shoprenter/demo-shop/credentials", "not json"),
        ("/shoprenter/demo-shop/credentials", r#"{"client_id":"a"}"#),
        (
            "/shoprenter/demo-shop/credentials",
            r#"{"client_id":"","client_secret":"b"}"#,
        ),
        (
            "/shoprenter/demo-shop/credentials",
            r#"{"client_id":"a","client_secret":"b","extra":1}"#,
        ),
    ];
    for (path, body) in cases {
        let (status, response) = broker.send("PUT", path, Body::from(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}: {response}");
        assert_eq!(error_code(&response), "invalid_request");
    }
    assert_eq!(broker.double.total_calls(), 0);
    assert!(broker.stored_secret_names().await.is_empty());
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let broker = Broker::start().await;
    let (status, body) = broker.get("/nowhere").await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (status, body) = broker
        .send("POST", "/shoptet/install?code=abc", Body::Empty)
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
}

#[tokio::test]
async fn installs_arrive_as_http_api_rest_api_and_function_url_events() {
    let broker = Broker::start().await;
    for (eshop_id, fixture) in [
        (1001, "install-apigw-v2.json"),
        (1002, "install-apigw-rest-v1.json"),
        (1003, "install-function-url.json"),
    ] {
        let path = format!(
            "{}/../../tests/events/{fixture}",
            env!("CARGO_MANIFEST_DIR")
        );
        let code = broker.double.issue_install_code(eshop_id);
        let event = std::fs::read_to_string(path)
            .unwrap()
            .replace("__CODE__", &code);
        let request = lambda_http::request::from_str(&event).unwrap();

        let (status, body) = common::into_json(broker.handler.handle(request).await);

        assert_eq!(status, StatusCode::OK, "{fixture}: {body}");
        assert_eq!(body["shop"], eshop_id.to_string());
    }
}

#[tokio::test]
async fn without_a_configured_redirect_uri_the_url_shoptet_called_is_used() {
    let registered = "https://abc123.execute-api.eu-central-1.amazonaws.com/shoptet/install";
    let broker = Broker::start_deriving_redirect_uri(registered).await;
    let path = format!(
        "{}/../../tests/events/install-apigw-v2.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let code = broker.double.issue_install_code(1201);
    let event = std::fs::read_to_string(path)
        .unwrap()
        .replace("__CODE__", &code);

    let response = broker
        .handler
        .handle(lambda_http::request::from_str(&event).unwrap())
        .await;
    let (status, body) = common::into_json(response);

    // The double refuses any other redirect_uri with invalid_request.
    assert_eq!(status, StatusCode::OK, "{body}");
}
