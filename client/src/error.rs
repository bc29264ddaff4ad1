//! What can go wrong getting a token: the broker's stable error codes as
//! variants, plus the failures of reaching the broker at all.

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// When the broker refuses with `token_cap_reached` without saying for how
/// long (the broker's own default).
const DEFAULT_CAP_RETRY: Duration = Duration::from_secs(60);
/// When the broker refuses with `rate_limited` without saying for how long.
const DEFAULT_RATE_LIMIT_RETRY: Duration = Duration::from_secs(1);

/// Why no token was returned.
///
/// One variant per stable error code of the broker (see the broker's
/// "Token vendor interface"), plus [`Unauthorized`](Self::Unauthorized),
/// [`Broker`](Self::Broker) for a code this version does not know, and
/// [`Transport`](Self::Transport) when the broker could not be asked.
/// Neither `Display` nor `Debug` ever shows a token. Cheap to clone: every
/// caller waiting for the same vend gets the same error.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientError {
    /// `invalid_request`: a bad platform, shop id or body, or a `min_ttl`
    /// at or beyond a token's lifetime. The broker's message.
    InvalidRequest(String),
    /// `not_installed`: the shop has no valid installation (never installed,
    /// uninstalled, or its credentials no longer work).
    NotInstalled,
    /// `addon_suspended`: the add-on is suspended (or not approved) in the shop.
    Suspended,
    /// `rate_limited`: the platform rate-limits the broker's token requests.
    RateLimited {
        /// When to try again (1 s when the broker did not say).
        retry_after: Duration,
    },
    /// `token_cap_reached`: Shoptet's 5 live API tokens per installation
    /// are all out; the oldest expires after `retry_after`.
    TokenCapReached {
        /// When to try again (60 s when the broker did not say).
        retry_after: Duration,
    },
    /// `upstream_rejected`: the platform refused to issue a token.
    UpstreamRejected {
        /// The platform's own error code, when the broker passed it on.
        upstream_code: Option<String>,
    },
    /// `upstream_unavailable`: the platform failed or timed out (retry later).
    UpstreamUnavailable,
    /// `store_unavailable`: the broker's storage failed (retry later).
    StoreUnavailable,
    /// The broker (or API Gateway in front of it) refused this caller: a
    /// missing or wrong bearer token, or SigV4 credentials without
    /// `execute-api:Invoke` on the route.
    Unauthorized {
        /// The HTTP status (401 or 403).
        status: u16,
    },
    /// An error code this version of the client does not know.
    Broker {
        /// The broker's stable code.
        code: String,
        /// The broker's message (never holds a secret).
        message: String,
    },
    /// The broker could not be asked, or its answer could not be read.
    Transport(TransportError),
}

impl ClientError {
    /// The error a broker's stable `code` stands for, as a [`Transport`]
    /// implementation reads it from an answer: `message` is the broker's,
    /// `upstream_code` and `retry_after` as far as the answer carries them.
    ///
    /// [`Transport`]: crate::Transport
    pub fn from_code(
        code: &str,
        message: &str,
        upstream_code: Option<&str>,
        retry_after: Option<Duration>,
    ) -> Self {
        match code {
            "invalid_request" => Self::InvalidRequest(message.to_owned()),
            "not_installed" => Self::NotInstalled,
            "addon_suspended" => Self::Suspended,
            "rate_limited" => Self::RateLimited {
                retry_after: retry_after.unwrap_or(DEFAULT_RATE_LIMIT_RETRY),
            },
            "token_cap_reached" => Self::TokenCapReached {
                retry_after: retry_after.unwrap_or(DEFAULT_CAP_RETRY),
            },
            "upstream_rejected" => Self::UpstreamRejected {
                upstream_code: upstream_code.map(str::to_owned),
            },
            "upstream_unavailable" => Self::UpstreamUnavailable,
            "store_unavailable" => Self::StoreUnavailable,
            other => Self::Broker {
                code: other.to_owned(),
                message: message.to_owned(),
            },
        }
    }

    /// A stable name of the error: the broker's code for the broker's
    /// errors (`not_installed`, `addon_suspended`, …; an unknown code as
    /// sent), `unauthorized` or `transport` otherwise.
    pub fn code(&self) -> &str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::NotInstalled => "not_installed",
            Self::Suspended => "addon_suspended",
            Self::RateLimited { .. } => "rate_limited",
            Self::TokenCapReached { .. } => "token_cap_reached",
            Self::UpstreamRejected { .. } => "upstream_rejected",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::StoreUnavailable => "store_unavailable",
            Self::Unauthorized { .. } => "unauthorized",
            Self::Broker { code, .. } => code,
            Self::Transport(_) => "transport",
        }
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
        matches!(
            self,
            Self::RateLimited { .. }
                | Self::TokenCapReached { .. }
                | Self::UpstreamUnavailable
                | Self::StoreUnavailable
                | Self::Transport(_)
        )
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidRequest(message) => write!(f, "invalid request: {message}"),
            Self::NotInstalled => f.write_str("the shop has no valid installation"),
            Self::Suspended => f.write_str("the add-on is suspended (or not approved) in the shop"),
            Self::RateLimited { retry_after } => write!(
                f,
                "the platform is rate limiting token requests; retry after {} s",
                retry_after.as_secs_f64().ceil()
            ),
            Self::TokenCapReached { retry_after } => write!(
                f,
                "the shop already has the maximum number of live API tokens; retry after {} s",
                retry_after.as_secs_f64().ceil()
            ),
            Self::UpstreamRejected {
                upstream_code: Some(code),
            } => write!(f, "the platform refused to issue a token ({code})"),
            Self::UpstreamRejected {
                upstream_code: None,
            } => f.write_str("the platform refused to issue a token"),
            Self::UpstreamUnavailable => f.write_str("the platform did not issue a token in time"),
            Self::StoreUnavailable => f.write_str("the broker's token store is unavailable"),
            Self::Unauthorized { status } => write!(
                f,
                "the broker refused this caller (HTTP {status}): check the bearer token or the IAM permissions"
            ),
            Self::Broker { code, message } => write!(f, "the broker answered {code}: {message}"),
            Self::Transport(error) => write!(f, "cannot get a token from the broker: {error}"),
        }
    }
}

impl Error for ClientError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Transport(error) => Some(error),
            _ => None,
        }
    }
}

impl From<TransportError> for ClientError {
    fn from(error: TransportError) -> Self {
        Self::Transport(error)
    }
}

/// The broker could not be reached, or answered something that is not the
/// token vendor's protocol. The text names what failed and its causes,
/// never a token or a request body.
#[derive(Clone)]
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

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
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

impl Error for TransportError {}

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
