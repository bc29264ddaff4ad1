//! The platforms' API limits: Shoptet's connections per token and leaky
//! bucket, Shoprenter's requests per second, and what the double observed.

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use platform_double::{DoubleConfig, Endpoint, Fault, PlatformDouble};
use serde_json::{Value, json};

async fn eshop(double: &PlatformDouble, token: &str) -> reqwest::Response {
    api_get(double, "eshop", token).await
}

async fn api_get(double: &PlatformDouble, path: &str, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}/{path}", double.shoptet_api_url()))
        .header("Shoptet-Access-Token", token)
        .send()
        .await
        .expect("request reaches the double")
}

/// Runs the futures as tasks (truly concurrent) and collects their outputs in order.
async fn join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(handles.len());
    for handle in handles {
        outputs.push(handle.await.expect("call task"));
    }
    outputs
}

/// Sends `count` calls to `/api/eshop` with each token, all at once.
async fn all_at_once(double: &PlatformDouble, tokens: &[&str], count: usize) -> Vec<(u16, Value)> {
    let tasks = tokens.iter().flat_map(|token| {
        (0..count).map(|_| {
            let double = double.clone();
            let token = (*token).to_owned();
            async move { read(eshop(&double, &token).await).await }
        })
    });
    join_all(tasks).await
}

fn filling(response: &reqwest::Response) -> Option<&str> {
    response
        .headers()
        .get("x-ratelimit-bucket-filling")
        .map(|v| v.to_str().unwrap())
}

fn retry_after_date(response: &reqwest::Response) -> SystemTime {
    let value = response.headers()["retry-after"].to_str().unwrap();
    httpdate::parse_http_date(value).expect("Retry-After is an HTTP-date")
}

fn statuses(results: &[(u16, Value)]) -> Vec<u16> {
    let mut statuses: Vec<u16> = results.iter().map(|(status, _)| *status).collect();
    statuses.sort_unstable();
    statuses
}

async fn shoprenter_get(double: &PlatformDouble, shop: &str, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}/products", double.shoprenter_api_url(shop)))
        .bearer_auth(token)
        .header("Accept", "application/json")
        .send()
        .await
        .expect("request reaches the double")
}

async fn shoprenter_token(double: &PlatformDouble, shop: &str) -> String {
    double.register_shoprenter_client(shop, "app-id", "app-secret", &[]);
    let (status, body) = post_json(
        &format!("{}/{shop}/app/token", double.shoprenter_oauth_url()),
        &json!({
            "grant_type": "client_credentials",
            "client_id": "app-id",
            "client_secret": "app-secret",
        }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_fourth_concurrent_call_on_one_token_is_refused_and_observed_as_four() {
    let double = PlatformDouble::start().await;
    let token = api_token(&double, 5).await;
    // Keeps every call in flight long enough for all four to overlap.
    double.set_latency(Duration::from_millis(300));

    let results = all_at_once(&double, &[&token], 4).await;

    assert_eq!(statuses(&results), [200, 200, 200, 429]);
    let (_, refusal) = results.iter().find(|(status, _)| *status == 429).unwrap();
    assert_eq!(refusal["data"], json!(null));
    assert_eq!(refusal["errors"][0]["errorCode"], "too-many-requests");
    assert!(!refusal.to_string().contains(&token[5..]));
    assert_eq!(double.max_concurrent_api_calls(5), 4);
    assert_eq!(double.rate_limited_api_calls(Endpoint::ShoptetApi, "5"), 1);
    assert_eq!(double.calls(Endpoint::ShoptetApi, "5"), 4);
}

#[tokio::test]
async fn a_connection_refusal_has_no_retry_after_and_answered_calls_free_their_slots() {
    let double = PlatformDouble::start().await;
    let token = api_token(&double, 5).await;
    double.set_latency(Duration::from_millis(300));

    let held: Vec<_> = (0..3)
        .map(|_| {
            let double = double.clone();
            let token = token.clone();
            tokio::spawn(async move { eshop(&double, &token).await.status() })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = eshop(&double, &token).await;

    assert_eq!(refused.status(), 429);
    assert!(refused.headers().get("retry-after").is_none());
    for call in held {
        assert_eq!(call.await.unwrap(), 200);
    }
    double.set_latency(Duration::ZERO);
    assert_eq!(eshop(&double, &token).await.status(), 200);
    assert_eq!(double.max_concurrent_api_calls(5), 4);
}

#[tokio::test]
async fn three_concurrent_calls_on_one_token_all_succeed() {
    let double = PlatformDouble::start().await;
    let token = api_token(&double, 5).await;
    double.set_latency(Duration::from_millis(300));

    let results = all_at_once(&double, &[&token], 3).await;

    assert_eq!(statuses(&results), [200, 200, 200]);
    assert_eq!(double.max_concurrent_api_calls(5), 3);
    assert_eq!(double.rate_limited_api_calls(Endpoint::ShoptetApi, "5"), 0);
}

#[tokio::test]
async fn each_token_of_an_eshop_has_its_own_three_connections() {
    let double = PlatformDouble::start().await;
    let oauth = install(&double, 5).await;
    let first = get_access_token(&double, &oauth).await.1["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = get_access_token(&double, &oauth).await.1["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    double.set_latency(Duration::from_millis(300));

    let results = all_at_once(&double, &[&first, &second], 3).await;

    assert_eq!(statuses(&results), [200; 6]);
    assert_eq!(double.max_concurrent_api_calls(5), 3);
}

#[tokio::test]
async fn calls_with_unknown_tokens_are_not_limited() {
    let double = PlatformDouble::start().await;
    double.set_latency(Duration::from_millis(300));

    let results = all_at_once(&double, &["5-a-unknown"], 5).await;

    assert_eq!(statuses(&results), [401; 5]);
    assert_eq!(double.max_concurrent_api_calls(5), 0);
    assert_eq!(
        double.rate_limited_api_calls(Endpoint::ShoptetApi, "unknown"),
        0
    );
}

#[tokio::test]
async fn every_answer_to_a_known_token_carries_the_bucket_filling() {
    let double = PlatformDouble::start_with(DoubleConfig {
        // Slow enough that no drop leaks during the test.
        shoptet_bucket_drain_per_second: 1,
        ..DoubleConfig::default()
    })
    .await;
    let token = api_token(&double, 5).await;

    let ok = eshop(&double, &token).await;
    let forbidden = api_get(&double, "orders", &token).await;
    double.expire_api_tokens(5);
    let expired = eshop(&double, &token).await;
    let unknown = eshop(&double, "5-a-unknown").await;

    assert_eq!(ok.status(), 200);
    assert_eq!(filling(&ok), Some("1/200"));
    assert_eq!(forbidden.status(), 403);
    assert_eq!(filling(&forbidden), Some("2/200"));
    assert_eq!(expired.status(), 401);
    assert_eq!(filling(&expired), Some("3/200"));
    assert_eq!(filling(&unknown), None, "no e-shop to charge");
}

#[tokio::test]
async fn a_full_bucket_refuses_with_an_http_date_to_retry_after() {
    let double = PlatformDouble::start_with(DoubleConfig {
        shoptet_bucket_capacity: 3,
        shoptet_bucket_drain_per_second: 1,
        ..DoubleConfig::default()
    })
    .await;
    let token = api_token(&double, 5).await;

    for expected in ["1/3", "2/3", "3/3"] {
        let response = eshop(&double, &token).await;
        assert_eq!(response.status(), 200);
        assert_eq!(filling(&response), Some(expected));
    }
    let refused = eshop(&double, &token).await;

    assert_eq!(refused.status(), 429);
    assert_eq!(filling(&refused), Some("3/3"));
    let retry_at = retry_after_date(&refused);
    let now = SystemTime::now();
    assert!(retry_at > now, "{retry_at:?} is not after {now:?}");
    assert!(retry_at <= now + Duration::from_secs(2), "{retry_at:?}");
    let (_, body) = read(refused).await;
    assert_eq!(body["errors"][0]["errorCode"], "too-many-requests");

    let again = eshop(&double, &token).await;
    assert_eq!(again.status(), 429);
    assert_eq!(filling(&again), Some("3/3"), "a refusal costs nothing");
    assert_eq!(double.rate_limited_api_calls(Endpoint::ShoptetApi, "5"), 2);
    assert_eq!(double.calls(Endpoint::ShoptetApi, "5"), 5);
}

#[tokio::test]
async fn waiting_until_the_retry_after_date_is_never_too_early() {
    let double = PlatformDouble::start_with(DoubleConfig {
        shoptet_bucket_capacity: 1,
        ..DoubleConfig::default()
    })
    .await;
    let token = api_token(&double, 5).await;
    assert_eq!(eshop(&double, &token).await.status(), 200);
    let refused = eshop(&double, &token).await;
    assert_eq!(refused.status(), 429);

    let wait = retry_after_date(&refused)
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    assert!(wait <= Duration::from_millis(1100), "{wait:?}");
    tokio::time::sleep(wait).await;

    assert_eq!(eshop(&double, &token).await.status(), 200);
}

#[tokio::test]
async fn the_bucket_leaks_at_its_drain_rate() {
    let double = PlatformDouble::start_with(DoubleConfig {
        shoptet_bucket_capacity: 2,
        shoptet_bucket_drain_per_second: 10,
        ..DoubleConfig::default()
    })
    .await;
    let token = api_token(&double, 5).await;
    eshop(&double, &token).await;
    eshop(&double, &token).await;

    tokio::time::sleep(Duration::from_millis(250)).await;
    let response = eshop(&double, &token).await;

    assert_eq!(response.status(), 200);
    assert_eq!(filling(&response), Some("1/2"));
}

#[tokio::test]
async fn a_fourth_shoprenter_request_within_a_second_is_refused() {
    let double = PlatformDouble::start().await;
    let token = shoprenter_token(&double, "demoshop").await;

    let mut answers = Vec::new();
    for _ in 0..4 {
        answers.push(shoprenter_get(&double, "demoshop", &token).await);
    }
    let other_shop = shoprenter_get(&double, "othershop", "whatever").await;

    let refused = answers.pop().unwrap();
    assert!(answers.iter().all(|a| a.status() == 200));
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().get("retry-after").is_none());
    assert_eq!(read(refused).await.1, json!({"error": "too_many_requests"}));
    assert_eq!(other_shop.status(), 401, "another shop has its own limit");
    assert_eq!(double.max_shoprenter_requests_per_second("demoshop"), 3);
    assert_eq!(
        double.rate_limited_api_calls(Endpoint::ShoprenterApi, "demoshop"),
        1
    );
    assert_eq!(double.calls(Endpoint::ShoprenterApi, "demoshop"), 4);
}

#[tokio::test]
async fn the_shoprenter_window_slides_on() {
    let double = PlatformDouble::start_with(DoubleConfig {
        shoprenter_requests_per_second: 2,
        ..DoubleConfig::default()
    })
    .await;
    let token = shoprenter_token(&double, "demoshop").await;
    assert_eq!(
        shoprenter_get(&double, "demoshop", &token).await.status(),
        200
    );
    assert_eq!(
        shoprenter_get(&double, "demoshop", &token).await.status(),
        200
    );
    assert_eq!(
        shoprenter_get(&double, "demoshop", &token).await.status(),
        429
    );

    tokio::time::sleep(Duration::from_millis(1000)).await;

    assert_eq!(
        shoprenter_get(&double, "demoshop", &token).await.status(),
        200
    );
    assert_eq!(double.max_shoprenter_requests_per_second("demoshop"), 2);
}

#[tokio::test]
async fn a_refused_call_leaves_the_injected_fault_for_the_next_call() {
    let double = PlatformDouble::start_with(DoubleConfig {
        shoprenter_requests_per_second: 0,
        ..DoubleConfig::default()
    })
    .await;
    double.inject(None, Fault::ServerError(502), 1);

    let refused = shoprenter_get(&double, "demoshop", "whatever").await;
    let faulted = eshop(&double, "whatever").await;

    assert_eq!(refused.status(), 429);
    assert_eq!(faulted.status(), 502);
}

#[tokio::test]
async fn resetting_the_counters_forgets_what_the_limits_saw() {
    let double = PlatformDouble::start_with(DoubleConfig {
        shoprenter_requests_per_second: 1,
        ..DoubleConfig::default()
    })
    .await;
    let token = api_token(&double, 5).await;
    eshop(&double, &token).await;
    shoprenter_get(&double, "demoshop", "whatever").await;
    shoprenter_get(&double, "demoshop", "whatever").await;

    double.reset_counters();

    assert_eq!(double.max_concurrent_api_calls(5), 0);
    assert_eq!(double.max_shoprenter_requests_per_second("demoshop"), 0);
    assert_eq!(
        double.rate_limited_api_calls(Endpoint::ShoprenterApi, "demoshop"),
        0
    );
    // The window itself still holds the earlier arrival.
    assert_eq!(
        shoprenter_get(&double, "demoshop", "whatever")
            .await
            .status(),
        429
    );
}
