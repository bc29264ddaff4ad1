//! Shoprenter: the client-credentials token endpoint and the API, as HTTP
//! handlers (counting, limits, faults, latency); the platform's rules and
//! what it holds are in [`crate::shoprenter_state`].
//!
//! Routes (relative to the double's base URL):
//! - `POST /shoprenter/{shopName}/app/token` – stands for
//!   `https://oauth.app.shoprenter.net/{shopName}/app/token`,
//! - `/shoprenter-api/{shopName}/api/{*rest}` – stands for
//!   `https://{shopName}.api2.myshoprenter.hu/api/…`; limited per shop to
//!   so many requests per second, see [`crate::limits`]. Like Shoprenter,
//!   it answers XML unless the request's `Accept` names `application/json`.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

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
/// `Retry-After`, as Shoprenter documents none. Its own answers are XML
/// unless the request asks for JSON ([`Format`]); injected faults are as
/// the fault says.
pub(crate) async fn api(
    State(shared): State<Arc<Shared>>,
    Path((shop, rest)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let per_second = shared.config.shoprenter_requests_per_second;
    let format = Format::of(&headers);
    if let Some(response) = shared
        .intercept_with(Endpoint::ShoprenterApi, shop.clone(), |state| {
            let accepted = state
                .limits
                .shoprenter_arrive(&shop, per_second, Instant::now());
            (!accepted).then(|| {
                format.answer(
                    StatusCode::TOO_MANY_REQUESTS,
                    &json!({ "error": "too_many_requests" }),
                )
            })
        })
        .await
    {
        return response;
    }
    let (status, body) = shared
        .lock()
        .shoprenter
        .api_call(&shop, &rest, bearer_token(&headers));
    format.answer(status, &body)
}

/// How Shoprenter's API answers: XML unless the request's `Accept` names
/// `application/json` (platform handbook; `*/*` or no `Accept` gets XML).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Xml,
}

impl Format {
    fn of(headers: &HeaderMap) -> Self {
        let names_json = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|range| range.split(';').next())
            .any(|media| media.trim().eq_ignore_ascii_case("application/json"));
        if names_json { Self::Json } else { Self::Xml }
    }

    fn answer(self, status: StatusCode, body: &Value) -> Response {
        match self {
            Self::Json => (status, Json(body)).into_response(),
            Self::Xml => (
                status,
                [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<response>{}</response>\n",
                    xml_fields(body)
                ),
            )
                .into_response(),
        }
    }
}

/// A flat JSON object's fields as XML elements, text escaped.
fn xml_fields(body: &Value) -> String {
    let Some(object) = body.as_object() else {
        return String::new();
    };
    object
        .iter()
        .map(|(name, value)| {
            let text = match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            format!("<{name}>{}</{name}>", xml_escaped(&text))
        })
        .collect()
}

fn xml_escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn accepting(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn only_an_accept_naming_json_gets_json() {
        assert_eq!(Format::of(&accepting("application/json")), Format::Json);
        assert_eq!(
            Format::of(&accepting("text/html, Application/JSON;q=0.9")),
            Format::Json
        );
        assert_eq!(Format::of(&accepting("*/*")), Format::Xml);
        assert_eq!(Format::of(&accepting("application/jsonx")), Format::Xml);
        assert_eq!(Format::of(&HeaderMap::new()), Format::Xml);
    }

    #[test]
    fn xml_fields_are_escaped_elements() {
        let body = json!({"ok": true, "path": "a<b>&c"});
        assert_eq!(
            xml_fields(&body),
            "<ok>true</ok><path>a&lt;b&gt;&amp;c</path>"
        );
    }
}
