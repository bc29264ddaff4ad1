//! The install callback's errors, and how each is answered: JSON by the
//! shared HTTP error contract, or a page on a browser route.

use broker_domain::http::{ErrorCode, HttpError};
use broker_domain::lazy_secret::SecretUnavailable;
use broker_domain::storage::{self, StoreError};
use broker_platforms::shoprenter::ShoprenterError;
use broker_platforms::shoptet::ShoptetError;
use broker_vending::VendError;
use lambda_http::Request;
use lambda_http::http::{HeaderValue, Response, header};

use crate::browser;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstallError {
    #[error("no such route")]
    NotFound,
    /// An operator route without an IAM identity in the event.
    #[error("operator routes need an IAM-authorised caller")]
    Forbidden,
    /// A Shoptet install call from outside `SHOPTET_INSTALL_SOURCE_CIDRS`.
    #[error("install calls are accepted only from the configured networks")]
    SourceNotAllowed,
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
    /// Valid credentials, but of another shop than the path names.
    #[error("the OAuth access token belongs to another e-shop than the path names")]
    ShopMismatch,
    #[error("the signature does not match")]
    InvalidSignature,
    /// A signed redirect already acted on (or overtaken by a newer one) that
    /// does not describe the shop's state: answered like a bad signature,
    /// and nothing changed.
    #[error("this signed redirect was already used")]
    RedirectUsed,
    #[error("{0}")]
    NotConfigured(&'static str),
}

/// Why a Shoptet route answers `not_configured` on a Shoprenter-only stack.
pub(crate) const SHOPTET_NOT_CONFIGURED: &str =
    "no Shoptet add-on is configured (SHOPTET_OAUTH_URL, SHOPTET_CLIENT_ID)";

impl HttpError for InstallError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::NotFound | Self::UnknownInstallation => ErrorCode::NotFound,
            Self::Forbidden | Self::SourceNotAllowed => ErrorCode::Forbidden,
            Self::MethodNotAllowed { .. } => ErrorCode::MethodNotAllowed,
            Self::InvalidRequest(_) => ErrorCode::InvalidRequest,
            Self::UpstreamRejected { .. } => ErrorCode::UpstreamRejected,
            Self::UpstreamUnavailable => ErrorCode::UpstreamUnavailable,
            Self::StoreUnavailable => ErrorCode::StoreUnavailable,
            Self::InvalidCredentials | Self::ShopMismatch => ErrorCode::InvalidCredentials,
            Self::InvalidSignature | Self::RedirectUsed => ErrorCode::InvalidSignature,
            Self::NotConfigured(_) => ErrorCode::NotConfigured,
        }
    }

    fn upstream_code(&self) -> Option<&str> {
        match self {
            Self::UpstreamRejected { upstream_code } => Some(upstream_code),
            _ => None,
        }
    }
}

/// What a refused call on an install route says about installs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallRefusal {
    /// No install at all: a wrong method, or a caller the source
    /// allowlist or the operator gate turned away (403). Not counted.
    NoAttempt,
    /// A call no platform started, as anyone can send it: malformed, a bad
    /// or stale signature, a replay, a Shoptet code the OAuth server does
    /// not know, an app this broker is not set up for. `InstallRejects`,
    /// which pages no one.
    Rejected,
    /// An install a platform started that failed on our side: the
    /// platform refused our configuration (client credentials, redirect
    /// URI), a store failed, or an upstream or the deadline ran out.
    /// `InstallFailures`, which pages.
    Failed,
}

/// Shoptet's answer to a code it does not know (unknown, expired, already
/// used): RFC 6749's `invalid_grant`. Any other refusal of the code
/// exchange (`invalid_client`, `unauthorized_client`, `invalid_request`,
/// which is what the platform double answers to a redirect URI other than
/// the registered one) points at our configuration. Which code Shoptet
/// sends for a redirect mismatch is *(unconfirmed)*: RFC 6749 allows
/// `invalid_grant` for it, and then a misconfigured redirect URI shows as
/// `InstallRejects` with code `invalid_grant` on every install, not as
/// `InstallFailures` (docs/runbooks.md says to watch for that).
const UNKNOWN_CODE: &str = "invalid_grant";

impl InstallError {
    /// How a refusal on an install route is counted (see
    /// [`InstallRefusal`]).
    pub fn install_refusal(&self) -> InstallRefusal {
        match self {
            Self::MethodNotAllowed { .. } | Self::SourceNotAllowed | Self::Forbidden => {
                InstallRefusal::NoAttempt
            }
            Self::NotFound
            | Self::InvalidRequest(_)
            | Self::InvalidSignature
            | Self::RedirectUsed
            | Self::NotConfigured(_) => InstallRefusal::Rejected,
            Self::UpstreamRejected { upstream_code } if upstream_code == UNKNOWN_CODE => {
                InstallRefusal::Rejected
            }
            Self::UpstreamRejected { .. }
            | Self::UpstreamUnavailable
            | Self::StoreUnavailable
            | Self::InvalidCredentials
            | Self::ShopMismatch
            | Self::UnknownInstallation => InstallRefusal::Failed,
        }
    }

    /// The answer to `request`: JSON by the shared contract, or a page when
    /// the route is a browser's (`browser_route`) and JSON was not asked
    /// for. A 405 lists the methods the route does answer (RFC 9110).
    pub(crate) fn render(&self, request: &Request, browser_route: bool) -> Response<String> {
        let mut response = if browser_route && !browser::wants_json(request) {
            browser::error_page(self.status(), self.sentence(), self.code().as_str())
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
            Self::RedirectUsed => "This link was already used. Start again from the shop's admin.",
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

/// Already logged with its variable; a request after the back-off reads again.
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
            VendError::NotConfigured => Self::NotConfigured(SHOPTET_NOT_CONFIGURED),
            VendError::NotInstalled
            | VendError::AddonSuspended
            | VendError::UpstreamRejected { .. }
            | VendError::InvalidRequest(_)
            | VendError::NotFound => Self::InvalidCredentials,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(code: &str) -> InstallError {
        InstallError::UpstreamRejected {
            upstream_code: code.to_owned(),
        }
    }

    #[test]
    fn anonymous_junk_is_rejected_and_only_what_points_at_us_is_a_failed_install() {
        use InstallRefusal::*;
        for (error, refusal) in [
            (InstallError::SourceNotAllowed, NoAttempt),
            (InstallError::MethodNotAllowed { allow: "GET" }, NoAttempt),
            (
                InstallError::InvalidRequest("the code parameter is missing"),
                Rejected,
            ),
            (InstallError::InvalidSignature, Rejected),
            (InstallError::RedirectUsed, Rejected),
            (InstallError::NotConfigured("no Shoprenter app"), Rejected),
            (upstream("invalid_grant"), Rejected),
            (upstream("invalid_client"), Failed),
            (upstream("invalid_request"), Failed),
            (InstallError::UpstreamUnavailable, Failed),
            (InstallError::StoreUnavailable, Failed),
        ] {
            assert_eq!(error.install_refusal(), refusal, "{error:?}");
        }
    }
}
