//! The install callback's errors, mapped once to HTTP.

use broker_shared::http::{ErrorDetail, error_response};
use broker_shared::shoprenter::ShoprenterError;
use broker_shared::shoptet::ShoptetError;
use lambda_http::http::{Response, StatusCode};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstallError {
    #[error("no such route")]
    NotFound,
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    #[error("{0}")]
    InvalidRequest(&'static str),
    #[error("the platform refused ({upstream_code})")]
    UpstreamRejected { upstream_code: String },
    #[error("the platform did not answer usably in time")]
    UpstreamUnavailable,
    #[error("the secret store is unavailable")]
    StoreUnavailable,
    #[error("Shoprenter refused these client credentials")]
    InvalidCredentials,
}

impl InstallError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::UpstreamRejected { .. } => StatusCode::BAD_GATEWAY,
            Self::UpstreamUnavailable | Self::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::InvalidCredentials => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }

    /// The stable code callers match on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::InvalidRequest(_) => "invalid_request",
            Self::UpstreamRejected { .. } => "upstream_rejected",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::StoreUnavailable => "store_unavailable",
            Self::InvalidCredentials => "invalid_credentials",
        }
    }

    pub fn to_response(&self) -> Response<String> {
        let message = self.to_string();
        let upstream_code = match self {
            Self::UpstreamRejected { upstream_code } => Some(upstream_code.as_str()),
            _ => None,
        };
        error_response(
            self.status(),
            ErrorDetail {
                code: self.code(),
                message: &message,
                upstream_code,
            },
        )
    }
}

impl From<ShoptetError> for InstallError {
    fn from(error: ShoptetError) -> Self {
        if error.is_transient() {
            Self::UpstreamUnavailable
        } else {
            Self::UpstreamRejected {
                upstream_code: error.upstream_code().to_owned(),
            }
        }
    }
}

impl From<ShoprenterError> for InstallError {
    fn from(error: ShoprenterError) -> Self {
        match error {
            ShoprenterError::InvalidClient
            | ShoprenterError::InvalidRequest { .. }
            | ShoprenterError::Rejected { .. } => Self::InvalidCredentials,
            _ => Self::UpstreamUnavailable,
        }
    }
}
