//! Shoptet: the OAuth server of the partner e-shop and the REST API, as
//! HTTP handlers (counting, limits, faults, latency); the platform's rules
//! and what it holds are in [`crate::shoptet_state`].
//!
//! Routes (relative to the double's base URL):
//! - `POST /action/ApiOAuthServer/token` – exchange an install code,
//! - `GET /action/ApiOAuthServer/getAccessToken` – vend an API access token,
//! - `/api/{*rest}` – the API: `GET /api/eshop`, the webhook routes
//!   (`/api/webhooks…`) and the job routes (`POST /api/products/snapshot`,
//!   `GET /api/system/jobs/{jobId}`, rules in [`crate::webhooks`]); other
//!   paths are outside the tokens' rights. Limited per token (concurrent
//!   connections) and per e-shop (leaky bucket), see [`crate::limits`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::delivery::{Wait, deliver};
use crate::endpoint::Endpoint;
use crate::limits::{Admission, retry_after_date, wall_clock};
use crate::shoptet_state::{api_data, api_refusal, too_many_requests};
use crate::state::{Shared, UNKNOWN_SHOP};
use crate::webhooks::{JOB_FINISHED, Webhook};

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
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = Route::of(&method, &rest);
    let endpoint = route.endpoint();
    let call = Call {
        route,
        method: &method,
        path: &rest,
        query: query.as_deref().unwrap_or_default(),
        body: &body,
    };
    let token = headers
        .get("shoptet-access-token")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let eshop_id = token.and_then(|t| shared.lock().shoptet.eshop_of_api_token(t));
    let (Some(token), Some(eshop_id)) = (token, eshop_id) else {
        // Nothing to attribute it to: no token's slots, no e-shop's bucket.
        if let Some(response) = shared.intercept(endpoint, UNKNOWN_SHOP.to_owned()).await {
            return response;
        }
        return answer(&shared, &call, token);
    };

    let mut slot = None;
    let mut costs_a_drop = true;
    let early = shared
        .intercept_with(endpoint, eshop_id.to_string(), |state| {
            let admission = state.limits.shoptet_arrive(
                endpoint,
                token,
                eshop_id,
                &shared.config,
                Instant::now(),
            );
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
        None => answer(&shared, &call, Some(token)),
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

/// The API routes the double tells apart (see [`Endpoint`]).
#[derive(Debug, Clone, Copy)]
enum Route<'a> {
    /// `POST /api/webhooks`
    Register,
    /// `GET /api/webhooks`
    List,
    /// `DELETE /api/webhooks/{id}`
    Delete(&'a str),
    /// `POST /api/webhooks/renew-signature-key`
    RenewKey,
    /// `GET /api/webhooks/notifications`
    Notifications,
    /// `POST /api/products/snapshot`
    JobStart,
    /// `GET /api/system/jobs/{jobId}`
    JobDetail(&'a str),
    /// Anything else.
    Other,
}

impl<'a> Route<'a> {
    fn of(method: &Method, path: &'a str) -> Self {
        let path = path.trim_end_matches('/');
        let single = |prefix: &str| {
            path.strip_prefix(prefix)
                .filter(|rest| !rest.is_empty() && !rest.contains('/'))
        };
        match (method.as_str(), path) {
            ("POST", "webhooks") => Route::Register,
            ("GET", "webhooks") => Route::List,
            ("POST", "webhooks/renew-signature-key") => Route::RenewKey,
            ("GET", "webhooks/notifications") => Route::Notifications,
            ("POST", "products/snapshot") => Route::JobStart,
            ("DELETE", _) => single("webhooks/").map_or(Route::Other, Route::Delete),
            ("GET", _) => single("system/jobs/").map_or(Route::Other, Route::JobDetail),
            _ => Route::Other,
        }
    }

    fn endpoint(self) -> Endpoint {
        match self {
            Route::Register => Endpoint::ShoptetWebhookRegister,
            Route::List => Endpoint::ShoptetWebhookList,
            Route::Delete(_) => Endpoint::ShoptetWebhookDelete,
            Route::RenewKey => Endpoint::ShoptetWebhookRenewKey,
            Route::Notifications => Endpoint::ShoptetWebhookNotifications,
            Route::JobStart => Endpoint::ShoptetJobStart,
            Route::JobDetail(_) => Endpoint::ShoptetJobDetail,
            Route::Other => Endpoint::ShoptetApi,
        }
    }
}

/// An API request, as [`answer`] needs it.
struct Call<'a> {
    route: Route<'a>,
    method: &'a Method,
    path: &'a str,
    query: &'a str,
    body: &'a [u8],
}

/// An API call after the counters, limits and faults had their turn: the
/// token is checked (401s as for every API path), then the route answers.
fn answer(shared: &Arc<Shared>, call: &Call<'_>, token: Option<&str>) -> Response {
    let mut state = shared.lock();
    let shoptet = &mut state.shoptet;
    if let Route::Other = call.route {
        return shoptet.api_call(call.method, call.path, token);
    }
    let eshop_id = match shoptet.authenticate(token) {
        Ok(eshop_id) => eshop_id,
        Err(refusal) => return api_refusal(&refusal),
    };
    let webhooks = &mut shoptet.webhooks;
    let listed = |list: &[Webhook]| {
        let webhooks: Vec<Value> = list.iter().map(Webhook::to_json).collect();
        json!({ "webhooks": webhooks })
    };
    let answered = match call.route {
        Route::Register => webhooks
            .register(eshop_id, call.body, SystemTime::now())
            .map(|created| api_data(StatusCode::CREATED, listed(&created))),
        Route::List => Ok(api_data(StatusCode::OK, listed(&webhooks.list(eshop_id)))),
        Route::Delete(id) => webhooks
            .delete(eshop_id, id)
            .map(|()| StatusCode::NO_CONTENT.into_response()),
        Route::RenewKey => {
            let key = webhooks.renew_key(eshop_id, shared.config.signature_key_per_addon);
            Ok(api_data(StatusCode::OK, json!({ "signatureKey": key })))
        }
        Route::Notifications => {
            let query = url::form_urlencoded::parse(call.query.as_bytes())
                .into_owned()
                .collect();
            webhooks
                .notifications_page(eshop_id, &query, Instant::now())
                .map(|page| api_data(StatusCode::OK, page))
        }
        Route::JobStart => webhooks
            .start_job(eshop_id, SystemTime::now())
            .map(|job_id| {
                finish_later(shared.clone(), eshop_id, job_id.clone());
                api_data(StatusCode::OK, json!({ "jobId": job_id }))
            }),
        Route::JobDetail(id) => webhooks
            .job_detail(eshop_id, id)
            .map(|detail| api_data(StatusCode::OK, detail)),
        // Answered above; outside the token's rights like any other path.
        Route::Other => Ok(StatusCode::FORBIDDEN.into_response()),
    };
    answered.unwrap_or_else(|refusal| api_refusal(&refusal))
}

/// The job is done after [`crate::DoubleConfig::job_duration`]; then
/// `job:finished` is delivered with the job's id as `eventInstance`, like
/// any other notification (retries included).
fn finish_later(shared: Arc<Shared>, eshop_id: u64, job_id: String) {
    tokio::spawn(async move {
        tokio::time::sleep(shared.config.job_duration).await;
        let finished = shared
            .lock()
            .shoptet
            .webhooks
            .finish_job(&job_id, SystemTime::now());
        if finished {
            deliver(&shared, eshop_id, JOB_FINISHED, &job_id, Wait::Settled).await;
        }
    });
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
