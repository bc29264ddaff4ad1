//! Shoptet's OAuth server and API, over real HTTP.

mod common;

use std::time::Duration;

use common::*;
use platform_double::{DoubleConfig, InstallationState, PlatformDouble};
use serde_json::json;

fn is_lower_alnum(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

#[tokio::test]
async fn a_code_is_exchanged_for_an_oauth_token_of_its_eshop() {
    let double = PlatformDouble::start().await;
    let code = double.issue_install_code(222651);
    assert_eq!(code.len(), 255);
    assert!(is_lower_alnum(&code));

    let (status, body) = post_json(&token_url(&double), &exchange_body(&double, &code)).await;

    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(token.len(), 255);
    assert!(is_lower_alnum(token));
    assert_eq!(double.oauth_access_token(222651).as_deref(), Some(token));
    assert_eq!(body["expires_in"], json!(null));
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "api");
    assert_eq!(body["eshopId"], 222651);
    assert_eq!(body["eshopUrl"], "https://eshop-222651.myshoptet.test/");
    assert_eq!(body["contactEmail"], "owner-222651@example.test");
    assert_eq!(body["trial"], false);
}

#[tokio::test]
async fn a_form_encoded_exchange_is_accepted() {
    let double = PlatformDouble::start().await;
    let code = double.issue_install_code(7);

    let response = reqwest::Client::new()
        .post(token_url(&double))
        .form(&[
            ("client_id", "double-client-id"),
            ("client_secret", "double-client-secret"),
            ("code", code.as_str()),
            ("grant_type", "authorization_code"),
            ("redirect_uri", INSTALL_URL),
            ("scope", "api"),
        ])
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["eshopId"], 7);
}

#[tokio::test]
async fn second_use_of_a_code_is_refused() {
    let double = PlatformDouble::start().await;
    let code = double.issue_install_code(1);
    let body = exchange_body(&double, &code);
    assert_eq!(post_json(&token_url(&double), &body).await.0, 200);

    let (status, answer) = post_json(&token_url(&double), &body).await;

    assert_eq!(status, 400);
    assert_eq!(
        answer,
        json!({
            "error": "invalid_grant",
            "error_description": "The authorization code is invalid, expired or already used",
        })
    );
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let double = PlatformDouble::start_with(DoubleConfig {
        code_lifetime: Duration::ZERO,
        ..DoubleConfig::default()
    })
    .await;
    let code = double.issue_install_code(1);

    let (status, body) = post_json(&token_url(&double), &exchange_body(&double, &code)).await;

    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn an_unknown_code_is_refused() {
    let double = PlatformDouble::start().await;

    let (status, body) = post_json(&token_url(&double), &exchange_body(&double, "nope")).await;

    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn a_wrong_client_secret_is_refused_as_invalid_client() {
    let double = PlatformDouble::start().await;
    let code = double.issue_install_code(1);
    let mut body = exchange_body(&double, &code);
    body["client_secret"] = json!("wrong");

    let (status, answer) = post_json(&token_url(&double), &body).await;

    assert_eq!(status, 401);
    assert_eq!(
        answer,
        json!({"error": "invalid_client", "error_description": "Client authentication failed"})
    );
}

#[tokio::test]
async fn a_missing_client_id_is_refused_as_invalid_client() {
    let double = PlatformDouble::start().await;
    let code = double.issue_install_code(1);
    let mut body = exchange_body(&double, &code);
    body.as_object_mut().unwrap().remove("client_id");

    let (status, answer) = post_json(&token_url(&double), &body).await;

    assert_eq!(status, 401);
    assert_eq!(answer["error"], "invalid_client");
}

#[tokio::test]
async fn no_secret_is_needed_when_the_partner_has_none() {
    let double = PlatformDouble::start_with(DoubleConfig {
        shoptet_client_secret: None,
        ..DoubleConfig::default()
    })
    .await;
    let code = double.issue_install_code(1);
    let mut body = exchange_body(&double, &code);
    body.as_object_mut().unwrap().remove("client_secret");

    assert_eq!(post_json(&token_url(&double), &body).await.0, 200);
}

#[tokio::test]
async fn malformed_exchange_requests_are_bad_requests() {
    let double = PlatformDouble::start_with(DoubleConfig {
        shoptet_redirect_uri: Some(INSTALL_URL.to_owned()),
        ..DoubleConfig::default()
    })
    .await;
    let cases = [
        ("scope", json!("orders")),
        ("scope", json!(null)),
        ("grant_type", json!("client_credentials")),
        ("redirect_uri", json!("https://elsewhere.example.test/")),
        ("code", json!(null)),
    ];
    for (field, value) in cases {
        let code = double.issue_install_code(1);
        let mut body = exchange_body(&double, &code);
        body[field] = value.clone();

        let (status, answer) = post_json(&token_url(&double), &body).await;

        assert_eq!(status, 400, "{field}={value}: {answer}");
        assert_eq!(answer["error"], "invalid_request", "{field}={value}");
        assert!(answer["error_description"].is_string());
    }
}

#[tokio::test]
async fn a_code_is_consumed_even_by_a_rejected_authenticated_request() {
    let double = PlatformDouble::start().await;
    let code = double.issue_install_code(1);
    let mut bad = exchange_body(&double, &code);
    bad["scope"] = json!("orders");
    assert_eq!(post_json(&token_url(&double), &bad).await.0, 400);

    let (status, body) = post_json(&token_url(&double), &exchange_body(&double, &code)).await;

    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn a_request_with_a_wrong_client_does_not_consume_the_code() {
    let double = PlatformDouble::start().await;
    let code = double.issue_install_code(1);
    let mut bad = exchange_body(&double, &code);
    bad["client_id"] = json!("someone-else");
    assert_eq!(post_json(&token_url(&double), &bad).await.0, 401);

    let (status, _) = post_json(&token_url(&double), &exchange_body(&double, &code)).await;

    assert_eq!(status, 200);
}

#[tokio::test]
async fn reinstalling_replaces_the_oauth_token() {
    let double = PlatformDouble::start().await;
    let first = install(&double, 5).await;
    let second = install(&double, 5).await;

    assert_ne!(first, second);
    assert_eq!(double.oauth_access_token(5), Some(second.clone()));
    assert_eq!(get_access_token(&double, &first).await.0, 401);
    assert_eq!(get_access_token(&double, &second).await.0, 200);
}

#[tokio::test]
async fn api_tokens_look_like_shoptets() {
    let double = PlatformDouble::start().await;
    let oauth = install(&double, 222651).await;

    let (status, body) = get_access_token(&double, &oauth).await;

    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap();
    assert!(token.starts_with("222651-a-"), "{token}");
    assert!((40..=60).contains(&token.len()), "{}", token.len());
    assert!(is_lower_alnum(&token["222651-a-".len()..]));
    assert_eq!(body["expires_in"], 1800);
    assert_eq!(double.live_api_tokens(222651), 1);
}

#[tokio::test]
async fn sixth_live_api_token_is_refused() {
    let double = PlatformDouble::start().await;
    let oauth = install(&double, 3).await;
    for _ in 0..5 {
        assert_eq!(get_access_token(&double, &oauth).await.0, 200);
    }

    let response = reqwest::Client::new()
        .get(get_access_token_url(&double))
        .bearer_auth(&oauth)
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("retry-after").is_none());
    let (status, body) = read(response).await;

    assert_eq!(status, 429);
    assert_eq!(
        body,
        json!({
            "error": "maximum_tokens_reached",
            "error_description": "Maximum number of valid tokens reached",
        })
    );
    assert_eq!(double.live_api_tokens(3), 5);
}

#[tokio::test]
async fn expired_api_tokens_free_their_slots() {
    let double = PlatformDouble::start().await;
    let oauth = install(&double, 3).await;
    for _ in 0..5 {
        get_access_token(&double, &oauth).await;
    }

    double.expire_api_tokens(3);

    assert_eq!(double.live_api_tokens(3), 0);
    assert_eq!(get_access_token(&double, &oauth).await.0, 200);
}

#[tokio::test]
async fn an_unknown_oauth_token_is_refused() {
    let double = PlatformDouble::start().await;

    let (status, body) = get_access_token(&double, "not-a-token").await;

    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"error": "invalid_token", "error_description": "The access token provided is invalid"})
    );
    let missing = reqwest::get(get_access_token_url(&double)).await.unwrap();
    assert_eq!(missing.status(), 401);
}

#[tokio::test]
async fn uninstalling_invalidates_the_oauth_and_api_tokens() {
    let double = PlatformDouble::start().await;
    let oauth = install(&double, 9).await;
    let (_, body) = get_access_token(&double, &oauth).await;
    let api_token = body["access_token"].as_str().unwrap().to_owned();

    double.uninstall(9);

    assert_eq!(double.oauth_access_token(9), None);
    assert_eq!(get_access_token(&double, &oauth).await.0, 401);
    let (status, body) = get_with(
        &format!("{}/eshop", double.shoptet_api_url()),
        "Shoptet-Access-Token",
        &api_token,
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["errors"][0]["errorCode"], "invalid-token");
}

#[tokio::test]
async fn installation_states_other_than_active_are_forbidden() {
    let double = PlatformDouble::start().await;
    let oauth = install(&double, 4).await;
    let cases = [
        (
            InstallationState::Suspended,
            "addon_suspended",
            "Addon is suspended",
        ),
        (
            InstallationState::NotApproved,
            "addon_not_approved",
            "Addon installation is not approved",
        ),
        (
            InstallationState::NotInstalled,
            "addon_not_installed",
            "Addon is not installed",
        ),
    ];
    for (state, error, description) in cases {
        double.set_installation_state(4, state);

        let (status, body) = get_access_token(&double, &oauth).await;

        assert_eq!(status, 403, "{state:?}");
        assert_eq!(
            body,
            json!({"error": error, "error_description": description})
        );
    }
    double.set_installation_state(4, InstallationState::Active);
    assert_eq!(get_access_token(&double, &oauth).await.0, 200);
}

#[tokio::test]
async fn the_eshop_endpoint_answers_a_valid_api_token() {
    let double = PlatformDouble::start().await;
    let token = api_token(&double, 42).await;

    let (status, body) = get_with(
        &format!("{}/eshop", double.shoptet_api_url()),
        "Shoptet-Access-Token",
        &token,
    )
    .await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["contactInformation"]["eshopName"],
        "Double e-shop 42"
    );
    assert_eq!(body["errors"], json!(null));
}

#[tokio::test]
async fn an_expired_api_token_is_refused_as_expired() {
    let double = PlatformDouble::start().await;
    let token = api_token(&double, 42).await;

    double.expire_api_tokens(42);
    let (status, body) = get_with(
        &format!("{}/eshop", double.shoptet_api_url()),
        "Shoptet-Access-Token",
        &token,
    )
    .await;

    assert_eq!(status, 401);
    assert_eq!(body["data"], json!(null));
    assert_eq!(body["errors"][0]["errorCode"], "expired-token");
    assert_eq!(body["errors"][0]["instance"], "access-token");
    assert!(body["metadata"]["requestId"].as_str().unwrap().len() == 36);
}

#[tokio::test]
async fn api_tokens_expire_after_the_configured_lifetime() {
    let double = PlatformDouble::start_with(DoubleConfig {
        api_token_lifetime: Duration::from_secs(1),
        ..DoubleConfig::default()
    })
    .await;
    let oauth = install(&double, 42).await;
    let (_, body) = get_access_token(&double, &oauth).await;
    assert_eq!(body["expires_in"], 1);
    let token = body["access_token"].as_str().unwrap();

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = get_with(
        &format!("{}/eshop", double.shoptet_api_url()),
        "Shoptet-Access-Token",
        token,
    )
    .await;

    assert_eq!(status, 401);
    assert_eq!(body["errors"][0]["errorCode"], "expired-token");
    assert_eq!(double.live_api_tokens(42), 0);
}

#[tokio::test]
async fn an_unknown_or_missing_api_token_is_refused_as_invalid() {
    let double = PlatformDouble::start().await;
    let url = format!("{}/eshop", double.shoptet_api_url());

    let (status, body) = get_with(&url, "Shoptet-Access-Token", "42-a-nonsense").await;
    assert_eq!(status, 401);
    assert_eq!(body["errors"][0]["errorCode"], "invalid-token");
    assert!(!body.to_string().contains("nonsense"));

    let missing = reqwest::get(&url).await.unwrap();
    let (status, body) = read(missing).await;
    assert_eq!(status, 401);
    assert_eq!(body["errors"][0]["errorCode"], "invalid-token");
}

#[tokio::test]
async fn other_api_paths_are_forbidden_without_echoing_the_token() {
    let double = PlatformDouble::start().await;
    let token = api_token(&double, 42).await;

    let (status, body) = get_with(
        &format!("{}/orders", double.shoptet_api_url()),
        "Shoptet-Access-Token",
        &token,
    )
    .await;

    assert_eq!(status, 403);
    assert_eq!(body["errors"][0]["errorCode"], "invalid-token-no-rights");
    let text = body.to_string();
    let random_part = &token["42-a-".len()..];
    assert!(!text.contains(&random_part[..8]), "{text}");
}
