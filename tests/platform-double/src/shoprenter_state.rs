//! Shoprenter's side of the world: the clients registered per shop, the
//! access tokens issued to them, and the rules of the token endpoint and the
//! API (the HTTP handlers in [`crate::shoprenter`] call them once counters,
//! limits and faults had their turn).

use std::collections::HashMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::config::DoubleConfig;
use crate::random;

const INVALID_REQUEST: &str = "The request is missing a required parameter, includes an invalid \
     parameter value, includes a parameter more than once, or is otherwise malformed.";
const CLIENT_AUTH_FAILED: &str = "Client authentication failed";

#[derive(Debug)]
struct Client {
    secret: String,
    scopes: Vec<String>,
}

#[derive(Debug)]
struct IssuedToken {
    shop: String,
    client_id: String,
    expires_at: Instant,
}

/// Shoprenter's side of the world.
#[derive(Debug, Default)]
pub(crate) struct ShoprenterState {
    /// shop name → client id → client.
    clients: HashMap<String, HashMap<String, Client>>,
    tokens: HashMap<String, IssuedToken>,
    last_token: HashMap<String, String>,
}

impl ShoprenterState {
    /// Every client secret registered and every token issued.
    pub(crate) fn issued_secrets(&self) -> impl Iterator<Item = &str> {
        self.clients
            .values()
            .flat_map(HashMap::values)
            .map(|client| client.secret.as_str())
            .chain(self.tokens.keys().map(String::as_str))
    }

    pub(crate) fn register_client(
        &mut self,
        shop: &str,
        client_id: &str,
        secret: &str,
        scopes: &[&str],
    ) {
        self.clients.entry(shop.to_owned()).or_default().insert(
            client_id.to_owned(),
            Client {
                secret: secret.to_owned(),
                scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            },
        );
    }

    /// Removes the client from the shop and revokes the tokens it got there
    /// (an app uninstalled from the shop).
    pub(crate) fn unregister_client(&mut self, shop: &str, client_id: &str) {
        if let Some(clients) = self.clients.get_mut(shop) {
            clients.remove(client_id);
        }
        self.tokens
            .retain(|_, token| token.shop != shop || token.client_id != client_id);
    }

    pub(crate) fn last_token(&self, shop: &str) -> Option<String> {
        self.last_token.get(shop).cloned()
    }

    /// The token request after the counters and faults had their turn.
    pub(crate) fn issue(&mut self, config: &DoubleConfig, shop: &str, body: &[u8]) -> Response {
        let fields: HashMap<String, Value> = match serde_json::from_slice(body) {
            Ok(Value::Object(object)) => object.into_iter().collect(),
            _ => HashMap::new(),
        };
        let field = |name: &str| {
            fields
                .get(name)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
        };

        if field("grant_type") != Some("client_credentials") {
            return invalid_request("grant_type");
        }
        let Some(client_id) = field("client_id") else {
            return invalid_request("client_id");
        };
        let Some(secret) = field("client_secret") else {
            return invalid_request("client_secret");
        };

        let scopes = match self
            .clients
            .get(shop)
            .and_then(|clients| clients.get(client_id))
        {
            Some(client) if client.secret == secret => client.scopes.clone(),
            _ => {
                return (
                    StatusCode::UNAUTHORIZED,
                    Json(json!({
                        "error": "invalid_client",
                        "error_description": CLIENT_AUTH_FAILED,
                        "message": CLIENT_AUTH_FAILED,
                    })),
                )
                    .into_response();
            }
        };

        let lifetime = config.shoprenter_token_lifetime.as_secs();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let token = jwt(&json!({
            "aud": client_id,
            "jti": random::lower_alnum(80),
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "sub": shop,
            "scopes": scopes,
        }));
        self.tokens.insert(
            token.clone(),
            IssuedToken {
                shop: shop.to_owned(),
                client_id: client_id.to_owned(),
                expires_at: Instant::now() + config.shoprenter_token_lifetime,
            },
        );
        self.last_token.insert(shop.to_owned(), token.clone());
        Json(json!({
            "token_type": "Bearer",
            "expires_in": lifetime,
            "access_token": token,
        }))
        .into_response()
    }

    /// Makes every access token issued for `shop` expire now.
    pub(crate) fn expire_tokens(&mut self, shop: &str) {
        let now = Instant::now();
        for token in self.tokens.values_mut() {
            if token.shop == shop && token.expires_at > now {
                token.expires_at = now;
            }
        }
    }

    /// An API call after the counters, limits and faults had their turn:
    /// its status and body (the handler renders it as JSON or XML).
    pub(crate) fn api_call(
        &self,
        shop: &str,
        path: &str,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        let live = token
            .and_then(|t| self.tokens.get(t))
            .is_some_and(|t| t.shop == shop && t.expires_at > Instant::now());
        if live {
            (
                StatusCode::OK,
                json!({ "ok": true, "shop": shop, "path": path }),
            )
        } else {
            (
                StatusCode::UNAUTHORIZED,
                json!({ "error": "invalid_token" }),
            )
        }
    }
}

/// A JWT shaped like Shoprenter's: RS256 header, the given claims, and 64
/// random bytes standing in for the signature (clients do not verify it).
fn jwt(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"RS256"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signature = URL_SAFE_NO_PAD.encode(random::bytes(64));
    format!("{header}.{payload}.{signature}")
}

fn invalid_request(parameter: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({
            "error": "invalid_request",
            "error_description": INVALID_REQUEST,
            "hint": format!("Check the `{parameter}` parameter"),
            "message": INVALID_REQUEST,
        })),
    )
        .into_response()
}
