//! Helpers shared by the integration tests.

#![allow(dead_code)]

use platform_double::PlatformDouble;
use serde_json::{Value, json};

pub const INSTALL_URL: &str = "https://broker.example.test/install";

/// The JSON body a well-behaved add-on sends to exchange `code`.
pub fn exchange_body(double: &PlatformDouble, code: &str) -> Value {
    let config = double.config();
    json!({
        "client_id": config.shoptet_client_id,
        "client_secret": config.shoptet_client_secret,
        "code": code,
        "grant_type": "authorization_code",
        "redirect_uri": INSTALL_URL,
        "scope": "api",
    })
}

pub fn token_url(double: &PlatformDouble) -> String {
    format!("{}/action/ApiOAuthServer/token", double.shoptet_oauth_url())
}

pub fn get_access_token_url(double: &PlatformDouble) -> String {
    format!(
        "{}/action/ApiOAuthServer/getAccessToken",
        double.shoptet_oauth_url()
    )
}

/// Posts `body` as JSON; returns status and parsed body.
pub async fn post_json(url: &str, body: &Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .expect("request reaches the double");
    read(response).await
}

/// `GET url` with `header: value`, asking for JSON as our clients do
/// (Shoprenter answers XML otherwise).
pub async fn get_with(url: &str, header: &str, value: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(url)
        .header(header, value)
        .header("Accept", "application/json")
        .send()
        .await
        .expect("request reaches the double");
    read(response).await
}

pub async fn read(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// Installs the add-on in `eshop_id` and returns the OAuth access token.
pub async fn install(double: &PlatformDouble, eshop_id: u64) -> String {
    let code = double.issue_install_code(eshop_id);
    let (status, body) = post_json(&token_url(double), &exchange_body(double, &code)).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// Asks getAccessToken with the OAuth access token.
pub async fn get_access_token(double: &PlatformDouble, oauth_token: &str) -> (u16, Value) {
    get_with(
        &get_access_token_url(double),
        "Authorization",
        &format!("Bearer {oauth_token}"),
    )
    .await
}

/// Installs and returns a fresh API access token.
pub async fn api_token(double: &PlatformDouble, eshop_id: u64) -> String {
    let oauth = install(double, eshop_id).await;
    let (status, body) = get_access_token(double, &oauth).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}
