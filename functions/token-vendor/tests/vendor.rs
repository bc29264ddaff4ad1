//! The token vendor against moto and the platform double, over the real SDK.

mod common;

use std::sync::Arc;
use std::time::Duration;

use broker_domain::http::HttpError;
use broker_domain::ids::ShopRef;
use broker_domain::secret::{ApiAccessToken, ExposeSecret, OAuthAccessToken};
use common::{Fleet, http, request, shoptet, vend};
use lambda_http::http::StatusCode;
use platform_double::{DoubleConfig, Endpoint, Fault, InstallationState};
use serde_json::json;
use token_vendor::{Source, TokenResponse, VendError, VendRequest};

fn lifetime(secs: u64) -> DoubleConfig {
    DoubleConfig {
        api_token_lifetime: Duration::from_secs(secs),
        ..DoubleConfig::default()
    }
}

#[tokio::test]
async fn a_cold_cache_mints_then_l1_then_a_fresh_instance_reads_l2() {
    let fleet = Fleet::start().await;
    fleet.install_shoptet(222651).await;
    let shop = shoptet(222651);
    let first_instance = fleet.instance().await;

    let minted = vend(&first_instance, &request(&shop)).await.unwrap();
    let from_memory = vend(&first_instance, &request(&shop)).await.unwrap();
    let from_table = vend(&fleet.instance().await, &request(&shop))
        .await
        .unwrap();

    assert_eq!(
        (minted.source, from_memory.source, from_table.source),
        (Source::Minted, Source::L1, Source::L2)
    );
    assert_eq!(
        fleet
            .double
            .calls(Endpoint::ShoptetGetAccessToken, "222651"),
        1
    );
    assert_eq!(minted.token.access_token, from_memory.token.access_token);
    assert_eq!(minted.token.access_token, from_table.token.access_token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_storm_of_256_requests_over_8_instances_mints_exactly_once() {
    let fleet = Fleet::start().await;
    fleet.install_shoptet(1000).await;
    let shop = shoptet(1000);
    let mut instances = Vec::new();
    for _ in 0..8 {
        instances.push(Arc::new(fleet.instance().await));
    }

    let tokens = common::vend_concurrently(&instances, &request(&shop), 256).await;

    assert_eq!(
        fleet.double.calls(Endpoint::ShoptetGetAccessToken, "1000"),
        1
    );
    assert!(tokens.iter().all(|token| *token == tokens[0]));
    assert_eq!(tokens[0].expose_secret(), {
        let entry = fleet.cache_entry(&shop).await.unwrap();
        entry.token.unwrap().access_token.expose_secret().to_owned()
    });
}

#[tokio::test]
async fn min_ttl_seconds_forces_a_fresher_token_only_when_needed() {
    let fleet = Fleet::start_with(lifetime(1000), &[]).await;
    fleet.install_shoptet(2100).await;
    let instance = fleet.instance().await;
    let shop = shoptet(2100);
    let with_min_ttl = |seconds| VendRequest {
        min_ttl: Some(Duration::from_secs(seconds)),
        ..request(&shop)
    };

    let first = vend(&instance, &request(&shop)).await.unwrap();
    let enough = vend(&instance, &with_min_ttl(900)).await.unwrap();
    let fresher = vend(&instance, &with_min_ttl(1200)).await.unwrap();

    assert_eq!(enough.source, Source::L1);
    assert_eq!(fresher.source, Source::Minted);
    assert_ne!(first.token.access_token, fresher.token.access_token);
    assert_eq!(
        fleet.double.calls(Endpoint::ShoptetGetAccessToken, "2100"),
        2
    );
}

#[tokio::test]
async fn min_ttl_beyond_a_tokens_lifetime_is_a_bad_request() {
    let fleet = Fleet::start().await;
    let instance = fleet.instance().await;

    let (status, _, body) = http(
        &instance,
        "POST",
        "/tokens/shoptet/2200",
        Some(json!({"min_ttl_seconds": 1800})),
    )
    .await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_request");
    assert_eq!(fleet.double.total_calls(), 0);
}

#[tokio::test]
async fn an_upstream_cap_refusal_is_reported_not_crashed_on() {
    let fleet = Fleet::start().await;
    fleet.install_shoptet(4100).await;
    // Five tokens minted by someone else: the double refuses the sixth.
    let oauth = OAuthAccessToken::new(fleet.double.oauth_access_token(4100).unwrap());
    let elsewhere = common::minting_client(&fleet.double);
    for _ in 0..5 {
        elsewhere.mint_api_token(&oauth).await.unwrap();
    }
    let instance = fleet.instance().await;

    let (status, retry_after, body) = http(&instance, "GET", "/tokens/shoptet/4100", None).await;

    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "token_cap_reached");
    assert!(retry_after.is_some());
    assert!(
        fleet
            .cache_entry(&shoptet(4100))
            .await
            .unwrap()
            .token
            .is_none()
    );
}

#[tokio::test]
async fn failures_answer_their_documented_codes_and_cache_nothing() {
    let fleet = Fleet::start_with(
        DoubleConfig::default(),
        &[
            ("UPSTREAM_TIMEOUT_MS", "500"),
            ("UPSTREAM_CONNECT_TIMEOUT_MS", "500"),
            ("LEASE_SECONDS", "2"),
        ],
    )
    .await;
    for id in [6001, 6002, 6003, 6004, 6005] {
        fleet.install_shoptet(id).await;
    }
    fleet
        .double
        .set_installation_state(6002, InstallationState::Suspended);
    fleet.double.uninstall(6005);
    let instance = fleet.instance().await;

    let (status, _, body) = http(&instance, "GET", "/tokens/shoptet/6000", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_installed")),
        "no secret"
    );
    let (status, _, body) = http(&instance, "GET", "/tokens/shoptet/6005", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_installed")),
        "uninstalled"
    );
    let (status, _, body) = http(&instance, "GET", "/tokens/shoptet/6002", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("addon_suspended"))
    );
    fleet.double.inject(
        Some(Endpoint::ShoptetGetAccessToken),
        Fault::ServerError(500),
        1,
    );
    let (status, _, body) = http(&instance, "GET", "/tokens/shoptet/6001", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("upstream_unavailable")
        ),
        "5xx"
    );
    fleet.double.set_latency(Duration::from_secs(2));
    let (status, _, body) = http(&instance, "GET", "/tokens/shoptet/6003", None).await;
    fleet.double.set_latency(Duration::ZERO);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("upstream_unavailable")
        ),
        "timeout"
    );

    for id in [6000, 6001, 6002, 6003, 6005] {
        let entry = fleet.cache_entry(&shoptet(id)).await.unwrap_or_default();
        assert!(entry.token.is_none(), "{id} cached a token");
        assert!(entry.lease.is_none(), "{id} kept its lease");
    }
    // The failed shop recovers on the next request.
    let (status, _, _) = http(&instance, "GET", "/tokens/shoptet/6001", None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn an_unreachable_token_table_answers_store_unavailable() {
    let mut fleet = Fleet::start().await;
    fleet.install_shoptet(7000).await;
    fleet.store_aws =
        test_support::sdk_config_for_endpoint(&test_support::unreachable_endpoint()).await;
    fleet.env.remove("SHOPRENTER_CLIENT_ID");
    fleet.env.remove("SHOPRENTER_CLIENT_SECRET_ID");
    let instance = fleet.instance().await;

    let (status, _, body) = http(&instance, "GET", "/tokens/shoptet/7000", None).await;

    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "store_unavailable");
    assert_eq!(
        fleet.double.calls(Endpoint::ShoptetGetAccessToken, "7000"),
        0
    );
}

#[tokio::test]
async fn direct_invocation_and_http_return_identical_json() {
    let fleet = Fleet::start().await;
    fleet.install_shoptet(8000).await;
    let instance = fleet.instance().await;

    let (status, _, over_http) = http(&instance, "GET", "/tokens/shoptet/8000", None).await;
    let payload = json!({"platform": "shoptet", "shop": "8000"}).to_string();
    let direct = instance
        .handle(lambda_http::request::from_str(&payload).unwrap())
        .await
        .unwrap();
    let (_, direct) = common::into_json(direct);

    assert_eq!(status, StatusCode::OK);
    let without_countdown = |mut body: serde_json::Value| {
        body.as_object_mut().unwrap().remove("expires_in");
        body
    };
    assert_eq!(
        without_countdown(over_http.clone()),
        without_countdown(direct)
    );
    assert_eq!(over_http["header_name"], "Shoptet-Access-Token");
    assert_eq!(over_http["header_value"], over_http["access_token"]);
    assert_eq!(over_http["api_base_url"], fleet.double.shoptet_api_url());
    assert!(humantime::parse_rfc3339(over_http["expires_at"].as_str().unwrap()).is_ok());
    assert!(over_http["expires_in"].as_u64().unwrap() > 1700);
}

#[tokio::test]
async fn direct_invocation_errors_carry_the_code_as_error_type() {
    let fleet = Fleet::start().await;
    let instance = fleet.instance().await;
    let payload = json!({"platform": "shoptet", "shop": "9000"}).to_string();

    let error = instance
        .handle(lambda_http::request::from_str(&payload).unwrap())
        .await
        .unwrap_err();
    let diagnostic = token_vendor::diagnostic(error);

    assert_eq!(diagnostic.error_type, "not_installed");
    let bad = json!({"platform": "magento", "shop": "1"}).to_string();
    let error = instance
        .handle(lambda_http::request::from_str(&bad).unwrap())
        .await
        .unwrap_err();
    assert_eq!(error, VendError::InvalidRequest(error.to_string()));
    assert_eq!(error.code().as_str(), "invalid_request");
}

#[tokio::test]
async fn shoprenter_tokens_carry_their_scopes_and_shop_credentials_win_over_the_apps() {
    let fleet = Fleet::start().await;
    fleet.double.register_shoprenter_client(
        "app-shop",
        common::APP_CLIENT_ID,
        common::APP_CLIENT_SECRET,
        &["product:read"],
    );
    fleet.double.register_shoprenter_client(
        "own-shop",
        common::APP_CLIENT_ID,
        common::APP_CLIENT_SECRET,
        &["product:read"],
    );
    fleet.double.register_shoprenter_client(
        "own-shop",
        "own-client",
        "own-secret-0123456789",
        &["order:read", "order:write"],
    );
    fleet
        .store_shoprenter_credentials("own-shop", "own-client", "own-secret-0123456789")
        .await;
    let instance = fleet.instance().await;

    // The app's own credentials serve only shops that installed the app.
    let (status, _, refused) = http(&instance, "GET", "/tokens/shoprenter/app-shop", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{refused}");
    assert_eq!(refused["error"]["code"], "not_installed");
    assert_eq!(fleet.double.total_calls(), 0);
    fleet
        .register_installed(&ShopRef::parse("shoprenter", "app-shop").unwrap())
        .await;

    let (status, _, app) = http(&instance, "GET", "/tokens/shoprenter/app-shop", None).await;
    let (_, _, own) = http(&instance, "GET", "/tokens/shoprenter/own-shop", None).await;

    assert_eq!(status, StatusCode::OK, "{app}");
    assert_eq!(app["scopes"], json!(["product:read"]));
    assert_eq!(own["scopes"], json!(["order:read", "order:write"]));
    assert_eq!(own["header_name"], "Authorization");
    assert_eq!(
        own["header_value"],
        format!("Bearer {}", own["access_token"].as_str().unwrap())
    );
    assert_eq!(
        own["api_base_url"],
        fleet.double.shoprenter_api_url("own-shop")
    );
    let shop = ShopRef::parse("shoprenter", "own-shop").unwrap();
    let cached = fleet.cache_entry(&shop).await.unwrap().token.unwrap();
    assert_eq!(
        cached.access_token,
        ApiAccessToken::new(own["access_token"].as_str().unwrap())
    );
}

#[tokio::test]
async fn bad_paths_and_bodies_are_refused_before_any_upstream_call() {
    let fleet = Fleet::start().await;
    let instance = fleet.instance().await;
    for (method, path, body) in [
        ("GET", "/tokens/magento/1", None),
        ("GET", "/tokens/shoptet/abc", None),
        ("GET", "/tokens/shoptet/0123", None),
        ("GET", "/tokens/shoprenter/Bad.Shop", None),
        (
            "POST",
            "/tokens/shoptet/1",
            Some(json!({"min_ttl_seconds": "soon"})),
        ),
        ("POST", "/tokens/shoptet/1", Some(json!({"unknown": 1}))),
        ("DELETE", "/tokens/shoptet/1", None),
    ] {
        let (status, _, response) = http(&instance, method, path, body).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{method} {path}: {response}"
        );
        assert_eq!(response["error"]["code"], "invalid_request");
    }
    let (status, _, _) = http(&instance, "GET", "/elsewhere", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(fleet.double.total_calls(), 0);
}

#[tokio::test]
async fn an_instance_serving_many_shops_keeps_state_for_a_bounded_number() {
    let fleet = Fleet::start().await;
    for eshop_id in [31, 32, 33] {
        fleet.install_shoptet(eshop_id).await;
    }
    let instance = fleet
        .instance_with(|config| {
            config.vendor.remembered_shops = std::num::NonZeroUsize::new(2).unwrap()
        })
        .await;

    for eshop_id in [31, 32, 33] {
        let vended = vend(&instance, &request(&shoptet(eshop_id))).await.unwrap();
        assert_eq!(vended.source, Source::Minted);
    }
    assert_eq!(instance.vendor().remembered_shops(), 2);
    // The least recently served shop was forgotten here, not in the table.
    let again = vend(&instance, &request(&shoptet(31))).await.unwrap();
    assert_eq!(again.source, Source::L2);
    assert_eq!(instance.vendor().remembered_shops(), 2);
    assert_eq!(fleet.double.calls(Endpoint::ShoptetGetAccessToken, "31"), 1);
}

#[tokio::test]
async fn the_token_response_is_a_typed_shape_whose_debug_hides_the_token() {
    let fleet = Fleet::start().await;
    fleet.install_shoptet(41).await;
    let instance = fleet.instance().await;

    let (status, _, body) = http(&instance, "GET", "/tokens/shoptet/41", None).await;
    assert_eq!(status, StatusCode::OK);
    let response: TokenResponse = serde_json::from_value(body.clone()).unwrap();

    assert_eq!(serde_json::to_value(&response).unwrap(), body);
    assert_eq!(response.shop, "41");
    assert_eq!(response.header_name, "Shoptet-Access-Token");
    assert_eq!(response.header_value, response.access_token);
    assert_eq!(response.scopes, None);
    test_support::LeakScanner::new([response.access_token.as_str()])
        .assert_absent("the response's Debug", &format!("{response:?}"));
}

#[tokio::test]
async fn a_shoptet_token_is_never_cached_past_its_documented_lifetime() {
    // Should Shoptet ever grant longer, the broker still refreshes on its
    // documented 1800 s (confirmations derive a token's mint time from it).
    let fleet = Fleet::start_with(lifetime(3600), &[]).await;
    fleet.install_shoptet(222660).await;
    let vended = vend(&fleet.instance().await, &request(&shoptet(222660)))
        .await
        .unwrap();
    let left = vended
        .token
        .expires_at
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    assert!(left <= Duration::from_secs(1800), "{left:?}");
    assert!(left > Duration::from_secs(1790), "{left:?}");
}
