//! The control API (`/_double/…`): lifecycle events played on request, as the
//! platforms deliver them: Shoptet's signed add-on webhooks, the e-shop's
//! own events to the webhooks an add-on registered, and Shoprenter's signed
//! browser redirects. See the crate docs for the contract.
//!
//! Not a platform endpoint: never counted, faulted or delayed, so the
//! counters only ever show what the code under test called.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::delivery::{Wait, deliver as deliver_event};
use crate::endpoint::Endpoint;
use crate::faults::Fault;
use crate::random;
use crate::shoptet_state::InstallationState;
use crate::state::Shared;
use crate::webhooks::{Notification, SIGNATURE_HEADER, Webhook, shoptet_time, webhook_signature};
/// How long a delivery may take before the control reports it failed.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// `POST /_double/shoptet/{eshopId}/{uninstall|terminate|suspend|approve}`
pub(crate) async fn shoptet(
    State(shared): State<Arc<Shared>>,
    Path((eshop_id, action)): Path<(String, String)>,
) -> Response {
    let Ok(eshop_id) = eshop_id.parse::<u64>() else {
        return refused(StatusCode::BAD_REQUEST, "the eshopId is not a number");
    };
    let event = match action.as_str() {
        "uninstall" => "addon:uninstall",
        "terminate" => "addon:terminate",
        "suspend" => "addon:suspend",
        "approve" => "addon:approve",
        _ => {
            return refused(
                StatusCode::NOT_FOUND,
                "the action is uninstall, terminate, suspend or approve",
            );
        }
    };
    let state = {
        let mut state = shared.lock();
        match action.as_str() {
            "uninstall" | "terminate" => state.shoptet.uninstall(eshop_id),
            "suspend" => state
                .shoptet
                .set_installation_state(eshop_id, InstallationState::Suspended),
            _ => state
                .shoptet
                .set_installation_state(eshop_id, InstallationState::Active),
        }
        state.shoptet.installation_state(eshop_id)
    };
    let body = json!({
        "eshopId": eshop_id,
        "event": event,
        "eventCreated": shoptet_time(SystemTime::now()),
        "eventInstance": eshop_id.to_string(),
    })
    .to_string();
    let mut answer = json!({
        "eshopId": eshop_id,
        "event": event,
        "state": state_name(state),
        "webhook": null,
    });
    let Some(url) = shared.config.shoptet_webhook_url.clone() else {
        return Json(answer).into_response();
    };
    let signature = shared
        .config
        .shoptet_webhook_key
        .as_deref()
        .map(|key| webhook_signature(key, body.as_bytes()));
    match deliver(&url, body, signature).await {
        Ok((status, reply)) => {
            answer["webhook"] = json!({ "url": url, "status": status, "body": reply });
            Json(answer).into_response()
        }
        Err(error) => {
            answer["webhook"] = json!({ "url": url, "error": error });
            (StatusCode::BAD_GATEWAY, Json(answer)).into_response()
        }
    }
}

/// `GET /_double/shoptet/{eshopId}`: what the double holds for the e-shop,
/// for a test running the double in another process (the library's
/// [`crate::PlatformDouble::installation_state`] and
/// [`crate::PlatformDouble::oauth_access_token`]).
pub(crate) async fn shoptet_installation(
    State(shared): State<Arc<Shared>>,
    Path(eshop_id): Path<String>,
) -> Response {
    let Ok(eshop_id) = eshop_id.parse::<u64>() else {
        return refused(StatusCode::BAD_REQUEST, "the eshopId is not a number");
    };
    let state = shared.lock();
    Json(json!({
        "eshopId": eshop_id,
        "state": state_name(state.shoptet.installation_state(eshop_id)),
        "oauth_access_token": state.shoptet.oauth_access_token(eshop_id),
    }))
    .into_response()
}

/// `POST /_double/shoptet/{eshopId}/api-tokens/expire`: the e-shop's API
/// access tokens expire now (the API then answers 401 `expired-token`), as
/// [`crate::PlatformDouble::expire_api_tokens`] does in the same process.
pub(crate) async fn expire_shoptet_api_tokens(
    State(shared): State<Arc<Shared>>,
    Path(eshop_id): Path<String>,
) -> Response {
    let Ok(eshop_id) = eshop_id.parse::<u64>() else {
        return refused(StatusCode::BAD_REQUEST, "the eshopId is not a number");
    };
    shared.lock().shoptet.expire_api_tokens(eshop_id);
    Json(json!({ "eshopId": eshop_id, "expired": true })).into_response()
}

/// `GET /_double/calls/{endpoint}/{shop}`: `{"endpoint","shop","calls"}`,
/// as [`crate::PlatformDouble::calls`] counts them.
pub(crate) async fn calls(
    State(shared): State<Arc<Shared>>,
    Path((endpoint, shop)): Path<(String, String)>,
) -> Response {
    let Some(known) = Endpoint::from_name(&endpoint) else {
        return refused(StatusCode::NOT_FOUND, UNKNOWN_ENDPOINT);
    };
    let calls = shared
        .lock()
        .counters
        .get(&(known, shop.clone()))
        .copied()
        .unwrap_or(0);
    Json(json!({ "endpoint": endpoint, "shop": shop, "calls": calls })).into_response()
}

/// `POST /_double/faults/{endpoint}` with `{"fault", "times"?, …}`: as
/// [`crate::PlatformDouble::inject`]. `fault` is `server_error` (with
/// `status`), `rate_limited` or `rate_limited_http_date` (with
/// `retry_after_secs`), `locked`, `drop` or `malformed_json`; `times`
/// defaults to 1. Answers `{"endpoint","fault","times"}`.
pub(crate) async fn inject(
    State(shared): State<Arc<Shared>>,
    Path(endpoint): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let Some(known) = Endpoint::from_name(&endpoint) else {
        return refused(StatusCode::NOT_FOUND, UNKNOWN_ENDPOINT);
    };
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return refused(StatusCode::BAD_REQUEST, "the body is not JSON");
    };
    let number = |name: &str| request.get(name).and_then(Value::as_u64);
    let retry_after_secs = number("retry_after_secs").unwrap_or(1);
    let fault = match request.get("fault").and_then(Value::as_str) {
        Some("server_error") => Fault::ServerError(
            number("status")
                .and_then(|status| u16::try_from(status).ok())
                .unwrap_or(500),
        ),
        Some("rate_limited") => Fault::RateLimited { retry_after_secs },
        Some("rate_limited_http_date") => Fault::RateLimitedHttpDate { retry_after_secs },
        Some("locked") => Fault::Locked,
        Some("drop") => Fault::Drop,
        Some("malformed_json") => Fault::MalformedJson,
        _ => {
            return refused(
                StatusCode::BAD_REQUEST,
                "fault is server_error, rate_limited, rate_limited_http_date, locked, drop or malformed_json",
            );
        }
    };
    let times = number("times")
        .and_then(|times| u32::try_from(times).ok())
        .unwrap_or(1);
    shared.lock().faults.push(Some(known), fault, times);
    Json(json!({ "endpoint": endpoint, "fault": request["fault"], "times": times })).into_response()
}

const UNKNOWN_ENDPOINT: &str = "the endpoint is one of Endpoint::name: shoptet_code_exchange, \
     shoptet_get_access_token, shoptet_api, shoptet_webhook_register, shoptet_webhook_list, \
     shoptet_webhook_delete, shoptet_webhook_renew_key, shoptet_webhook_notifications, \
     shoptet_job_start, shoptet_job_detail, shoprenter_token or shoprenter_api";

/// `POST /_double/shoptet/{eshopId}/webhooks/{event}` with an optional
/// body `{"eventInstance"?, "wait"?}`: the event happens in the e-shop and
/// is delivered to every webhook of the installation registered for it
/// ([`crate::PlatformDouble::deliver_webhook`]). `eventInstance` defaults
/// to a new sandbox order code. Answers the delivery report as soon as every
/// notification made its first attempt (retries go on, see
/// [`crate::DoubleConfig::webhook_retry_gap`]), or with `"wait": "settled"`
/// once each succeeded or failed for good. 200 also when nothing was
/// registered for the event (`"notifications": []`).
pub(crate) async fn shoptet_webhook(
    State(shared): State<Arc<Shared>>,
    Path((eshop_id, event)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let Ok(eshop_id) = eshop_id.parse::<u64>() else {
        return refused(StatusCode::BAD_REQUEST, "the eshopId is not a number");
    };
    let request = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(request) => request,
            Err(_) => return refused(StatusCode::BAD_REQUEST, "the body is not JSON"),
        }
    };
    let wait = match request.get("wait").and_then(Value::as_str) {
        None | Some("first_attempt") => Wait::FirstAttempt,
        Some("settled") => Wait::Settled,
        Some(_) => {
            return refused(
                StatusCode::BAD_REQUEST,
                "wait is first_attempt (default) or settled",
            );
        }
    };
    let instance = match request.get("eventInstance") {
        None | Some(Value::Null) => new_order_code(SystemTime::now()),
        Some(Value::String(instance)) => instance.clone(),
        Some(other) => other.to_string(),
    };
    let report = deliver_event(&shared, eshop_id, &event, &instance, wait).await;
    Json(report.to_json()).into_response()
}

/// `POST /_double/shoptet/{eshopId}/orders`: a sandbox order is placed:
/// `order:create` with a new order code as `eventInstance`, answered like
/// [`shoptet_webhook`] (first attempts; `{"wait":"settled"}` to wait).
pub(crate) async fn shoptet_order(
    State(shared): State<Arc<Shared>>,
    Path(eshop_id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    shoptet_webhook(
        State(shared),
        Path((eshop_id, "order:create".to_owned())),
        body,
    )
    .await
}

/// `GET /_double/shoptet/{eshopId}/webhooks`: the installation's webhooks,
/// its current signature key and its notification history, for a sandbox
/// in another process: `{"eshopId","webhooks","signatureKey","notifications"}`.
pub(crate) async fn shoptet_webhooks(
    State(shared): State<Arc<Shared>>,
    Path(eshop_id): Path<String>,
) -> Response {
    let Ok(eshop_id) = eshop_id.parse::<u64>() else {
        return refused(StatusCode::BAD_REQUEST, "the eshopId is not a number");
    };
    let mut state = shared.lock();
    let webhooks = &mut state.shoptet.webhooks;
    let registered: Vec<Value> = webhooks
        .list(eshop_id)
        .iter()
        .map(Webhook::to_json)
        .collect();
    let key = webhooks.key(eshop_id, shared.config.signature_key_per_addon);
    let history: Vec<Value> = webhooks
        .history(eshop_id, Instant::now())
        .iter()
        .map(Notification::to_json)
        .collect();
    Json(json!({
        "eshopId": eshop_id,
        "webhooks": registered,
        "signatureKey": key,
        "notifications": history,
    }))
    .into_response()
}

/// A new sandbox order code, as Shoptet numbers orders: the year and six
/// digits (random here, so codes from different runs rarely collide).
pub(crate) fn new_order_code(now: SystemTime) -> String {
    let year = &shoptet_time(now)[..4];
    format!("{year}{:06}", random::between(0, 999_999))
}

/// `GET /_double/secrets`: every secret the double issued or was given,
/// for a test in another process to scan logs for.
pub(crate) async fn secrets(State(shared): State<Arc<Shared>>) -> Response {
    let state = shared.lock();
    let config = &shared.config;
    let secrets: Vec<&str> = state
        .shoptet
        .issued_secrets()
        .chain(state.shoprenter.issued_secrets())
        .chain(config.shoptet_client_secret.as_deref())
        .chain(config.shoptet_webhook_key.as_deref())
        .chain(
            config
                .shoprenter_app
                .as_ref()
                .map(|app| app.client_secret.as_str()),
        )
        .collect();
    Json(json!({ "secrets": secrets })).into_response()
}

/// `GET /_double/shoprenter/{shop}/{install|uninstall}`
pub(crate) async fn shoprenter(
    State(shared): State<Arc<Shared>>,
    Path((shop, action)): Path<(String, String)>,
) -> Response {
    let Some(app) = shared.config.shoprenter_app.as_ref() else {
        return refused(
            StatusCode::CONFLICT,
            "no Shoprenter app is configured (DoubleConfig::shoprenter_app)",
        );
    };
    let target = match action.as_str() {
        "install" => {
            let scopes: Vec<&str> = app.scopes.iter().map(String::as_str).collect();
            shared.lock().shoprenter.register_client(
                &shop,
                &app.client_id,
                &app.client_secret,
                &scopes,
            );
            &app.redirect_uri
        }
        "uninstall" => {
            shared
                .lock()
                .shoprenter
                .unregister_client(&shop, &app.client_id);
            &app.uninstall_uri
        }
        _ => return refused(StatusCode::NOT_FOUND, "the action is install or uninstall"),
    };
    let code = random::lower_alnum(32);
    let timestamp = next_redirect_timestamp(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs()),
    )
    .to_string();
    // Shoprenter signs exactly these three fields, in this order.
    let message = format!("shopname={shop}&code={code}&timestamp={timestamp}");
    let hmac = redirect_hmac(&app.client_secret, &message);
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("shopname", &shop)
        .append_pair("code", &code)
        .append_pair("timestamp", &timestamp)
        .append_pair("hmac", &hmac)
        .finish();
    let separator = if target.contains('?') { '&' } else { '?' };
    (
        StatusCode::FOUND,
        [
            (header::LOCATION, format!("{target}{separator}{query}")),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
    )
        .into_response()
}

/// Posts the event as Shoptet does; the receiver's status and body (JSON
/// when it parses).
async fn deliver(
    url: &str,
    body: String,
    signature: Option<String>,
) -> Result<(u16, Value), String> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(DELIVERY_TIMEOUT)
        .build()
        .map_err(|error| error.to_string())?;
    let mut request = client
        .post(url)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body);
    if let Some(signature) = signature {
        request = request.header(SIGNATURE_HEADER, signature);
    }
    let response = request.send().await.map_err(|error| error.to_string())?;
    let status = response.status().as_u16();
    let text = response.text().await.map_err(|error| error.to_string())?;
    let reply = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, reply))
}

/// Lowercase hex HMAC-SHA256 of the message: a Shoprenter redirect's `hmac`.
fn redirect_hmac(secret: &str, message: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn state_name(state: InstallationState) -> &'static str {
    match state {
        InstallationState::Active => "active",
        InstallationState::Suspended => "suspended",
        InstallationState::NotApproved => "not_approved",
        InstallationState::NotInstalled => "not_installed",
    }
}

fn refused(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// The `timestamp` of the next signed redirect: now, but always after the
/// previous one. A real merchant's install and uninstall are seconds apart;
/// the double plays both within one second, and the broker acts only on a
/// redirect signed later than the shop's last one.
fn next_redirect_timestamp(now: u64) -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let previous = LAST
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
            Some(now.max(last + 1))
        })
        .unwrap_or(now);
    now.max(previous + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn redirect_signatures_are_lowercase_hex_of_the_right_length() {
        let hmac = redirect_hmac("secret", "shopname=a");
        assert_eq!(hmac.len(), 64);
        assert!(
            hmac.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
    }

    #[test]
    fn sandbox_order_codes_are_ten_digits_of_this_year() {
        let code = new_order_code(at(1_735_689_599));
        assert_eq!(code.len(), 10);
        assert!(code.starts_with("2024"));
        assert!(code.bytes().all(|b| b.is_ascii_digit()));
    }
}
