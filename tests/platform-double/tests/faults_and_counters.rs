//! Call counters and fault knobs.

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::*;
use platform_double::{Endpoint, Fault, PlatformDouble};
use serde_json::json;

async fn eshop(double: &PlatformDouble, token: &str) -> reqwest::Result<reqwest::Response> {
    reqwest::Client::new()
        .get(format!("{}/eshop", double.shoptet_api_url()))
        .header("Shoptet-Access-Token", token)
        .send()
        .await
}

#[tokio::test]
async fn calls_are_counted_per_endpoint_and_shop() {
    let double = PlatformDouble::start().await;
    let oauth = install(&double, 10).await;
    get_access_token(&double, &oauth).await;
    get_access_token(&double, &oauth).await;
    get_access_token(&double, "unknown-token").await;
    double.register_shoprenter_client("demoshop", "id", "secret", &[]);
    post_json(
        &format!("{}/demoshop/app/token", double.shoprenter_oauth_url()),
        &json!({"grant_type": "client_credentials", "client_id": "id", "client_secret": "bad"}),
    )
    .await;
    get_with(
        &format!("{}/x", double.shoprenter_api_url("demoshop")),
        "Authorization",
        "Bearer x",
    )
    .await;
    post_json(&token_url(&double), &exchange_body(&double, "never-issued")).await;

    assert_eq!(double.calls(Endpoint::ShoptetCodeExchange, "10"), 1);
    assert_eq!(double.calls(Endpoint::ShoptetCodeExchange, "unknown"), 1);
    assert_eq!(double.calls(Endpoint::ShoptetGetAccessToken, "10"), 2);
    assert_eq!(double.calls(Endpoint::ShoptetGetAccessToken, "unknown"), 1);
    assert_eq!(double.calls_to(Endpoint::ShoptetGetAccessToken), 3);
    assert_eq!(double.calls(Endpoint::ShoprenterToken, "demoshop"), 1);
    assert_eq!(double.calls(Endpoint::ShoprenterApi, "demoshop"), 1);
    assert_eq!(double.calls_to(Endpoint::ShoptetApi), 0);
    assert_eq!(double.total_calls(), 7);

    double.reset_counters();

    assert_eq!(double.total_calls(), 0);
    assert_eq!(double.calls(Endpoint::ShoptetGetAccessToken, "10"), 0);
}

#[tokio::test]
async fn api_calls_are_attributed_to_the_tokens_eshop_even_when_expired() {
    let double = PlatformDouble::start().await;
    let token = api_token(&double, 77).await;
    eshop(&double, &token).await.unwrap();
    double.expire_api_tokens(77);
    eshop(&double, &token).await.unwrap();
    eshop(&double, "77-a-unknown").await.unwrap();

    assert_eq!(double.calls(Endpoint::ShoptetApi, "77"), 2);
    assert_eq!(double.calls(Endpoint::ShoptetApi, "unknown"), 1);
}

#[tokio::test]
async fn unrouted_paths_are_not_counted() {
    let double = PlatformDouble::start().await;

    let response = reqwest::get(format!("{}/nowhere", double.base_url()))
        .await
        .unwrap();

    assert_eq!(response.status(), 404);
    assert_eq!(double.total_calls(), 0);
}

#[tokio::test]
async fn a_server_error_fault_answers_html_then_normal_service_resumes() {
    let double = PlatformDouble::start().await;
    let oauth = install(&double, 1).await;
    double.inject(
        Some(Endpoint::ShoptetGetAccessToken),
        Fault::ServerError(503),
        2,
    );

    for _ in 0..2 {
        let response = reqwest::Client::new()
            .get(get_access_token_url(&double))
            .bearer_auth(&oauth)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 503);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(content_type.starts_with("text/html"));
        let text = response.text().await.unwrap();
        assert!(serde_json::from_str::<serde_json::Value>(&text).is_err());
    }

    assert_eq!(get_access_token(&double, &oauth).await.0, 200);
    assert_eq!(double.calls(Endpoint::ShoptetGetAccessToken, "1"), 3);
    assert_eq!(double.live_api_tokens(1), 1);
}

#[tokio::test]
async fn a_rate_limited_fault_carries_retry_after() {
    let double = PlatformDouble::start().await;
    double.inject(
        None,
        Fault::RateLimited {
            retry_after_secs: 7,
        },
        1,
    );

    let response = eshop(&double, "whatever").await.unwrap();

    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    let (_, body) = read(response).await;
    assert_eq!(body, json!({"error": "too_many_requests"}));
}

#[tokio::test]
async fn a_rate_limited_http_date_fault_answers_like_a_full_shoptet_bucket() {
    let double = PlatformDouble::start().await;
    let token = api_token(&double, 1).await;
    double.inject(
        Some(Endpoint::ShoptetApi),
        Fault::RateLimitedHttpDate {
            retry_after_secs: 5,
        },
        1,
    );

    let before = SystemTime::now();
    let response = eshop(&double, &token).await.unwrap();

    assert_eq!(response.status(), 429);
    let date = response.headers()["retry-after"].to_str().unwrap();
    let retry_at = httpdate::parse_http_date(date).expect("an HTTP-date");
    assert!(retry_at >= before + Duration::from_secs(5), "{date}");
    assert!(retry_at <= before + Duration::from_secs(7), "{date}");
    let (_, body) = read(response).await;
    assert_eq!(body["data"], json!(null));
    assert_eq!(body["errors"][0]["errorCode"], "too-many-requests");
    assert_eq!(double.rate_limited_api_calls(Endpoint::ShoptetApi, "1"), 0);
    assert_eq!(eshop(&double, &token).await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_locked_fault_answers_423_in_shoptets_envelope() {
    let double = PlatformDouble::start().await;
    let token = api_token(&double, 1).await;
    double.inject(Some(Endpoint::ShoptetApi), Fault::Locked, 1);

    let (status, body) = read(eshop(&double, &token).await.unwrap()).await;

    assert_eq!(status, 423);
    assert_eq!(body["data"], json!(null));
    assert_eq!(body["errors"][0]["errorCode"], "locked");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("locked")
    );
    assert_eq!(body["metadata"]["requestId"].as_str().unwrap().len(), 36);
    assert_eq!(eshop(&double, &token).await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_drop_fault_closes_the_connection_without_answering() {
    let double = PlatformDouble::start().await;
    let token = api_token(&double, 1).await;
    double.inject(Some(Endpoint::ShoptetApi), Fault::Drop, 1);

    let error = eshop(&double, &token).await.expect_err("no HTTP response");

    assert!(!error.is_status(), "{error:?}");
    assert!(
        error.is_request() || error.is_connect() || error.is_body(),
        "{error:?}"
    );
    assert_eq!(double.calls(Endpoint::ShoptetApi, "1"), 1);
    assert_eq!(eshop(&double, &token).await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_drop_fault_on_a_post_also_closes_the_connection() {
    let double = PlatformDouble::start().await;
    let code = double.issue_install_code(1);
    double.inject(Some(Endpoint::ShoptetCodeExchange), Fault::Drop, 1);

    let result = reqwest::Client::new()
        .post(token_url(&double))
        .json(&exchange_body(&double, &code))
        .send()
        .await;

    assert!(result.is_err(), "{result:?}");
    assert_eq!(double.calls(Endpoint::ShoptetCodeExchange, "1"), 1);
    // The faulted call never reached the code logic: the code still works.
    let (status, _) = post_json(&token_url(&double), &exchange_body(&double, &code)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_malformed_json_fault_truncates_the_body() {
    let double = PlatformDouble::start().await;
    let oauth = install(&double, 1).await;
    double.inject(None, Fault::MalformedJson, 1);

    let response = reqwest::Client::new()
        .get(get_access_token_url(&double))
        .bearer_auth(&oauth)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.text().await.unwrap(), "{\"access_token\": ");
    assert_eq!(double.live_api_tokens(1), 0);
}

#[tokio::test]
async fn a_fault_aimed_at_one_endpoint_spares_the_others() {
    let double = PlatformDouble::start().await;
    let oauth = install(&double, 1).await;
    double.inject(Some(Endpoint::ShoprenterToken), Fault::ServerError(500), 1);

    assert_eq!(get_access_token(&double, &oauth).await.0, 200);
    let (status, _) = post_json(
        &format!("{}/shop/app/token", double.shoprenter_oauth_url()),
        &json!({}),
    )
    .await;
    assert_eq!(status, 500);
}

#[tokio::test]
async fn faults_queue_in_order_and_can_be_cleared() {
    let double = PlatformDouble::start().await;
    double.inject(None, Fault::ServerError(502), 1);
    double.inject(
        None,
        Fault::RateLimited {
            retry_after_secs: 1,
        },
        1,
    );
    double.inject(None, Fault::ServerError(504), 1);

    assert_eq!(eshop(&double, "t").await.unwrap().status(), 502);
    assert_eq!(eshop(&double, "t").await.unwrap().status(), 429);
    double.clear_faults();
    assert_eq!(eshop(&double, "t").await.unwrap().status(), 401);
}

#[tokio::test]
async fn latency_delays_every_response() {
    let double = PlatformDouble::start().await;
    double.set_latency(Duration::from_millis(300));

    let started = Instant::now();
    let response = eshop(&double, "t").await.unwrap();

    assert_eq!(response.status(), 401);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(double.calls(Endpoint::ShoptetApi, "unknown"), 1);
}

#[tokio::test]
async fn shutdown_stops_accepting_connections() {
    let double = PlatformDouble::start().await;
    let url = format!("{}/eshop", double.shoptet_api_url());
    assert!(reqwest::get(&url).await.is_ok());

    double.shutdown();
    tokio::time::sleep(Duration::from_millis(50)).await;

    assert!(reqwest::get(&url).await.is_err());
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_server() {
    let double = PlatformDouble::start().await;
    let url = format!("{}/eshop", double.shoptet_api_url());
    let clone = double.clone();
    drop(double);
    assert!(reqwest::get(&url).await.is_ok());

    drop(clone);
    tokio::time::sleep(Duration::from_millis(50)).await;

    assert!(reqwest::get(&url).await.is_err());
}

#[tokio::test]
async fn urls_hang_off_the_base_url() {
    let double = PlatformDouble::start().await;
    let base = double.base_url();

    assert!(base.starts_with("http://127.0.0.1:"));
    assert!(!base.ends_with('/'));
    assert_eq!(double.shoptet_oauth_url(), base);
    assert_eq!(double.shoptet_api_url(), format!("{base}/api"));
    assert_eq!(double.shoprenter_oauth_url(), format!("{base}/shoprenter"));
    assert_eq!(
        double.shoprenter_api_url("demo"),
        format!("{base}/shoprenter-api/demo/api")
    );
}

#[tokio::test]
async fn another_process_can_queue_faults_expire_tokens_and_read_counters_over_http() {
    let double = PlatformDouble::start().await;
    let token = api_token(&double, 10).await;
    let control = double.control_url();
    let client = reqwest::Client::new();
    let queued = client
        .post(format!("{control}/faults/shoptet_api"))
        .json(&json!({"fault": "rate_limited_http_date", "retry_after_secs": 2, "times": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(queued.status(), 200);

    let limited = eshop(&double, &token).await.unwrap();
    let served = eshop(&double, &token).await.unwrap();
    let expired = client
        .post(format!("{control}/shoptet/10/api-tokens/expire"))
        .send()
        .await
        .unwrap();
    let refused = read(eshop(&double, &token).await.unwrap()).await;
    let (_, counted) = read(
        client
            .get(format!("{control}/calls/shoptet_api/10"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let unknown = client
        .post(format!("{control}/faults/nowhere"))
        .json(&json!({"fault": "locked"}))
        .send()
        .await
        .unwrap();

    assert_eq!(limited.status(), 429);
    assert!(httpdate::parse_http_date(limited.headers()["retry-after"].to_str().unwrap()).is_ok());
    assert_eq!(served.status(), 200);
    assert_eq!(expired.status(), 200);
    assert_eq!(refused.0, 401);
    assert_eq!(refused.1["errors"][0]["errorCode"], "expired-token");
    assert_eq!(
        counted,
        json!({"endpoint": "shoptet_api", "shop": "10", "calls": 3})
    );
    assert_eq!(
        double.calls(Endpoint::ShoptetApi, "10"),
        3,
        "controls are not counted"
    );
    assert_eq!(unknown.status(), 404);
}
