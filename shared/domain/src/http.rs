//! The one HTTP error contract of every endpoint of the broker. The codes,
//! their statuses and the JSON body are the protocol's
//! (`shop-token-protocol`), which the client reads with the same types.

use std::time::Duration;

use http::{HeaderValue, Response, StatusCode, header};
use serde::Serialize;

pub use shop_token_protocol::error::{ErrorBody, ErrorCode, ErrorDetail};

/// An error a broker endpoint answers with. Implementors say what it is;
/// how it is rendered (status, JSON body, `Retry-After`) is decided here
/// once. `Display` is the human message and must never hold a secret.
pub trait HttpError: std::fmt::Display {
    /// The stable code callers match on.
    fn code(&self) -> ErrorCode;

    /// The code's status, as the protocol documents it.
    fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code().http_status())
            .expect("the protocol's statuses are valid HTTP statuses")
    }

    /// The platform's own error code, when an upstream refused.
    fn upstream_code(&self) -> Option<&str> {
        None
    }

    /// When the caller may try again, for refusals that say so.
    fn retry_after(&self) -> Option<Duration> {
        None
    }

    /// Whole seconds, rounded up, so a caller never retries too early.
    fn retry_after_seconds(&self) -> Option<u64> {
        self.retry_after()
            .map(shop_token_protocol::retry_after::to_seconds)
    }

    fn to_response(&self) -> Response<String> {
        let message = self.to_string();
        let mut body = ErrorBody::new(self.code(), message.as_str());
        body.error.upstream_code = self.upstream_code().map(Into::into);
        let mut response = json_response(self.status(), &body);
        if let Some(seconds) = self.retry_after_seconds() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
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

/// A request body read as the JSON object `T` is: serde alone would also
/// build a struct from an array of its fields' values (`[600, null]`), which
/// no contract of ours allows. `None` for anything else; callers answer with
/// their own message, since serde's could quote a secret.
pub fn from_json_object<T: serde::de::DeserializeOwned>(body: &[u8]) -> Option<T> {
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body).ok()?;
    serde_json::from_value(serde_json::Value::Object(object)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_json_object_is_a_body() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Options {
            min_ttl_seconds: Option<u64>,
            stale_token: Option<String>,
        }
        let expected = Options {
            min_ttl_seconds: Some(60),
            stale_token: None,
        };
        assert_eq!(
            from_json_object::<Options>(b" \r\n\t{\"min_ttl_seconds\": 60}"),
            Some(expected)
        );
        for body in ["[60, null]", "[]", "null", "60", "\"x\"", " ", ""] {
            assert_eq!(
                from_json_object::<Options>(body.as_bytes()),
                None,
                "{body:?}"
            );
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("slow down")]
    struct Throttled(Duration);

    impl HttpError for Throttled {
        fn code(&self) -> ErrorCode {
            ErrorCode::RateLimited
        }
        fn retry_after(&self) -> Option<Duration> {
            Some(self.0)
        }
    }

    #[test]
    fn an_error_renders_as_json_with_a_rounded_up_retry_after() {
        let response = Throttled(Duration::from_millis(1_200)).to_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let body: serde_json::Value = serde_json::from_str(response.body()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "rate_limited", "message": "slow down"}})
        );
    }

    #[test]
    fn a_retry_after_under_a_second_is_one_second() {
        let response = Throttled(Duration::ZERO).to_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }
}
