//! The token vendor's errors: one enum, mapped once to HTTP responses (and,
//! in the vendor function, to Lambda function errors whose `errorType` is the
//! stable code).

use std::time::Duration;

use crate::http::{ErrorCode, HttpError};
use crate::lazy_secret::SecretUnavailable;
use crate::storage::{self, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VendError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("no such route")]
    NotFound,
    #[error("the shop has no valid installation or credentials")]
    NotInstalled,
    /// The broker is deployed without this platform's settings (a
    /// single-platform stack): none of its shops can be served.
    #[error("this broker is not configured for the shop's platform")]
    NotConfigured,
    #[error("the add-on is suspended (or not approved) in this shop")]
    AddonSuspended,
    #[error("the platform is rate limiting token requests")]
    RateLimited { retry_after: Duration },
    #[error("the shop already has the maximum number of live API tokens")]
    TokenCapReached { retry_after: Duration },
    #[error("the platform refused to issue a token ({upstream_code})")]
    UpstreamRejected { upstream_code: String },
    #[error("the platform did not issue a token in time")]
    UpstreamUnavailable,
    #[error("the token store is unavailable")]
    StoreUnavailable,
}

impl HttpError for VendError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidRequest(_) => ErrorCode::InvalidRequest,
            Self::NotFound => ErrorCode::NotFound,
            Self::NotInstalled => ErrorCode::NotInstalled,
            Self::NotConfigured => ErrorCode::NotConfigured,
            Self::AddonSuspended => ErrorCode::AddonSuspended,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::TokenCapReached { .. } => ErrorCode::TokenCapReached,
            Self::UpstreamRejected { .. } => ErrorCode::UpstreamRejected,
            Self::UpstreamUnavailable => ErrorCode::UpstreamUnavailable,
            Self::StoreUnavailable => ErrorCode::StoreUnavailable,
        }
    }

    fn upstream_code(&self) -> Option<&str> {
        match self {
            Self::UpstreamRejected { upstream_code } => Some(upstream_code),
            _ => None,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } | Self::TokenCapReached { retry_after } => {
                Some(*retry_after)
            }
            _ => None,
        }
    }
}

impl From<StoreError> for VendError {
    fn from(error: StoreError) -> Self {
        storage::log_failure(&error);
        Self::StoreUnavailable
    }
}

/// A configured secret that could not be read is a store failure to the
/// caller (already logged with its variable); a request after the back-off
/// reads again.
impl From<SecretUnavailable> for VendError {
    fn from(_: SecretUnavailable) -> Self {
        Self::StoreUnavailable
    }
}
