//! The JSON bodies every HTTP endpoint of the broker answers with.

use http::{HeaderValue, Response, StatusCode, header};
use serde::Serialize;

/// `{"error":{"code":"…","message":"…"}}`: `code` is stable and documented,
/// `message` is for humans and never holds secret material.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

#[derive(Debug, Serialize)]
pub struct ErrorDetail<'a> {
    pub code: &'a str,
    pub message: &'a str,
    /// The platform's own error code, when an upstream refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_code: Option<&'a str>,
}

pub fn json_response(status: StatusCode, body: &impl Serialize) -> Response<String> {
    let json = serde_json::to_string(body).expect("response bodies always serialize");
    let mut response = Response::new(json);
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

pub fn error_response(status: StatusCode, error: ErrorDetail<'_>) -> Response<String> {
    json_response(status, &ErrorBody { error })
}
