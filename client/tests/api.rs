//! The platform-API client against the real broker and the platform
//! double (see `common`): token refusals, rate limits, locks and the
//! platforms' request limits, observed at the double.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Counting, ESHOP, LocalBroker, Setup, eshop};
use platform_double::{DoubleConfig, Endpoint, Fault};
use shop_token_client::{
    ApiClient, ApiError, ApiRequest, ClientError, ExposeSecret, HttpTransport, Method, Shop,
    StatusCode, TokenClient,
};
use tokio::task::JoinSet;

const SHOPRENTER_SHOP: &str = "demo-shop";

type Api = ApiClient<Arc<Counting<HttpTransport>>>;

async fn api_with(broker: &LocalBroker, max_wait: Duration) -> (Api, Arc<Counting<HttpTransport>>) {
    let transport = broker.transport();
    let api = ApiClient::builder(TokenClient::new(Arc::clone(&transport)))
        .max_wait(max_wait)
        .build()
        .unwrap();
    (api, transport)
}

async fn api(broker: &LocalBroker) -> (Api, Arc<Counting<HttpTransport>>) {
    api_with(broker, Duration::from_secs(10)).await
}

fn api_calls(broker: &LocalBroker) -> u64 {
    broker
        .double
        .calls(Endpoint::ShoptetApi, &ESHOP.to_string())
}

fn shoprenter() -> Shop {
    Shop::shoprenter(SHOPRENTER_SHOP).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_get_reaches_the_shops_api_with_the_vended_token() {
    let broker = LocalBroker::start(Setup::default()).await;
    broker.install(ESHOP).await;
    let (api, transport) = api(&broker).await;

    let response = api.get(&eshop(), "/eshop").await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = response.json().unwrap();
    assert_eq!(
        body["data"]["contactInformation"]["eshopName"],
        format!("Double e-shop {ESHOP}")
    );
    assert!(
        response
            .headers()
            .contains_key("x-ratelimit-bucket-filling")
    );
    assert_eq!(
        (transport.vends(), broker.mints(ESHOP), api_calls(&broker)),
        (1, 1, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_token_is_reported_once_replaced_once_and_every_call_succeeds() {
    let broker = LocalBroker::start(Setup::default()).await;
    broker.install(ESHOP).await;
    let (api, transport) = api(&broker).await;
    api.get(&eshop(), "/eshop").await.unwrap();
    let first = api.tokens().cached_token(&eshop()).unwrap();

    // Shoptet ends the token early: every call now meets `expired-token`.
    broker.double.expire_api_tokens(ESHOP);
    let mut calls = JoinSet::new();
    for _ in 0..10 {
        let api = api.clone();
        calls.spawn(async move { api.get(&eshop(), "/eshop").await });
    }
    while let Some(result) = calls.join_next().await {
        assert_eq!(result.unwrap().unwrap().status(), StatusCode::OK);
    }

    assert_eq!(transport.stale_reports(), 1, "one report for all ten");
    assert_eq!(transport.vends(), 2);
    assert_eq!(
        broker.mints(ESHOP),
        2,
        "the first token and its replacement"
    );
    let second = api.tokens().cached_token(&eshop()).unwrap();
    assert!(!second.is_same_token(&first));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_without_the_rights_is_answered_403_and_never_retried() {
    let broker = LocalBroker::start(Setup::default()).await;
    broker.install(ESHOP).await;
    let (api, transport) = api(&broker).await;

    let response = api
        .send(
            &eshop(),
            ApiRequest::new(Method::POST, "/products").json(&serde_json::json!({"data": {}})),
        )
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(response.error_codes(), ["invalid-token-no-rights"]);
    assert!(matches!(
        response.error_for_status(),
        Err(ApiError::Status {
            status: StatusCode::FORBIDDEN,
            ..
        })
    ));
    assert_eq!(api_calls(&broker), 1);
    assert_eq!((transport.vends(), transport.stale_reports()), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_429_with_an_http_date_is_waited_out_then_retried() {
    let broker = LocalBroker::start(Setup::default()).await;
    broker.install(ESHOP).await;
    let (api, _) = api(&broker).await;
    broker.double.inject(
        Some(Endpoint::ShoptetApi),
        Fault::RateLimitedHttpDate {
            retry_after_secs: 1,
        },
        1,
    );

    let response = api.get(&eshop(), "/eshop").await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(api_calls(&broker), 2, "the 429, then the retry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_429_longer_than_the_bound_is_a_typed_rate_limit_error() {
    let broker = LocalBroker::start(Setup::default()).await;
    broker.install(ESHOP).await;
    let (api, _) = api_with(&broker, Duration::from_millis(500)).await;
    broker.double.inject(
        Some(Endpoint::ShoptetApi),
        Fault::RateLimitedHttpDate {
            retry_after_secs: 30,
        },
        1,
    );

    let error = api.get(&eshop(), "/eshop").await.unwrap_err();

    let ApiError::RateLimited { retry_after } = error else {
        panic!("{error:?}");
    };
    assert!(retry_after > Duration::from_secs(20), "{retry_after:?}");
    assert_eq!(api_calls(&broker), 1, "no retry past the bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_after_beyond_any_clock_is_a_rate_limit_error_not_a_panic() {
    let broker = LocalBroker::start(Setup::default()).await;
    broker.install(ESHOP).await;
    let (api, _) = api(&broker).await;
    broker.double.inject(
        Some(Endpoint::ShoptetApi),
        Fault::RateLimited {
            retry_after_secs: u64::MAX,
        },
        1,
    );

    let error = api.get(&eshop(), "/eshop").await.unwrap_err();

    assert!(matches!(error, ApiError::RateLimited { .. }), "{error:?}");
    assert_eq!(api_calls(&broker), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_bucket_is_waited_out_and_every_call_succeeds() {
    let broker = LocalBroker::start(Setup {
        double: DoubleConfig {
            shoptet_bucket_capacity: 2,
            ..DoubleConfig::default()
        },
        ..Setup::default()
    })
    .await;
    broker.install(ESHOP).await;
    let (api, _) = api(&broker).await;

    let mut calls = JoinSet::new();
    for _ in 0..6 {
        let api = api.clone();
        calls.spawn(async move { api.get(&eshop(), "/eshop").await });
    }
    while let Some(result) = calls.join_next().await {
        assert_eq!(result.unwrap().unwrap().status(), StatusCode::OK);
    }

    let refused = broker
        .double
        .rate_limited_api_calls(Endpoint::ShoptetApi, &ESHOP.to_string());
    assert!(refused >= 1, "the bucket of 2 overflowed");
    assert_eq!(api_calls(&broker), 6 + refused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_locked_write_is_retried_after_a_short_back_off() {
    let broker = LocalBroker::start(Setup::default()).await;
    broker.install(ESHOP).await;
    let (api, _) = api(&broker).await;
    broker
        .double
        .inject(Some(Endpoint::ShoptetApi), Fault::Locked, 2);

    let response = api.get(&eshop(), "/eshop").await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(api_calls(&broker), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lock_held_past_the_bound_is_a_locked_error() {
    let broker = LocalBroker::start(Setup::default()).await;
    broker.install(ESHOP).await;
    // The bound runs from the call's start, the first vend included: the
    // 250 ms back-off fits while the first answer comes within 350 ms, and
    // the second (500 ms) never does.
    let (api, _) = api_with(&broker, Duration::from_millis(600)).await;
    broker
        .double
        .inject(Some(Endpoint::ShoptetApi), Fault::Locked, 10);

    let error = api.get(&eshop(), "/eshop").await.unwrap_err();

    assert_eq!(error, ApiError::Locked);
    assert_eq!(
        api_calls(&broker),
        2,
        "one back-off of 250 ms fits in 600 ms, not two"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_most_three_requests_per_shoptet_token_are_in_flight() {
    let broker = LocalBroker::start(Setup::default()).await;
    broker.install(ESHOP).await;
    let (api, _) = api(&broker).await;
    api.get(&eshop(), "/eshop").await.unwrap();
    broker.double.set_latency(Duration::from_millis(150));

    let mut calls = JoinSet::new();
    for _ in 0..12 {
        let api = api.clone();
        calls.spawn(async move { api.get(&eshop(), "/eshop").await });
    }
    while let Some(result) = calls.join_next().await {
        assert_eq!(result.unwrap().unwrap().status(), StatusCode::OK);
    }

    assert_eq!(broker.double.max_concurrent_api_calls(ESHOP), 3);
    assert_eq!(
        broker
            .double
            .rate_limited_api_calls(Endpoint::ShoptetApi, &ESHOP.to_string()),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_most_three_requests_per_second_reach_a_shoprenter_shop() {
    let broker = LocalBroker::start(Setup::default()).await;
    broker.install_shoprenter(SHOPRENTER_SHOP).await;
    let (api, _) = api(&broker).await;

    let mut calls = JoinSet::new();
    for _ in 0..7 {
        let api = api.clone();
        calls.spawn(async move { api.get(&shoprenter(), "/products").await });
    }
    while let Some(result) = calls.join_next().await {
        assert_eq!(result.unwrap().unwrap().status(), StatusCode::OK);
    }

    let double = &broker.double;
    assert_eq!(double.calls(Endpoint::ShoprenterApi, SHOPRENTER_SHOP), 7);
    assert_eq!(
        double.max_shoprenter_requests_per_second(SHOPRENTER_SHOP),
        3
    );
    assert_eq!(
        double.rate_limited_api_calls(Endpoint::ShoprenterApi, SHOPRENTER_SHOP),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shoprenter_call_asks_for_json_and_gets_json_not_xml() {
    let broker = LocalBroker::start(Setup::default()).await;
    broker.install_shoprenter(SHOPRENTER_SHOP).await;
    let (api, _) = api(&broker).await;

    let response = api.get(&shoprenter(), "/products").await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: serde_json::Value = response.json().unwrap();
    assert_eq!(
        body,
        serde_json::json!({"ok": true, "shop": SHOPRENTER_SHOP, "path": "products"})
    );
    assert_eq!(
        broker
            .double
            .calls(Endpoint::ShoprenterApi, SHOPRENTER_SHOP),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_shoprenter_token_is_reported_and_the_call_retried_once() {
    let broker = LocalBroker::start(Setup::default()).await;
    broker.install_shoprenter(SHOPRENTER_SHOP).await;
    let (api, transport) = api(&broker).await;
    api.get(&shoprenter(), "/products").await.unwrap();

    broker.double.expire_shoprenter_tokens(SHOPRENTER_SHOP);
    let response = api.get(&shoprenter(), "/products").await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(transport.stale_reports(), 1);
    let double = &broker.double;
    assert_eq!(double.calls(Endpoint::ShoprenterApi, SHOPRENTER_SHOP), 3);
    assert_eq!(double.calls(Endpoint::ShoprenterToken, SHOPRENTER_SHOP), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shop_without_an_installation_gets_the_brokers_error_and_no_api_call() {
    let broker = LocalBroker::start(Setup::default()).await;
    let (api, _) = api(&broker).await;

    let error = api.get(&eshop(), "/eshop").await.unwrap_err();

    assert_eq!(error, ApiError::Token(ClientError::NotInstalled));
    assert_eq!(api_calls(&broker), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_answer_error_or_debug_output_shows_a_token() {
    let broker = LocalBroker::start(Setup::default()).await;
    broker.install(ESHOP).await;
    let (api, _) = api_with(&broker, Duration::ZERO).await;
    let mut printed = Vec::new();

    let ok = api.get(&eshop(), "/eshop").await.unwrap();
    printed.push(format!("{ok:?}"));
    let token = api.tokens().cached_token(&eshop()).unwrap();
    let forbidden = api.get(&eshop(), "/orders").await.unwrap();
    let refused = forbidden.clone().error_for_status().unwrap_err();
    printed.push(format!("{forbidden:?} {refused} {refused:?}"));
    broker.double.inject(
        Some(Endpoint::ShoptetApi),
        Fault::RateLimitedHttpDate {
            retry_after_secs: 5,
        },
        1,
    );
    let throttled = api.get(&eshop(), "/eshop").await.unwrap_err();
    assert!(
        matches!(throttled, ApiError::RateLimited { .. }),
        "{throttled:?}"
    );
    printed.push(format!("{throttled} {throttled:?}"));
    broker.double.expire_api_tokens(ESHOP);
    broker.double.uninstall(ESHOP);
    let gone = api.get(&eshop(), "/eshop").await.unwrap_err();
    assert_eq!(gone, ApiError::Token(ClientError::NotInstalled));
    printed.push(format!("{gone} {gone:?} {api:?}"));

    let secret = token.access_token().expose_secret();
    for text in printed {
        assert!(!text.contains(secret), "a token in: {text}");
    }
}
