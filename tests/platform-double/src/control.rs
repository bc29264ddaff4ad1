//! The control API (`/_double/…`): lifecycle events played on request, as the
//! platforms deliver them: Shoptet's signed add-on webhooks and Shoprenter's
//! signed browser redirects. See the crate docs for the contract.
//!
//! Not a platform endpoint: never counted, faulted or delayed, so the
//! counters only ever show what the code under test called.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha1::Sha1;
use sha2::Sha256;

use crate::endpoint::Endpoint;
use crate::faults::Fault;
use crate::random;
use crate::shoptet_state::InstallationState;
use crate::state::Shared;

/// Shoptet's header carrying the webhook signature.
const SIGNATURE_HEADER: &str = "Shoptet-Webhook-Signature";
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

const UNKNOWN_ENDPOINT: &str = "the endpoint is shoptet_code_exchange, shoptet_get_access_token, \
     shoptet_api, shoprenter_token or shoprenter_api";

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

/// Lowercase hex HMAC-SHA1 of the body: `Shoptet-Webhook-Signature`.
fn webhook_signature(key: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Lowercase hex HMAC-SHA256 of the message: a Shoprenter redirect's `hmac`.
fn redirect_hmac(secret: &str, message: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Shoptet's `eventCreated` form, `2019-01-08T15:13:39+0100`, here in UTC.
fn shoptet_time(at: SystemTime) -> String {
    let seconds = at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let (days, second_of_day) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}+0000",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for dates on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
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
    fn event_times_are_in_shoptets_form() {
        assert_eq!(shoptet_time(at(0)), "1970-01-01T00:00:00+0000");
        // Shoptet's documented example, 2019-01-08T15:13:39+0100.
        assert_eq!(shoptet_time(at(1_546_956_819)), "2019-01-08T14:13:39+0000");
        // A leap day, and the last second of a year.
        assert_eq!(shoptet_time(at(1_709_164_800)), "2024-02-29T00:00:00+0000");
        assert_eq!(shoptet_time(at(1_735_689_599)), "2024-12-31T23:59:59+0000");
    }

    #[test]
    fn signatures_are_lowercase_hex_of_the_right_length() {
        let signature = webhook_signature("key", b"{}");
        assert_eq!(signature.len(), 40);
        assert!(
            signature
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert_eq!(redirect_hmac("secret", "shopname=a").len(), 64);
    }
}
