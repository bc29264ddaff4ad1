//! Why a registration or a reconciliation failed, and whether to retry.

use broker_domain::http::HttpError;
use broker_domain::storage::StoreError;
use broker_platforms::shoptet::ShoptetError;
use broker_vending::VendError;

/// Why a registration or a reconciliation failed; each is retried later,
/// except where noted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookFailure {
    #[error("no API token for the installation: {0}")]
    Token(#[from] VendError),
    #[error("Shoptet {0}")]
    Shoptet(String),
    /// The installation has a configured event at another URL (registered
    /// outside the broker); Shoptet allows one URL per event. Left alone:
    /// it may be the add-on's own receiver.
    #[error("{0} is registered at another URL")]
    RegisteredElsewhere(&'static str),
    /// 409: a conflicting event was registered outside the broker.
    #[error("a conflicting webhook is registered outside the broker (409)")]
    Conflict,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the event bus is unavailable")]
    Bus,
}

impl From<crate::forward::ForwardError> for WebhookFailure {
    fn from(error: crate::forward::ForwardError) -> Self {
        match error {
            crate::forward::ForwardError::Store(error) => Self::Store(error),
            crate::forward::ForwardError::Bus(_) => Self::Bus,
        }
    }
}

impl From<ShoptetError> for WebhookFailure {
    fn from(error: ShoptetError) -> Self {
        Self::Shoptet(error.upstream_code().to_owned())
    }
}

impl WebhookFailure {
    /// A stable code for metrics, events and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Token(error) => error.code().as_str(),
            Self::Shoptet(_) => "upstream_failed",
            Self::RegisteredElsewhere(_) => "registered_elsewhere",
            Self::Conflict => "webhook_conflict",
            Self::Store(_) => "store_unavailable",
            Self::Bus => "bus_unavailable",
        }
    }

    /// Whether trying again can help: not for webhooks someone else
    /// registered, nor for an installation that is gone.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::RegisteredElsewhere(_)
                | Self::Conflict
                | Self::Token(VendError::NotInstalled | VendError::NotFound)
        )
    }
}
