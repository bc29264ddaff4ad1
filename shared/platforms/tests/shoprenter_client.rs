//! `ShoprenterClient` over real HTTP against the platform double, and
//! `JwtClaims::decode` on hand-built tokens.

mod common;

use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use broker_domain::ids::ShoprenterShopName;
use broker_domain::model::ShoprenterCredentials;
use broker_domain::secret::{ApiAccessToken, ClientSecret, ExposeSecret};
use broker_platforms::shoprenter::{JwtClaims, ShoprenterClient, ShoprenterError};
use broker_platforms::upstream::{TransportError, UpstreamFailure};
use platform_double::{DoubleConfig, Endpoint, Fault, PlatformDouble};

use common::{assert_about_from_now, http_client, impatient_http_client, upstream};

const SHOP: &str = "demo-shop";
const CLIENT_ID: &str = "app-client-id";
const CLIENT_SECRET: &str = "app-client-secret-0123456789";
const SCOPES: [&str; 2] = ["product:read", "order:write"];
const TOKEN_LIFETIME: Duration = Duration::from_secs(900);

async fn double() -> PlatformDouble {
    let double = PlatformDouble::start_with(DoubleConfig {
        shoprenter_token_lifetime: TOKEN_LIFETIME,
        ..DoubleConfig::default()
    })
    .await;
    double.register_shoprenter_client(SHOP, CLIENT_ID, CLIENT_SECRET, &SCOPES);
    double
}

fn client(double: &PlatformDouble, http: reqwest::Client) -> ShoprenterClient {
    ShoprenterClient::new(http, upstream(&double.shoprenter_oauth_url()))
}

fn shop(name: &str) -> ShoprenterShopName {
    name.parse().expect("a valid shop name")
}

fn credentials(client_id: &str, secret: &str) -> ShoprenterCredentials {
    ShoprenterCredentials {
        client_id: client_id.to_owned(),
        client_secret: ClientSecret::new(secret),
    }
}

fn registered() -> ShoprenterCredentials {
    credentials(CLIENT_ID, CLIENT_SECRET)
}

fn assert_leaks_nothing(error: &ShoprenterError) {
    common::assert_leaks_nothing(error, &[CLIENT_SECRET]);
}

#[tokio::test]
async fn registered_credentials_get_a_token_with_the_registered_scopes() {
    let double = double().await;
    let client = client(&double, http_client());

    let token = client
        .request_token(&shop(SHOP), &registered())
        .await
        .unwrap();

    assert_eq!(token.scopes, SCOPES);
    assert_eq!(
        Some(token.access_token.expose_secret().to_owned()),
        double.last_shoprenter_token(SHOP)
    );
    let claims = JwtClaims::decode(&token.access_token).expect("a decodable JWT");
    let exp = claims.expires_at.expect("the double sets exp");
    assert!(token.expires_at <= exp, "{:?} > {exp:?}", token.expires_at);
    assert_about_from_now(token.expires_at, TOKEN_LIFETIME);
    assert_eq!(double.calls(Endpoint::ShoprenterToken, SHOP), 1);
}

#[tokio::test]
async fn a_wrong_client_secret_gets_invalid_client() {
    let double = double().await;
    let client = client(&double, http_client());
    let wrong = "wrong-client-secret-9876543210";

    let error = client
        .request_token(&shop(SHOP), &credentials(CLIENT_ID, wrong))
        .await
        .unwrap_err();

    assert_eq!(error, ShoprenterError::InvalidClient);
    assert!(!error.is_transient());
    assert_leaks_nothing(&error);
    common::assert_leaks_nothing(&error, &[wrong]);
}

#[tokio::test]
async fn an_unknown_shop_gets_invalid_client() {
    let double = double().await;
    let client = client(&double, http_client());

    let error = client
        .request_token(&shop("some-other-shop"), &registered())
        .await
        .unwrap_err();

    assert_eq!(error, ShoprenterError::InvalidClient);
    assert_leaks_nothing(&error);
}

#[tokio::test]
async fn an_empty_client_id_gets_invalid_request_with_a_hint_naming_it() {
    let double = double().await;
    let client = client(&double, http_client());

    let error = client
        .request_token(&shop(SHOP), &credentials("", CLIENT_SECRET))
        .await
        .unwrap_err();

    let ShoprenterError::InvalidRequest { hint: Some(hint) } = &error else {
        panic!("expected InvalidRequest with a hint, got {error:?}");
    };
    assert!(hint.contains("client_id"), "{hint:?}");
    assert!(error.to_string().contains("client_id"));
    assert!(!error.is_transient());
    assert_leaks_nothing(&error);
}

#[tokio::test]
async fn rate_limiting_is_reported_with_its_retry_after() {
    let double = double().await;
    let client = client(&double, http_client());
    double.inject(
        Some(Endpoint::ShoprenterToken),
        Fault::RateLimited {
            retry_after_secs: 7,
        },
        1,
    );

    let error = client
        .request_token(&shop(SHOP), &registered())
        .await
        .unwrap_err();

    assert_eq!(
        error,
        ShoprenterError::Upstream(UpstreamFailure::RateLimited {
            retry_after: Some(Duration::from_secs(7))
        })
    );
    assert!(error.is_transient());
    assert_leaks_nothing(&error);
}

#[tokio::test]
async fn a_server_error_is_reported_as_transient() {
    let double = double().await;
    let client = client(&double, http_client());
    double.inject(Some(Endpoint::ShoprenterToken), Fault::ServerError(502), 1);

    let error = client
        .request_token(&shop(SHOP), &registered())
        .await
        .unwrap_err();

    assert_eq!(
        error,
        ShoprenterError::Upstream(UpstreamFailure::ServerError { status: 502 })
    );
    assert!(error.is_transient());
    assert_leaks_nothing(&error);
}

#[tokio::test]
async fn a_slow_oauth_server_is_a_transport_timeout() {
    let double = double().await;
    let client = client(&double, impatient_http_client());
    double.set_latency(Duration::from_secs(1));

    let error = client
        .request_token(&shop(SHOP), &registered())
        .await
        .unwrap_err();

    assert_eq!(
        error,
        ShoprenterError::Upstream(UpstreamFailure::Transport(TransportError::Timeout))
    );
    assert!(error.is_transient());
    assert_leaks_nothing(&error);
}

#[tokio::test]
async fn a_dropped_connection_is_a_transport_unreachable() {
    let double = double().await;
    let client = client(&double, http_client());
    double.inject(Some(Endpoint::ShoprenterToken), Fault::Drop, 1);

    let error = client
        .request_token(&shop(SHOP), &registered())
        .await
        .unwrap_err();

    assert_eq!(
        error,
        ShoprenterError::Upstream(UpstreamFailure::Transport(TransportError::Unreachable))
    );
    assert_leaks_nothing(&error);
}

#[tokio::test]
async fn a_truncated_json_answer_is_a_malformed_response() {
    let double = double().await;
    let client = client(&double, http_client());
    double.inject(Some(Endpoint::ShoprenterToken), Fault::MalformedJson, 1);

    let error = client
        .request_token(&shop(SHOP), &registered())
        .await
        .unwrap_err();

    assert_eq!(
        error,
        ShoprenterError::Upstream(UpstreamFailure::MalformedResponse { status: 200 })
    );
    assert!(error.is_transient());
    assert_leaks_nothing(&error);
}

#[tokio::test]
async fn an_unknown_status_without_an_error_code_is_a_generic_rejection() {
    let double = double().await;
    let client = client(&double, http_client());
    double.inject(Some(Endpoint::ShoprenterToken), Fault::ServerError(418), 1);

    let error = client
        .request_token(&shop(SHOP), &registered())
        .await
        .unwrap_err();

    assert_eq!(
        error,
        ShoprenterError::Upstream(UpstreamFailure::Rejected {
            status: 418,
            code: "unrecognised".to_owned()
        })
    );
    assert_leaks_nothing(&error);
}

// ---------------------------------------------------------------- JwtClaims

fn hand_built_jwt(payload: &str, padded: bool) -> ApiAccessToken {
    let engine = if padded { &URL_SAFE } else { &URL_SAFE_NO_PAD };
    ApiAccessToken::new(format!(
        "{}.{}.{}",
        engine.encode(br#"{"typ":"JWT","alg":"RS256"}"#),
        engine.encode(payload),
        engine.encode(b"not-a-real-signature"),
    ))
}

#[test]
fn a_padded_jwt_with_a_space_separated_scope_string_is_decoded() {
    // 2 padding characters on the payload: its JSON is 1 byte over a multiple of 3.
    let payload = r#"{"exp":1700000000,"scope":"product:read  order:write  customer"}"#;
    assert_eq!(payload.len() % 3, 1);
    let jwt = hand_built_jwt(payload, true);
    assert!(jwt.expose_secret().contains("=."), "the payload is padded");

    let claims = JwtClaims::decode(&jwt).expect("padding is tolerated");

    assert_eq!(
        claims,
        JwtClaims {
            expires_at: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            scopes: vec![
                "product:read".to_owned(),
                "order:write".to_owned(),
                "customer".to_owned()
            ],
        }
    );
}

#[test]
fn an_exp_beyond_any_clock_or_not_a_whole_number_is_no_expiry_and_no_panic() {
    for payload in [
        r#"{"exp":18446744073709551615,"scopes":["a"]}"#,
        r#"{"exp":-1,"scopes":["a"]}"#,
        r#"{"exp":1700000000.5,"scopes":["a"]}"#,
        r#"{"exp":"1700000000","scopes":["a"]}"#,
        r#"{"scopes":["a"]}"#,
    ] {
        let claims = JwtClaims::decode(&hand_built_jwt(payload, false)).expect(payload);
        assert_eq!(claims.expires_at, None, "{payload}");
        assert_eq!(claims.scopes, ["a"], "{payload}");
    }
}

#[test]
fn an_unpadded_jwt_with_a_scopes_array_is_decoded() {
    let jwt = hand_built_jwt(r#"{"exp":1700000000,"scopes":["a","b"]}"#, false);

    let claims = JwtClaims::decode(&jwt).unwrap();

    assert_eq!(claims.scopes, ["a", "b"]);
    assert_eq!(
        claims.expires_at,
        Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
    );
}

#[test]
fn a_jwt_without_exp_or_scopes_decodes_to_empty_claims() {
    let claims = JwtClaims::decode(&hand_built_jwt(r#"{"sub":"demo-shop"}"#, false)).unwrap();

    assert_eq!(
        claims,
        JwtClaims {
            expires_at: None,
            scopes: Vec::new()
        }
    );
}

#[test]
fn something_that_is_not_a_jwt_does_not_decode() {
    for garbage in [
        "",
        "only-one-part",
        "two.parts",
        "a.b.c.d",
        "header.!!!not-base64!!!.signature",
    ] {
        assert_eq!(
            JwtClaims::decode(&ApiAccessToken::new(garbage)),
            None,
            "{garbage:?}"
        );
    }
    // Valid base64url, but not JSON.
    let not_json = format!("h.{}.s", URL_SAFE_NO_PAD.encode("not json"));
    assert_eq!(JwtClaims::decode(&ApiAccessToken::new(not_json)), None);
}
