//! Shoptet: the OAuth server of the partner e-shop and the REST API, as
//! HTTP handlers (counting, limits, faults, latency); the platform's rules
//! and what it holds are in [`crate::shoptet_state`].
//!
//! Routes (relative to the double's base URL):
//! - `POST /action/ApiOAuthServer/token` – exchange an install code,
//! - `GET /action/ApiOAuthServer/getAccessToken` – vend an API access token,
//! - `/api/{*rest}` – the API; only `GET /api/eshop` is within the tokens' rights.
//!   Limited per token (concurrent connections) and per e-shop (leaky
//!   bucket), see [`crate::limits`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::Response;
use serde_json::Value;

use crate::endpoint::Endpoint;
use crate::limits::{Admission, retry_after_date, wall_clock};
use crate::shoptet_state::too_many_requests;
use crate::state::{Shared, UNKNOWN_SHOP};

/// Carries the e-shop's leaky bucket level on every API answer: `n/capacity`.
const BUCKET_FILLING: &str = "x-ratelimit-bucket-filling";

/// `POST /action/ApiOAuthServer/token`
pub(crate) async fn exchange_code(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = parse_fields(&headers, &body);
    let shop = {
        let state = shared.lock();
        fields
            .as_ref()
            .and_then(|f| f.get("code"))
            .and_then(|code| state.shoptet.eshop_of_code(code))
            .map(|eshop_id| eshop_id.to_string())
    };
    let shop = shop.unwrap_or_else(|| UNKNOWN_SHOP.to_owned());
    if let Some(response) = shared.intercept(Endpoint::ShoptetCodeExchange, shop).await {
        return response;
    }
    shared
        .lock()
        .shoptet
        .exchange(&shared.config, fields.as_ref())
}

/// `GET /action/ApiOAuthServer/getAccessToken`
pub(crate) async fn get_access_token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Response {
    let token = bearer_token(&headers);
    let shop = token.and_then(|t| shared.lock().shoptet.eshop_of_oauth_token(t));
    let shop = shop.map_or_else(|| UNKNOWN_SHOP.to_owned(), |id| id.to_string());
    if let Some(response) = shared
        .intercept(Endpoint::ShoptetGetAccessToken, shop)
        .await
    {
        return response;
    }
    shared.lock().shoptet.vend_api_token(&shared.config, token)
}

/// `/api/{*rest}`
///
/// A request whose token the double issued (even if expired or revoked) is
/// subject to its e-shop's limits: a connection slot of the token is held
/// from arrival until the answer is produced (the configured latency
/// included), and the answer carries the bucket's level.
pub(crate) async fn api(
    State(shared): State<Arc<Shared>>,
    method: Method,
    Path(rest): Path<String>,
    headers: HeaderMap,
) -> Response {
    let token = headers
        .get("shoptet-access-token")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let eshop_id = token.and_then(|t| shared.lock().shoptet.eshop_of_api_token(t));
    let (Some(token), Some(eshop_id)) = (token, eshop_id) else {
        // Nothing to attribute it to: no token's slots, no e-shop's bucket.
        if let Some(response) = shared
            .intercept(Endpoint::ShoptetApi, UNKNOWN_SHOP.to_owned())
            .await
        {
            return response;
        }
        return shared.lock().shoptet.api_call(&method, &rest, token);
    };

    let mut slot = None;
    let mut costs_a_drop = true;
    let early = shared
        .intercept_with(Endpoint::ShoptetApi, eshop_id.to_string(), |state| {
            let admission =
                state
                    .limits
                    .shoptet_arrive(token, eshop_id, &shared.config, Instant::now());
            if admission != Admission::TooManyConnections {
                slot = Some(InFlight::new(shared.clone(), token));
            }
            match admission {
                Admission::Accepted => None,
                Admission::TooManyConnections => Some(too_many_requests(
                    "Too many concurrent requests with this access token.",
                    None,
                )),
                Admission::BucketFull { retry_after } => {
                    costs_a_drop = false;
                    Some(too_many_requests(
                        "Too many requests, the rate limit bucket is full.",
                        retry_after.map(|at| retry_after_date(wall_clock(at))),
                    ))
                }
            }
        })
        .await;
    let mut response = match early {
        Some(response) => response,
        None => shared.lock().shoptet.api_call(&method, &rest, Some(token)),
    };
    let level = shared.lock().limits.shoptet_answered(
        eshop_id,
        costs_a_drop,
        &shared.config,
        Instant::now(),
    );
    let filling = format!("{level}/{}", shared.config.shoptet_bucket_capacity);
    response.headers_mut().insert(
        BUCKET_FILLING,
        HeaderValue::from_str(&filling).expect("digits and a slash are a valid header value"),
    );
    // The slot is held until the answer exists, not until it is sent: the
    // client cannot see it any earlier, so it can never overlap its next call.
    drop(slot);
    response
}

/// Holds a Shoptet API token's connection slot; frees it when dropped, so
/// every way out of the handler (early returns, panics, a cancelled
/// future) gives the slot back.
struct InFlight {
    shared: Arc<Shared>,
    token: String,
}

impl InFlight {
    /// For a slot [`crate::limits::Limits::shoptet_arrive`] already took.
    fn new(shared: Arc<Shared>, token: &str) -> Self {
        InFlight {
            shared,
            token: token.to_owned(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.shared.lock().limits.shoptet_leave(&self.token);
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Reads the token request's fields from a JSON or form-encoded body.
/// `None` when the body is declared JSON but is not a JSON object.
fn parse_fields(headers: &HeaderMap, body: &[u8]) -> Option<HashMap<String, String>> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.contains("json") {
        json_fields(body)
    } else if content_type.contains("x-www-form-urlencoded") {
        Some(form_fields(body))
    } else {
        json_fields(body).or_else(|| Some(form_fields(body)))
    }
}

fn json_fields(body: &[u8]) -> Option<HashMap<String, String>> {
    let Value::Object(object) = serde_json::from_slice(body).ok()? else {
        return None;
    };
    Some(
        object
            .into_iter()
            .filter_map(|(key, value)| match value {
                Value::Null => None,
                Value::String(s) => Some((key, s)),
                other => Some((key, other.to_string())),
            })
            .collect(),
    )
}

fn form_fields(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}
