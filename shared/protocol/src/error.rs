//! The broker's errors as they travel: the stable codes callers match on,
//! the HTTP status each comes with, and the JSON body
//! `{"error":{"code","message","upstream_code"?}}`.
//!
//! A wait (`rate_limited`, `token_cap_reached`) is not in the body: over
//! HTTP it is the `Retry-After` header (whole seconds, see
//! [`retry_after`](crate::retry_after)); in a direct invocation's function
//! error it ends the message as `(retry after N s)` ([`FunctionError`]).
//!
//! # Unknown codes
//!
//! [`ErrorCode`] lists the codes this version knows, and is
//! `#[non_exhaustive]`: a newer broker may send codes an older client does
//! not know. The body therefore keeps the code as the broker sent it
//! ([`ErrorDetail::code`], a string), and [`ErrorDetail::known_code`] says
//! which [`ErrorCode`] it is, if any; there is no catch-all variant, so a
//! code added later never changes what an older version's `Other` meant.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::lifetimes::{DEFAULT_CAP_RETRY, DEFAULT_RATE_LIMIT_RETRY};

/// A stable error code of the broker, on any of its routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `invalid_request` (400): a malformed request: a bad platform, shop
    /// id, body or parameter, or a `min_ttl` at or beyond a token's lifetime.
    InvalidRequest,
    /// `invalid_signature` (401): a platform's signature is missing or does
    /// not match; nothing changed.
    InvalidSignature,
    /// `forbidden` (403): an operator route reached without an IAM
    /// identity vouched for by the front door (API Gateway or a Function
    /// URL with IAM authorisation); nothing was read or changed.
    Forbidden,
    /// `not_found` (404): no such route, or no such installation.
    NotFound,
    /// `not_installed` (404): the shop has no valid installation (never
    /// installed, uninstalled, or its credentials no longer work).
    NotInstalled,
    /// `not_configured` (404): the route's feature is not configured.
    NotConfigured,
    /// `method_not_allowed` (405, with `Allow`).
    MethodNotAllowed,
    /// `addon_suspended` (409): the add-on is suspended (or not approved)
    /// in the shop.
    AddonSuspended,
    /// `invalid_credentials` (422): the platform refused the credentials
    /// given.
    InvalidCredentials,
    /// `rate_limited` (429, `Retry-After`): the platform rate-limits the
    /// broker's token requests.
    RateLimited,
    /// `upstream_rejected` (502, `upstream_code`): the platform refused to
    /// issue a token.
    UpstreamRejected,
    /// `token_cap_reached` (503, `Retry-After`): Shoptet's live tokens of
    /// the installation are all out; the oldest expires after the wait.
    TokenCapReached,
    /// `upstream_unavailable` (503): the platform failed or timed out, or
    /// another instance's refresh did not finish in time.
    UpstreamUnavailable,
    /// `store_unavailable` (503): the broker's storage failed.
    StoreUnavailable,
}

impl ErrorCode {
    /// Every code, in the order of their HTTP statuses.
    pub const ALL: [ErrorCode; 14] = [
        ErrorCode::InvalidRequest,
        ErrorCode::InvalidSignature,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::NotInstalled,
        ErrorCode::NotConfigured,
        ErrorCode::MethodNotAllowed,
        ErrorCode::AddonSuspended,
        ErrorCode::InvalidCredentials,
        ErrorCode::RateLimited,
        ErrorCode::UpstreamRejected,
        ErrorCode::TokenCapReached,
        ErrorCode::UpstreamUnavailable,
        ErrorCode::StoreUnavailable,
    ];

    /// The code on the wire, e.g. `not_installed`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidSignature => "invalid_signature",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::NotInstalled => "not_installed",
            ErrorCode::NotConfigured => "not_configured",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::AddonSuspended => "addon_suspended",
            ErrorCode::InvalidCredentials => "invalid_credentials",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::UpstreamRejected => "upstream_rejected",
            ErrorCode::TokenCapReached => "token_cap_reached",
            ErrorCode::UpstreamUnavailable => "upstream_unavailable",
            ErrorCode::StoreUnavailable => "store_unavailable",
        }
    }

    /// The code `code` is, if this version knows it (exact, lowercase).
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|known| known.as_str() == code)
    }

    /// The HTTP status the broker answers this code with.
    pub const fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidRequest => 400,
            ErrorCode::InvalidSignature => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound | ErrorCode::NotInstalled | ErrorCode::NotConfigured => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::AddonSuspended => 409,
            ErrorCode::InvalidCredentials => 422,
            ErrorCode::RateLimited => 429,
            ErrorCode::UpstreamRejected => 502,
            ErrorCode::TokenCapReached
            | ErrorCode::UpstreamUnavailable
            | ErrorCode::StoreUnavailable => 503,
        }
    }

    /// Whether the same request may succeed later without anyone changing
    /// anything (rate limits, the token cap, outages); `false` for refusals
    /// that need a person or another request.
    pub const fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::RateLimited
                | ErrorCode::TokenCapReached
                | ErrorCode::UpstreamUnavailable
                | ErrorCode::StoreUnavailable
        )
    }

    /// The wait a refusal of this code stands for when it does not say
    /// (no `Retry-After`): `rate_limited` 1 s, `token_cap_reached` 60 s;
    /// `None` for codes that come without a wait.
    pub const fn default_retry_after(self) -> Option<Duration> {
        match self {
            ErrorCode::RateLimited => Some(DEFAULT_RATE_LIMIT_RETRY),
            ErrorCode::TokenCapReached => Some(DEFAULT_CAP_RETRY),
            _ => None,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A code this version does not know (see [`ErrorCode::parse`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownErrorCode;

impl fmt::Display for UnknownErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not an error code of the broker")
    }
}

impl std::error::Error for UnknownErrorCode {}

impl FromStr for ErrorCode {
    type Err = UnknownErrorCode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or(UnknownErrorCode)
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = Cow::<str>::deserialize(deserializer)?;
        Self::parse(&code).ok_or_else(|| serde::de::Error::custom(UnknownErrorCode))
    }
}

/// The JSON body of every error answer of the broker:
/// `{"error":{"code","message","upstream_code"?}}`.
///
/// Borrows when written (the broker), owns when read (any `'a`, so it is
/// also `DeserializeOwned`). Unknown fields are ignored when read.
///
/// ```
/// use shop_token_protocol::error::{ErrorBody, ErrorCode};
///
/// let body = ErrorBody::new(ErrorCode::UpstreamRejected, "the platform refused to issue a token")
///     .with_upstream_code("invalid_client");
/// let json = serde_json::to_string(&body).unwrap();
/// assert_eq!(
///     json,
///     r#"{"error":{"code":"upstream_rejected","message":"the platform refused to issue a token","upstream_code":"invalid_client"}}"#
/// );
/// let read: ErrorBody = serde_json::from_str(&json).unwrap();
/// assert_eq!(read.error.known_code(), Some(ErrorCode::UpstreamRejected));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody<'a> {
    /// The error.
    pub error: ErrorDetail<'a>,
}

/// The `error` of an [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail<'a> {
    /// The stable code, as sent (possibly one this version does not know:
    /// see [`known_code`](Self::known_code)).
    pub code: Cow<'a, str>,
    /// For humans; never holds a token, code or secret. Empty when absent.
    #[serde(default)]
    pub message: Cow<'a, str>,
    /// The platform's own error code, when a platform refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_code: Option<Cow<'a, str>>,
}

impl<'a> ErrorBody<'a> {
    /// The body of an error `code` with `message`.
    pub fn new(code: ErrorCode, message: impl Into<Cow<'a, str>>) -> Self {
        Self::with_raw_code(code.as_str(), message)
    }

    /// The body of an error whose code is given as text (e.g. relayed).
    pub fn with_raw_code(code: impl Into<Cow<'a, str>>, message: impl Into<Cow<'a, str>>) -> Self {
        Self {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
                upstream_code: None,
            },
        }
    }

    /// With the platform's own error code.
    pub fn with_upstream_code(mut self, upstream_code: impl Into<Cow<'a, str>>) -> Self {
        self.error.upstream_code = Some(upstream_code.into());
        self
    }

    /// Reads an error body; `None` when `json` is not one.
    pub fn from_json(json: &[u8]) -> Option<ErrorBody<'static>> {
        serde_json::from_slice(json).ok()
    }
}

impl ErrorDetail<'_> {
    /// The code, if this version knows it.
    pub fn known_code(&self) -> Option<ErrorCode> {
        ErrorCode::parse(&self.code)
    }
}

/// A direct invocation's function error, as Lambda answers it:
/// `{"errorType","errorMessage"}`. The broker's `errorType` is the stable
/// code; its message ends with `(retry after N s)` when the refusal says
/// when to come back, and `upstream_rejected`'s with the platform's code in
/// parentheses.
///
/// ```
/// use std::time::Duration;
/// use shop_token_protocol::error::{ErrorCode, FunctionError};
///
/// let error = FunctionError::new(
///     ErrorCode::TokenCapReached,
///     "the shop already has the maximum number of live API tokens",
///     Some(Duration::from_millis(1_200)),
/// );
/// assert_eq!(
///     error.error_message,
///     "the shop already has the maximum number of live API tokens (retry after 2 s)"
/// );
/// assert_eq!(error.retry_after(), Some(Duration::from_secs(2)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionError {
    /// The stable code (or Lambda's own error type, e.g. `Sandbox.Timedout`).
    #[serde(rename = "errorType")]
    pub error_type: String,
    /// For humans; never holds a token, code or secret.
    #[serde(rename = "errorMessage", default)]
    pub error_message: String,
}

impl FunctionError {
    /// The function error of `code` with `message`, and the wait it asks
    /// for if any (written as whole seconds, rounded up).
    pub fn new(code: ErrorCode, message: impl fmt::Display, retry_after: Option<Duration>) -> Self {
        let error_message = match retry_after {
            Some(after) => format!(
                "{message} (retry after {} s)",
                crate::retry_after::to_seconds(after)
            ),
            None => message.to_string(),
        };
        Self {
            error_type: code.as_str().to_owned(),
            error_message,
        }
    }

    /// Reads a function error's payload; `None` when `json` is not one.
    pub fn from_json(json: &[u8]) -> Option<Self> {
        serde_json::from_slice(json).ok()
    }

    /// The code, if this version knows it.
    pub fn known_code(&self) -> Option<ErrorCode> {
        ErrorCode::parse(&self.error_type)
    }

    /// The wait at the end of the message: `(retry after N s)`.
    pub fn retry_after(&self) -> Option<Duration> {
        self.parenthesized()?
            .strip_prefix("retry after ")?
            .strip_suffix(" s")?
            .parse()
            .ok()
            .map(Duration::from_secs)
    }

    /// The platform's code at the end of an `upstream_rejected` message.
    pub fn upstream_code(&self) -> Option<&str> {
        self.parenthesized()
            .filter(|_| self.known_code() == Some(ErrorCode::UpstreamRejected))
    }

    /// What the message's last parentheses hold, when it ends with them.
    fn parenthesized(&self) -> Option<&str> {
        self.error_message
            .strip_suffix(')')
            .and_then(|rest| rest.rsplit_once('('))
            .map(|(_, inside)| inside)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_reads_back_from_its_name() {
        for code in ErrorCode::ALL {
            assert_eq!(code.as_str().parse(), Ok(code));
            assert_eq!(code.to_string(), code.as_str());
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
        }
        for unknown in ["", "NOT_FOUND", "not_found ", "Sandbox.Timedout", "usage"] {
            assert_eq!(unknown.parse::<ErrorCode>(), Err(UnknownErrorCode));
        }
        assert!(serde_json::from_str::<ErrorCode>("\"a_code_of_the_future\"").is_err());
    }

    #[test]
    fn each_code_has_the_status_the_broker_answers_with() {
        let statuses: Vec<(&str, u16, bool)> = ErrorCode::ALL
            .iter()
            .map(|code| (code.as_str(), code.http_status(), code.is_retryable()))
            .collect();
        assert_eq!(
            statuses,
            [
                ("invalid_request", 400, false),
                ("invalid_signature", 401, false),
                ("forbidden", 403, false),
                ("not_found", 404, false),
                ("not_installed", 404, false),
                ("not_configured", 404, false),
                ("method_not_allowed", 405, false),
                ("addon_suspended", 409, false),
                ("invalid_credentials", 422, false),
                ("rate_limited", 429, true),
                ("upstream_rejected", 502, false),
                ("token_cap_reached", 503, true),
                ("upstream_unavailable", 503, true),
                ("store_unavailable", 503, true),
            ]
        );
    }

    #[test]
    fn refusals_without_a_wait_get_the_defaults() {
        assert_eq!(
            ErrorCode::TokenCapReached.default_retry_after(),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            ErrorCode::RateLimited.default_retry_after(),
            Some(Duration::from_secs(1))
        );
        assert_eq!(ErrorCode::NotInstalled.default_retry_after(), None);
    }

    #[test]
    fn the_body_is_the_brokers_shape_and_keeps_unknown_codes() {
        let body = ErrorBody::new(ErrorCode::NotInstalled, "no installation");
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"error": {"code": "not_installed", "message": "no installation"}})
        );
        let read = ErrorBody::from_json(
            br#"{"error":{"code":"a_code_of_the_future","message":"m","extra":1},"more":2}"#,
        )
        .unwrap();
        assert_eq!(read.error.code, "a_code_of_the_future");
        assert_eq!(read.error.known_code(), None);
        let bare = ErrorBody::from_json(br#"{"error":{"code":"store_unavailable"}}"#).unwrap();
        assert_eq!(bare.error.message, "");
        assert_eq!(bare.error.known_code(), Some(ErrorCode::StoreUnavailable));
        // API Gateway's own refusals are not error bodies.
        assert!(ErrorBody::from_json(br#"{"message":"Forbidden"}"#).is_none());
        assert!(ErrorBody::from_json(b"<html>").is_none());
    }

    #[test]
    fn a_function_error_carries_its_wait_and_upstream_code_in_its_message() {
        let read = |json: &str| FunctionError::from_json(json.as_bytes()).unwrap();
        let cap = read(
            r#"{"errorType":"token_cap_reached","errorMessage":"the shop already has the maximum number of live API tokens (retry after 1200 s)"}"#,
        );
        assert_eq!(cap.known_code(), Some(ErrorCode::TokenCapReached));
        assert_eq!(cap.retry_after(), Some(Duration::from_secs(1200)));
        assert_eq!(cap.upstream_code(), None);
        let rejected = read(
            r#"{"errorType":"upstream_rejected","errorMessage":"the platform refused to issue a token (invalid_client)"}"#,
        );
        assert_eq!(rejected.upstream_code(), Some("invalid_client"));
        assert_eq!(rejected.retry_after(), None);
        let lambda = read(
            r#"{"errorType":"Sandbox.Timedout","errorMessage":"Task timed out after 10.00 seconds"}"#,
        );
        assert_eq!(lambda.known_code(), None);
        assert!(FunctionError::from_json(b"{}").is_none());
        let written = FunctionError::new(ErrorCode::RateLimited, "slow down", Some(Duration::ZERO));
        assert_eq!(written.error_message, "slow down (retry after 1 s)");
        assert_eq!(
            serde_json::to_value(&written).unwrap(),
            serde_json::json!({"errorType": "rate_limited", "errorMessage": "slow down (retry after 1 s)"})
        );
    }
}
