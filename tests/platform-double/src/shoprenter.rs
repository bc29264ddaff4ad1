//! Shoprenter: the client-credentials token endpoint and the API, as HTTP
//! handlers (counting, limits, faults, latency); the platform's rules and
//! what it holds are in [`crate::shoprenter_state`].
//!
//! Routes (relative to the double's base URL):
//! - `POST /shoprenter/{shopName}/app/token` – stands for
//!   `https://oauth.app.shoprenter.net/{shopName}/app/token`,
//! - `/shoprenter-api/{shopName}/api/{*rest}` – stands for
//!   `https://{shopName}.api2.myshoprenter.hu/api/…`; limited per shop to
//!   so many requests per second, see [`crate::limits`].

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::endpoint::Endpoint;
use crate::shoptet::bearer_token;
use crate::state::Shared;

/// `POST /shoprenter/{shopName}/app/token`
pub(crate) async fn token(
    State(shared): State<Arc<Shared>>,
    Path(shop): Path<String>,
    body: Bytes,
) -> Response {
    if let Some(response) = shared
        .intercept(Endpoint::ShoprenterToken, shop.clone())
        .await
    {
        return response;
    }
    shared.lock().shoprenter.issue(&shared.config, &shop, &body)
}

/// `/shoprenter-api/{shopName}/api/{*rest}`
///
/// Limited to [`crate::DoubleConfig::shoprenter_requests_per_second`] per shop over
/// a sliding second of arrivals, whatever the token: over it, 429 without
/// `Retry-After`, as Shoprenter documents none.
pub(crate) async fn api(
    State(shared): State<Arc<Shared>>,
    Path((shop, rest)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let per_second = shared.config.shoprenter_requests_per_second;
    if let Some(response) = shared
        .intercept_with(Endpoint::ShoprenterApi, shop.clone(), |state| {
            let accepted = state
                .limits
                .shoprenter_arrive(&shop, per_second, Instant::now());
            (!accepted).then(|| {
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    Json(json!({ "error": "too_many_requests" })),
                )
                    .into_response()
            })
        })
        .await
    {
        return response;
    }
    shared
        .lock()
        .shoprenter
        .api_call(&shop, &rest, bearer_token(&headers))
}
