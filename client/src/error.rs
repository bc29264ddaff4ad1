//! What can go wrong getting a token: the broker's stable error codes as
//! variants, plus the failures of reaching the broker at all.

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use shop_token_protocol::error::ErrorCode;

/// Why no token was returned.
///
/// One variant per stable error code of the token vendor (see the broker's
/// "Token vendor interface" and [`ErrorCode`]), plus
/// [`Unauthorized`](Self::Unauthorized), [`Broker`](Self::Broker) for any
/// other code (one this version does not know is kept as sent), and
/// [`Transport`](Self::Transport) when the broker could not be asked.
/// Neither `Display` nor `Debug` ever shows a token. Cheap to clone: every
/// caller waiting for the same vend gets the same error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// `invalid_request`: a bad platform, shop id or body, or a `min_ttl`
    /// at or beyond a token's lifetime. The broker's message.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// `not_installed`: the shop has no valid installation (never installed,
    /// uninstalled, or its credentials no longer work).
    #[error("the shop has no valid installation")]
    NotInstalled,
    /// `addon_suspended`: the add-on is suspended (or not approved) in the shop.
    #[error("the add-on is suspended (or not approved) in the shop")]
    Suspended,
    /// `rate_limited`: the platform rate-limits the broker's token requests.
    #[error(
        "the platform is rate limiting token requests; retry after {} s",
        .retry_after.as_secs_f64().ceil()
    )]
    RateLimited {
        /// When to try again (1 s when the broker did not say).
        retry_after: Duration,
    },
    /// `token_cap_reached`: Shoptet's 5 live API tokens per installation
    /// are all out; the oldest expires after `retry_after`.
    #[error(
        "the shop already has the maximum number of live API tokens; retry after {} s",
        .retry_after.as_secs_f64().ceil()
    )]
    TokenCapReached {
        /// When to try again (60 s when the broker did not say).
        retry_after: Duration,
    },
    /// `upstream_rejected`: the platform refused to issue a token.
    #[error("the platform refused to issue a token{}", Parenthesized(.upstream_code.as_deref()))]
    UpstreamRejected {
        /// The platform's own error code, when the broker passed it on.
        upstream_code: Option<String>,
    },
    /// `upstream_unavailable`: the platform failed or timed out (retry later).
    #[error("the platform did not issue a token in time")]
    UpstreamUnavailable,
    /// `store_unavailable`: the broker's storage failed (retry later).
    #[error("the broker's token store is unavailable")]
    StoreUnavailable,
    /// The broker (or API Gateway in front of it) refused this caller: a
    /// missing or wrong bearer token, or SigV4 credentials without
    /// `execute-api:Invoke` on the route.
    #[error(
        "the broker refused this caller (HTTP {status}): check the bearer token or the IAM permissions"
    )]
    Unauthorized {
        /// The HTTP status (401 or 403).
        status: u16,
    },
    /// Another error code: one the token vendor does not answer a vend
    /// with (e.g. `not_found` for a wrong route), or one this version does
    /// not know.
    #[error("the broker answered {code}: {message}")]
    Broker {
        /// The broker's stable code.
        code: String,
        /// The broker's message (never holds a secret).
        message: String,
    },
    /// The broker could not be asked, or its answer could not be read.
    #[error("cannot get a token from the broker: {0}")]
    Transport(#[from] TransportError),
}

/// ` (code)`, or nothing.
struct Parenthesized<'a>(Option<&'a str>);

impl fmt::Display for Parenthesized<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(code) => write!(f, " ({code})"),
            None => Ok(()),
        }
    }
}

impl ClientError {
    /// The error a broker's stable `code` stands for, as a [`Transport`]
    /// implementation reads it from an answer: `message` is the broker's,
    /// `upstream_code` and `retry_after` as far as the answer carries them
    /// (a refusal without a wait gets the protocol's default,
    /// [`ErrorCode::default_retry_after`]).
    ///
    /// [`Transport`]: crate::Transport
    pub fn from_code(
        code: &str,
        message: &str,
        upstream_code: Option<&str>,
        retry_after: Option<Duration>,
    ) -> Self {
        let Some(known) = ErrorCode::parse(code) else {
            return Self::Broker {
                code: code.to_owned(),
                message: message.to_owned(),
            };
        };
        let wait = || {
            retry_after
                .or(known.default_retry_after())
                .unwrap_or_default()
        };
        match known {
            ErrorCode::InvalidRequest => Self::InvalidRequest(message.to_owned()),
            ErrorCode::NotInstalled => Self::NotInstalled,
            ErrorCode::AddonSuspended => Self::Suspended,
            ErrorCode::RateLimited => Self::RateLimited {
                retry_after: wait(),
            },
            ErrorCode::TokenCapReached => Self::TokenCapReached {
                retry_after: wait(),
            },
            ErrorCode::UpstreamRejected => Self::UpstreamRejected {
                upstream_code: upstream_code.map(str::to_owned),
            },
            ErrorCode::UpstreamUnavailable => Self::UpstreamUnavailable,
            ErrorCode::StoreUnavailable => Self::StoreUnavailable,
            _ => Self::Broker {
                code: code.to_owned(),
                message: message.to_owned(),
            },
        }
    }

    /// A stable name of the error: the broker's code for the broker's
    /// errors (`not_installed`, `addon_suspended`, …; an unknown code as
    /// sent), `unauthorized` or `transport` otherwise.
    pub fn code(&self) -> &str {
        match self {
            Self::Unauthorized { .. } => "unauthorized",
            Self::Transport(_) => "transport",
            Self::Broker { code, .. } => code,
            typed => typed.error_code().map_or("transport", ErrorCode::as_str),
        }
    }

    /// The broker's code as the protocol knows it; `None` for
    /// [`Unauthorized`](Self::Unauthorized),
    /// [`Transport`](Self::Transport) and codes this version does not know.
    pub fn error_code(&self) -> Option<ErrorCode> {
        Some(match self {
            Self::InvalidRequest(_) => ErrorCode::InvalidRequest,
            Self::NotInstalled => ErrorCode::NotInstalled,
            Self::Suspended => ErrorCode::AddonSuspended,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::TokenCapReached { .. } => ErrorCode::TokenCapReached,
            Self::UpstreamRejected { .. } => ErrorCode::UpstreamRejected,
            Self::UpstreamUnavailable => ErrorCode::UpstreamUnavailable,
            Self::StoreUnavailable => ErrorCode::StoreUnavailable,
            Self::Broker { code, .. } => return ErrorCode::parse(code),
            Self::Unauthorized { .. } | Self::Transport(_) => return None,
        })
    }

    /// How long to wait before asking again, for the refusals that say so.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } | Self::TokenCapReached { retry_after } => {
                Some(*retry_after)
            }
            _ => None,
        }
    }

    /// Whether the same request may succeed later without anyone changing
    /// anything (rate limits, the token cap, outages); `false` for refusals
    /// that need a person (not installed, suspended, unauthorized, invalid).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transport(_)) || self.error_code().is_some_and(ErrorCode::is_retryable)
    }
}

/// The broker could not be reached, or answered something that is not the
/// token vendor's protocol. The text names what failed and its causes,
/// never a token or a request body.
#[derive(Clone, thiserror::Error)]
#[error("{text}")]
pub struct TransportError {
    /// What failed, with its causes flattened into one line.
    text: Arc<str>,
}

impl TransportError {
    /// A failure described by `message`.
    pub fn new(message: impl fmt::Display) -> Self {
        Self {
            text: Arc::from(message.to_string()),
        }
    }

    /// A failure described by `message`, caused by `cause` (whose
    /// `Display` and sources are appended, so they must hold no secret).
    pub fn with_cause(message: impl fmt::Display, cause: &(dyn Error + 'static)) -> Self {
        let mut text = message.to_string();
        let mut next = Some(cause);
        while let Some(error) = next {
            let part = error.to_string();
            // Some errors repeat their source's text in their own.
            if !text.ends_with(&part) {
                text.push_str(": ");
                text.push_str(&part);
            }
            next = error.source();
        }
        Self {
            text: Arc::from(text),
        }
    }
}

impl fmt::Debug for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TransportError").field(&self.text).finish()
    }
}

impl PartialEq for TransportError {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for TransportError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_code_has_its_variant() {
        let cases = [
            ("invalid_request", ClientError::InvalidRequest("bad".into())),
            ("not_installed", ClientError::NotInstalled),
            ("addon_suspended", ClientError::Suspended),
            (
                "rate_limited",
                ClientError::RateLimited {
                    retry_after: Duration::from_secs(7),
                },
            ),
            (
                "token_cap_reached",
                ClientError::TokenCapReached {
                    retry_after: Duration::from_secs(7),
                },
            ),
            (
                "upstream_rejected",
                ClientError::UpstreamRejected {
                    upstream_code: Some("invalid_client".into()),
                },
            ),
            ("upstream_unavailable", ClientError::UpstreamUnavailable),
            ("store_unavailable", ClientError::StoreUnavailable),
        ];
        for (code, expected) in cases {
            let error = ClientError::from_code(
                code,
                "bad",
                Some("invalid_client"),
                Some(Duration::from_secs(7)),
            );
            assert_eq!(error, expected);
            assert_eq!(error.code(), code);
        }
    }

    #[test]
    fn an_unknown_code_is_kept_with_its_message() {
        let error = ClientError::from_code("not_found", "no such route", None, None);
        assert_eq!(
            error,
            ClientError::Broker {
                code: "not_found".into(),
                message: "no such route".into()
            }
        );
        assert_eq!(error.code(), "not_found");
        assert_eq!(error.error_code(), Some(ErrorCode::NotFound));
        assert!(!error.is_transient());
        let future = ClientError::from_code("a_code_of_the_future", "m", None, None);
        assert_eq!(future.code(), "a_code_of_the_future");
        assert_eq!(future.error_code(), None);
    }

    #[test]
    fn the_messages_say_what_happened_and_when_to_retry() {
        let cases = [
            (
                ClientError::TokenCapReached {
                    retry_after: Duration::from_millis(41_200),
                },
                "the shop already has the maximum number of live API tokens; retry after 42 s",
            ),
            (
                ClientError::UpstreamRejected {
                    upstream_code: Some("invalid_client".into()),
                },
                "the platform refused to issue a token (invalid_client)",
            ),
            (
                ClientError::UpstreamRejected {
                    upstream_code: None,
                },
                "the platform refused to issue a token",
            ),
            (
                ClientError::Transport(TransportError::new("refused")),
                "cannot get a token from the broker: refused",
            ),
        ];
        for (error, message) in cases {
            assert_eq!(error.to_string(), message);
        }
        let transport = ClientError::Transport(TransportError::new("refused"));
        assert_eq!(transport.source().unwrap().to_string(), "refused");
        assert!(transport.is_transient());
        assert_eq!(transport.code(), "transport");
        assert_eq!(
            ClientError::Unauthorized { status: 403 }.code(),
            "unauthorized"
        );
    }

    #[test]
    fn refusals_without_a_retry_after_get_the_brokers_defaults() {
        let cap = ClientError::from_code("token_cap_reached", "", None, None);
        assert_eq!(cap.retry_after(), Some(Duration::from_secs(60)));
        let rate = ClientError::from_code("rate_limited", "", None, None);
        assert_eq!(rate.retry_after(), Some(Duration::from_secs(1)));
    }

    #[test]
    fn a_transport_error_flattens_its_causes_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let error = TransportError::with_cause("POST http://127.0.0.1:1/tokens/shoptet/1", &io);
        assert_eq!(
            error.to_string(),
            "POST http://127.0.0.1:1/tokens/shoptet/1: refused"
        );
    }
}
