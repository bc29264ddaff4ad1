//! Shoprenter's token endpoint and API, over real HTTP.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use platform_double::PlatformDouble;
use serde_json::{Value, json};

fn token_url(double: &PlatformDouble, shop: &str) -> String {
    format!("{}/{shop}/app/token", double.shoprenter_oauth_url())
}

fn credentials(client_id: &str, client_secret: &str) -> Value {
    json!({
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": client_secret,
    })
}

async fn double_with_client() -> PlatformDouble {
    let double = PlatformDouble::start().await;
    double.register_shoprenter_client(
        "demoshop",
        "app-id",
        "app-secret",
        &["product:read", "order:write"],
    );
    double
}

fn decode_part(part: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url without padding")
}

#[tokio::test]
async fn the_token_is_a_well_formed_jwt_with_expiry_and_scopes() {
    let double = double_with_client().await;

    let (status, body) = post_json(
        &token_url(&double, "demoshop"),
        &credentials("app-id", "app-secret"),
    )
    .await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    let jwt = body["access_token"].as_str().unwrap();
    assert_eq!(
        double.last_shoprenter_token("demoshop").as_deref(),
        Some(jwt)
    );
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value = serde_json::from_slice(&decode_part(parts[0])).unwrap();
    assert_eq!(header, json!({"typ": "JWT", "alg": "RS256"}));
    let claims: Value = serde_json::from_slice(&decode_part(parts[1])).unwrap();
    assert_eq!(claims["aud"], "app-id");
    assert_eq!(claims["sub"], "demoshop");
    assert_eq!(claims["scopes"], json!(["product:read", "order:write"]));
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    let iat = claims["iat"].as_u64().unwrap();
    assert_eq!(claims["nbf"].as_u64(), Some(iat));
    assert_eq!(claims["exp"].as_u64(), Some(iat + 3600));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(iat.abs_diff(now) <= 5);
    assert_eq!(decode_part(parts[2]).len(), 64);
}

#[tokio::test]
async fn every_request_gets_a_new_token() {
    let double = double_with_client().await;
    let url = token_url(&double, "demoshop");
    let creds = credentials("app-id", "app-secret");

    let first = post_json(&url, &creds).await.1["access_token"].clone();
    let second = post_json(&url, &creds).await.1["access_token"].clone();

    assert_ne!(first, second);
}

#[tokio::test]
async fn the_api_accepts_a_live_token_of_its_own_shop_only() {
    let double = double_with_client().await;
    double.register_shoprenter_client("othershop", "app-id", "app-secret", &[]);
    let (_, body) = post_json(
        &token_url(&double, "demoshop"),
        &credentials("app-id", "app-secret"),
    )
    .await;
    let jwt = body["access_token"].as_str().unwrap();
    let bearer = format!("Bearer {jwt}");

    let own = get_with(
        &format!("{}/products", double.shoprenter_api_url("demoshop")),
        "Authorization",
        &bearer,
    )
    .await;
    let other = get_with(
        &format!("{}/products", double.shoprenter_api_url("othershop")),
        "Authorization",
        &bearer,
    )
    .await;
    let garbage = get_with(
        &format!("{}/products", double.shoprenter_api_url("demoshop")),
        "Authorization",
        "Bearer nonsense",
    )
    .await;

    assert_eq!(
        own,
        (
            200,
            json!({"ok": true, "shop": "demoshop", "path": "products"})
        )
    );
    assert_eq!(other, (401, json!({"error": "invalid_token"})));
    assert_eq!(garbage, (401, json!({"error": "invalid_token"})));
}

#[tokio::test]
async fn a_request_without_accept_json_is_answered_in_xml_as_shoprenter_does() {
    let double = double_with_client().await;
    let (_, body) = post_json(
        &token_url(&double, "demoshop"),
        &credentials("app-id", "app-secret"),
    )
    .await;
    let bearer = format!("Bearer {}", body["access_token"].as_str().unwrap());
    let products = format!("{}/products", double.shoprenter_api_url("demoshop"));
    let get = |accept: Option<&'static str>| {
        let mut request = reqwest::Client::new()
            .get(&products)
            .header("Authorization", &bearer);
        if let Some(accept) = accept {
            request = request.header("Accept", accept);
        }
        async move {
            let response = request.send().await.unwrap();
            let content_type = response.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_owned();
            (
                response.status().as_u16(),
                content_type,
                response.text().await.unwrap(),
            )
        }
    };

    let (status, content_type, xml) = get(None).await;
    let (_, any_type, _) = get(Some("*/*")).await;
    let (json_status, json_type, json) = get(Some("application/json")).await;

    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("application/xml"),
        "{content_type}"
    );
    assert!(
        any_type.starts_with("application/xml"),
        "*/* is not JSON: {any_type}"
    );
    assert_eq!(
        xml,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <response><ok>true</ok><path>products</path><shop>demoshop</shop></response>\n"
    );
    assert_eq!((json_status, json_type.as_str()), (200, "application/json"));
    assert_eq!(
        serde_json::from_str::<Value>(&json).unwrap(),
        json!({"ok": true, "shop": "demoshop", "path": "products"})
    );
    assert_eq!(
        double.calls(platform_double::Endpoint::ShoprenterApi, "demoshop"),
        3
    );
}

#[tokio::test]
async fn expired_tokens_of_a_shop_are_refused_and_a_new_one_works() {
    let double = double_with_client().await;
    double.register_shoprenter_client("othershop", "app-id", "app-secret", &[]);
    let token = |shop: &'static str| {
        let double = double.clone();
        async move {
            let (_, body) = post_json(
                &token_url(&double, shop),
                &credentials("app-id", "app-secret"),
            )
            .await;
            format!("Bearer {}", body["access_token"].as_str().unwrap())
        }
    };
    let products = |shop: &str| format!("{}/products", double.shoprenter_api_url(shop));
    let old = token("demoshop").await;
    let other = token("othershop").await;

    double.expire_shoprenter_tokens("demoshop");

    assert_eq!(
        get_with(&products("demoshop"), "Authorization", &old).await,
        (401, json!({"error": "invalid_token"}))
    );
    assert_eq!(
        get_with(&products("othershop"), "Authorization", &other)
            .await
            .0,
        200
    );
    let fresh = token("demoshop").await;
    assert_eq!(
        get_with(&products("demoshop"), "Authorization", &fresh)
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn a_wrong_secret_or_unknown_shop_is_refused_as_invalid_client() {
    let double = double_with_client().await;
    let expected = json!({
        "error": "invalid_client",
        "error_description": "Client authentication failed",
        "message": "Client authentication failed",
    });

    let wrong_secret = post_json(
        &token_url(&double, "demoshop"),
        &credentials("app-id", "wrong"),
    )
    .await;
    let unknown_shop = post_json(
        &token_url(&double, "nobody"),
        &credentials("app-id", "app-secret"),
    )
    .await;

    assert_eq!(wrong_secret, (401, expected.clone()));
    assert_eq!(unknown_shop, (401, expected));
    assert_eq!(double.last_shoprenter_token("demoshop"), None);
}

#[tokio::test]
async fn a_malformed_token_request_names_the_offending_parameter() {
    let double = double_with_client().await;
    let url = token_url(&double, "demoshop");

    let mut missing_id = credentials("app-id", "app-secret");
    missing_id.as_object_mut().unwrap().remove("client_id");
    let (status, body) = post_json(&url, &missing_id).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_request");
    assert_eq!(body["hint"], "Check the `client_id` parameter");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("missing a required parameter")
    );
    assert_eq!(body["message"], body["error_description"]);

    let mut wrong_grant = credentials("app-id", "app-secret");
    wrong_grant["grant_type"] = json!("authorization_code");
    let (status, body) = post_json(&url, &wrong_grant).await;
    assert_eq!(status, 400);
    assert_eq!(body["hint"], "Check the `grant_type` parameter");

    let mut missing_secret = credentials("app-id", "app-secret");
    missing_secret
        .as_object_mut()
        .unwrap()
        .remove("client_secret");
    let (status, body) = post_json(&url, &missing_secret).await;
    assert_eq!(status, 400);
    assert_eq!(body["hint"], "Check the `client_secret` parameter");

    let not_json = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    let (status, body) = read(not_json).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_request");
}
