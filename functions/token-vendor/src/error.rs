//! The token vendor's errors: one enum, mapped once to HTTP responses and to
//! Lambda function errors (whose `errorType` is the stable code).

use std::time::Duration;

use broker_shared::http::{ErrorDetail, error_response};
use broker_shared::shoprenter::ShoprenterError;
use broker_shared::shoptet::ShoptetError;
use broker_shared::storage::StoreError;
use lambda_http::http::{HeaderValue, Response, StatusCode, header};
use lambda_http::lambda_runtime::Diagnostic;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VendError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("no such route")]
    NotFound,
    #[error("the shop has no valid installation or credentials")]
    NotInstalled,
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

impl VendError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::NotFound => "not_found",
            Self::NotInstalled => "not_installed",
            Self::AddonSuspended => "addon_suspended",
            Self::RateLimited { .. } => "rate_limited",
            Self::TokenCapReached { .. } => "token_cap_reached",
            Self::UpstreamRejected { .. } => "upstream_rejected",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::StoreUnavailable => "store_unavailable",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound | Self::NotInstalled => StatusCode::NOT_FOUND,
            Self::AddonSuspended => StatusCode::CONFLICT,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::UpstreamRejected { .. } => StatusCode::BAD_GATEWAY,
            Self::TokenCapReached { .. } | Self::UpstreamUnavailable | Self::StoreUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// Whole seconds, rounded up, so a caller never retries too early.
    pub fn retry_after_seconds(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after } | Self::TokenCapReached { retry_after } => {
                Some(retry_after.as_millis().div_ceil(1000).max(1) as u64)
            }
            _ => None,
        }
    }

    pub fn to_response(&self) -> Response<String> {
        let message = self.to_string();
        let upstream_code = match self {
            Self::UpstreamRejected { upstream_code } => Some(upstream_code.as_str()),
            _ => None,
        };
        let mut response = error_response(
            self.status(),
            ErrorDetail {
                code: self.code(),
                message: &message,
                upstream_code,
            },
        );
        if let Some(seconds) = self.retry_after_seconds() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<VendError> for Diagnostic {
    fn from(error: VendError) -> Self {
        let message = match error.retry_after_seconds() {
            Some(seconds) => format!("{error} (retry after {seconds} s)"),
            None => error.to_string(),
        };
        Diagnostic {
            error_type: error.code().to_owned(),
            error_message: message,
        }
    }
}

impl From<StoreError> for VendError {
    fn from(error: StoreError) -> Self {
        tracing::error!(%error, "token store call failed");
        Self::StoreUnavailable
    }
}

impl From<ShoptetError> for VendError {
    fn from(error: ShoptetError) -> Self {
        match error {
            ShoptetError::InstallationRevoked | ShoptetError::AddonNotInstalled => {
                Self::NotInstalled
            }
            ShoptetError::AddonSuspended | ShoptetError::AddonNotApproved => Self::AddonSuspended,
            ShoptetError::RateLimited { retry_after } => Self::RateLimited {
                retry_after: retry_after.unwrap_or(Duration::from_secs(1)),
            },
            error if error.is_transient() => Self::UpstreamUnavailable,
            error => Self::UpstreamRejected {
                upstream_code: error.upstream_code().to_owned(),
            },
        }
    }
}

impl From<ShoprenterError> for VendError {
    fn from(error: ShoprenterError) -> Self {
        match error {
            ShoprenterError::RateLimited { retry_after } => Self::RateLimited {
                retry_after: retry_after.unwrap_or(Duration::from_secs(1)),
            },
            ShoprenterError::InvalidClient => Self::UpstreamRejected {
                upstream_code: "invalid_client".into(),
            },
            ShoprenterError::InvalidRequest { .. } => Self::UpstreamRejected {
                upstream_code: "invalid_request".into(),
            },
            ShoprenterError::Rejected { code, .. } => Self::UpstreamRejected {
                upstream_code: code,
            },
            _ => Self::UpstreamUnavailable,
        }
    }
}
