//! The minting port: what the core needs from a platform, and nothing of how
//! it is asked. The platform clients implement it (`broker-platforms`); the
//! core's own tests implement it in memory.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use crate::VendError;
use crate::ids::{Platform, ShoprenterShopName};
use crate::model::{InstallationStatus, ShoprenterCredentials};
use crate::secret::{ApiAccessToken, OAuthAccessToken};

/// A freshly minted API token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub access_token: ApiAccessToken,
    /// Never later than the platform's own idea of the expiry (counted from
    /// the moment the request was sent).
    pub expires_at: SystemTime,
    /// Shoprenter's scopes; empty for Shoptet.
    pub scopes: Vec<String>,
}

/// Why a platform issued no token, in the terms the core acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MintError {
    /// Shoptet: the installation's OAuth access token is no longer valid.
    /// A reinstall may have replaced it, so the core re-reads it once.
    Revoked(Revocation),
    /// The platform's word on the installation: `Uninstalled` or `Suspended`
    /// (the registry learns it).
    Verdict(InstallationStatus),
    /// Shoptet's cap of live tokens, with the platform's `Retry-After` if any.
    CapReached { retry_after: Option<Duration> },
    /// Anything else, as the caller will see it.
    Refused(VendError),
}

impl MintError {
    /// What the caller sees.
    pub fn to_vend_error(&self) -> VendError {
        match self {
            Self::Revoked(_) | Self::Verdict(InstallationStatus::Uninstalled) => {
                VendError::NotInstalled
            }
            Self::Verdict(_) => VendError::AddonSuspended,
            Self::CapReached { retry_after } => VendError::TokenCapReached {
                retry_after: retry_after.unwrap_or(crate::limits::DEFAULT_CAP_RETRY),
            },
            Self::Refused(error) => error.clone(),
        }
    }

    /// What the refusal says about the installation, if anything.
    pub fn verdict(&self) -> Option<InstallationStatus> {
        match self {
            Self::Revoked(_) => Some(InstallationStatus::Uninstalled),
            Self::Verdict(status) => Some(*status),
            _ => None,
        }
    }
}

/// How sure a refusal of the OAuth token is: a vend acts on either, but a
/// lifecycle change asked for by an unsigned event only on the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    /// The platform said so with an error code (`invalid_token`).
    ErrorCode,
    /// A bare 401 (no error code we know): a proxy or an outage can answer
    /// that too.
    StatusOnly,
}

/// A mint in flight: boxed so that the vendor holds any minter behind one
/// pointer (a mint is an upstream round trip; the box costs nothing next to it).
pub type Minting<'a> = Pin<Box<dyn Future<Output = Result<Grant, MintError>> + Send + 'a>>;

/// Mints API tokens on the platforms.
pub trait Minter: Send + Sync {
    /// Whether this platform can be asked at all (Shoptet needs a partner
    /// e-shop configured): a vend for a platform not served is
    /// `not_configured`.
    fn serves(&self, platform: Platform) -> bool;

    /// Shoptet's `getAccessToken` with the installation's OAuth token.
    fn mint_shoptet<'a>(&'a self, oauth: &'a OAuthAccessToken) -> Minting<'a>;

    /// Shoprenter's client-credentials grant for `shop`.
    fn mint_shoprenter<'a>(
        &'a self,
        shop: &'a ShoprenterShopName,
        credentials: &'a ShoprenterCredentials,
    ) -> Minting<'a>;
}
