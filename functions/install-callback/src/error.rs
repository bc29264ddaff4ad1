//! The install callback's errors, and how each is answered: JSON by the
//! shared HTTP error contract, or a page on a browser route.

use broker_domain::http::HttpError;
use broker_domain::lazy_secret::SecretUnavailable;
use broker_domain::storage::{self, StoreError};
use broker_platforms::shoprenter::ShoprenterError;
use broker_platforms::shoptet::ShoptetError;
use broker_vending::VendError;
use lambda_http::Request;
use lambda_http::http::{HeaderValue, Response, StatusCode, header};

use crate::browser;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstallError {
    #[error("no such route")]
    NotFound,
    #[error("the broker knows no installation of this shop")]
    UnknownInstallation,
    /// `allow`: the route's methods, for the `Allow` header.
    #[error("method not allowed on this route")]
    MethodNotAllowed { allow: &'static str },
    #[error("{0}")]
    InvalidRequest(&'static str),
    #[error("the platform refused ({upstream_code})")]
    UpstreamRejected { upstream_code: String },
    #[error("the platform did not answer usably in time")]
    UpstreamUnavailable,
    #[error("the secret store is unavailable")]
    StoreUnavailable,
    #[error("the platform refused these credentials")]
    InvalidCredentials,
    #[error("the signature does not match")]
    InvalidSignature,
    #[error("{0}")]
    NotConfigured(&'static str),
}

impl HttpError for InstallError {
    fn status(&self) -> StatusCode {
        match self {
            Self::NotFound | Self::UnknownInstallation => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::UpstreamRejected { .. } => StatusCode::BAD_GATEWAY,
            Self::UpstreamUnavailable | Self::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::InvalidCredentials => StatusCode::UNPROCESSABLE_ENTITY,
            Self::InvalidSignature => StatusCode::UNAUTHORIZED,
            Self::NotConfigured(_) => StatusCode::NOT_FOUND,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::NotFound | Self::UnknownInstallation => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::InvalidRequest(_) => "invalid_request",
            Self::UpstreamRejected { .. } => "upstream_rejected",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::StoreUnavailable => "store_unavailable",
            Self::InvalidCredentials => "invalid_credentials",
            Self::InvalidSignature => "invalid_signature",
            Self::NotConfigured(_) => "not_configured",
        }
    }

    fn upstream_code(&self) -> Option<&str> {
        match self {
            Self::UpstreamRejected { upstream_code } => Some(upstream_code),
            _ => None,
        }
    }
}

impl InstallError {
    /// The answer to `request`: JSON by the shared contract, or a page when
    /// the route is a browser's (`browser_route`) and JSON was not asked
    /// for. A 405 lists the methods the route does answer (RFC 9110).
    pub(crate) fn render(&self, request: &Request, browser_route: bool) -> Response<String> {
        let mut response = if browser_route && !browser::wants_json(request) {
            browser::error_page(self.status(), self.sentence(), self.code())
        } else {
            self.to_response()
        };
        if let Self::MethodNotAllowed { allow } = self {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        response
    }

    /// What a merchant's browser is told (the code follows it).
    fn sentence(&self) -> &'static str {
        match self {
            Self::InvalidSignature => {
                "This link is not signed by Shoprenter, or it has expired. Start again from the shop's admin."
            }
            Self::InvalidRequest(_) => "This link is incomplete.",
            Self::NotConfigured(_) => "This app is not set up to be installed yet.",
            _ => "Something went wrong. Please try again in a minute.",
        }
    }
}

impl From<StoreError> for InstallError {
    fn from(error: StoreError) -> Self {
        storage::log_failure(&error);
        Self::StoreUnavailable
    }
}

/// Already logged with its variable; the next request reads again.
impl From<SecretUnavailable> for InstallError {
    fn from(_: SecretUnavailable) -> Self {
        Self::StoreUnavailable
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
        if error.is_transient() {
            Self::UpstreamUnavailable
        } else {
            Self::InvalidCredentials
        }
    }
}

/// A confirmation or verification that went through the vendor's machinery:
/// what cannot be known now is retried later; a refusal is about the
/// credentials.
impl From<VendError> for InstallError {
    fn from(error: VendError) -> Self {
        match error {
            VendError::StoreUnavailable => Self::StoreUnavailable,
            VendError::UpstreamUnavailable
            | VendError::RateLimited { .. }
            | VendError::TokenCapReached { .. } => Self::UpstreamUnavailable,
            VendError::NotInstalled
            | VendError::AddonSuspended
            | VendError::UpstreamRejected { .. }
            | VendError::InvalidRequest(_)
            | VendError::NotFound => Self::InvalidCredentials,
        }
    }
}
