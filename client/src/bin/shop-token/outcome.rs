//! How each outcome leaves the process: one exit code per error class, the
//! error as JSON on stderr (never a token: the messages come from the
//! client's errors, which hold none).

use std::process::ExitCode;

use serde::Serialize;
use shop_token_client::{ApiError, ClientError};

/// The exit codes of the usage text, one per error class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Usage = 2,
    NotInstalled = 3,
    Suspended = 4,
    Throttled = 5,
    UpstreamRejected = 6,
    Unavailable = 7,
    Unauthorized = 8,
    OtherBrokerError = 9,
    ApiStatus = 10,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

/// `{"error":{"code","message","retry_after_seconds"?,"upstream_code"?}}`,
/// the broker's error shape.
#[derive(Serialize)]
pub struct Failure {
    error: Detail,
}

#[derive(Serialize)]
struct Detail {
    code: String,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream_code: Option<String>,
}

impl Failure {
    pub fn new(code: &str, message: impl ToString) -> Self {
        Self {
            error: Detail {
                code: code.to_owned(),
                message: message.to_string(),
                retry_after_seconds: None,
                upstream_code: None,
            },
        }
    }

    pub fn print(&self) {
        eprintln!(
            "{}",
            serde_json::to_string(self).expect("strings and numbers serialize")
        );
    }
}

/// The exit code and the printed error of a broker's refusal or failure.
pub fn of_token_error(error: &ClientError) -> (Exit, Failure) {
    let exit = match error {
        ClientError::InvalidRequest(_) => Exit::Usage,
        ClientError::NotInstalled => Exit::NotInstalled,
        ClientError::Suspended => Exit::Suspended,
        ClientError::RateLimited { .. } | ClientError::TokenCapReached { .. } => Exit::Throttled,
        ClientError::UpstreamRejected { .. } => Exit::UpstreamRejected,
        ClientError::UpstreamUnavailable
        | ClientError::StoreUnavailable
        | ClientError::Transport(_) => Exit::Unavailable,
        ClientError::Unauthorized { .. } => Exit::Unauthorized,
        _ => Exit::OtherBrokerError,
    };
    let mut failure = Failure::new(error.code(), error);
    failure.error.retry_after_seconds = error.retry_after().map(|wait| wait.as_secs());
    if let ClientError::UpstreamRejected { upstream_code } = error {
        failure.error.upstream_code = upstream_code.clone();
    }
    (exit, failure)
}

/// The exit code and the printed error of a call that got no answer.
pub fn of_api_error(error: &ApiError) -> (Exit, Failure) {
    match error {
        ApiError::Token(error) => of_token_error(error),
        ApiError::RateLimited { retry_after } => {
            let mut failure = Failure::new("api_rate_limited", error);
            failure.error.retry_after_seconds = Some(retry_after.as_secs());
            (Exit::Throttled, failure)
        }
        ApiError::Locked => (Exit::Throttled, Failure::new("api_locked", error)),
        ApiError::InvalidUrl(_) => (Exit::Usage, Failure::new("invalid_path", error)),
        ApiError::Status { .. } => (Exit::ApiStatus, Failure::new("api_status", error)),
        _ => (Exit::Unavailable, Failure::new("api_unreachable", error)),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn every_error_class_has_its_exit_code() {
        let cases = [
            (ClientError::InvalidRequest("x".into()), Exit::Usage),
            (ClientError::NotInstalled, Exit::NotInstalled),
            (ClientError::Suspended, Exit::Suspended),
            (
                ClientError::TokenCapReached {
                    retry_after: Duration::from_secs(9),
                },
                Exit::Throttled,
            ),
            (
                ClientError::UpstreamRejected {
                    upstream_code: None,
                },
                Exit::UpstreamRejected,
            ),
            (ClientError::StoreUnavailable, Exit::Unavailable),
            (
                ClientError::Unauthorized { status: 403 },
                Exit::Unauthorized,
            ),
            (
                ClientError::Broker {
                    code: "new_code".into(),
                    message: "m".into(),
                },
                Exit::OtherBrokerError,
            ),
        ];
        for (error, exit) in cases {
            assert_eq!(of_token_error(&error).0, exit, "{error:?}");
        }
        assert_eq!(of_api_error(&ApiError::Locked).0, Exit::Throttled);
    }

    #[test]
    fn the_printed_error_carries_the_code_and_the_wait() {
        let error = ClientError::TokenCapReached {
            retry_after: Duration::from_secs(42),
        };
        let (_, failure) = of_token_error(&error);
        let printed = serde_json::to_value(&failure).unwrap();
        assert_eq!(printed["error"]["code"], "token_cap_reached");
        assert_eq!(printed["error"]["retry_after_seconds"], 42);
    }
}
