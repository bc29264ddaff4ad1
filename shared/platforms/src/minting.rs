//! The platforms behind the vending core's minting port, and what their
//! failures mean to a caller.

use broker_vending::{Grant, MintError, Minter, Minting, Revocation, VendError};

use crate::ids::{Platform, ShoprenterShopName};
use crate::model::{InstallationStatus, ShoprenterCredentials};
use crate::secret::OAuthAccessToken;
use crate::shoprenter::{ShoprenterClient, ShoprenterError};
use crate::shoptet::{ShoptetClient, ShoptetError};
use crate::upstream::UpstreamFailure;

use crate::limits::DEFAULT_RATE_LIMIT_RETRY;

/// Both platforms' token endpoints.
pub struct PlatformMinter {
    /// `None` when no partner e-shop is configured: no Shoptet shop is served.
    shoptet: Option<ShoptetClient>,
    shoprenter: ShoprenterClient,
}

impl PlatformMinter {
    pub fn new(shoptet: Option<ShoptetClient>, shoprenter: ShoprenterClient) -> Self {
        Self {
            shoptet,
            shoprenter,
        }
    }
}

impl Minter for PlatformMinter {
    fn serves(&self, platform: Platform) -> bool {
        match platform {
            Platform::Shoptet => self.shoptet.is_some(),
            Platform::Shoprenter => true,
        }
    }

    fn mint_shoptet<'a>(&'a self, oauth: &'a OAuthAccessToken) -> Minting<'a> {
        Box::pin(async move {
            let client = self
                .shoptet
                .as_ref()
                .ok_or(MintError::Refused(VendError::NotConfigured))?;
            let grant = client.mint_api_token(oauth).await?;
            Ok(Grant {
                access_token: grant.access_token,
                expires_at: grant.expires_at,
                scopes: Vec::new(),
            })
        })
    }

    fn mint_shoprenter<'a>(
        &'a self,
        shop: &'a ShoprenterShopName,
        credentials: &'a ShoprenterCredentials,
    ) -> Minting<'a> {
        Box::pin(async move {
            let token = self
                .shoprenter
                .request_token(shop, credentials)
                .await
                .map_err(|error| MintError::Refused(error.into()))?;
            Ok(Grant {
                access_token: token.access_token,
                expires_at: token.expires_at,
                scopes: token.scopes,
            })
        })
    }
}

/// What Shoptet's refusal of `getAccessToken` means to the core.
impl From<ShoptetError> for MintError {
    fn from(error: ShoptetError) -> Self {
        match error {
            ShoptetError::InstallationRevoked => Self::Revoked(Revocation::ErrorCode),
            ShoptetError::UnexplainedUnauthorized => Self::Revoked(Revocation::StatusOnly),
            ShoptetError::AddonNotInstalled => Self::Verdict(InstallationStatus::Uninstalled),
            ShoptetError::AddonSuspended | ShoptetError::AddonNotApproved => {
                Self::Verdict(InstallationStatus::Suspended)
            }
            ShoptetError::MaximumTokensReached { retry_after } => Self::CapReached { retry_after },
            error => Self::Refused(error.into()),
        }
    }
}

/// What every platform's plain failures mean to a caller.
impl From<UpstreamFailure> for VendError {
    fn from(failure: UpstreamFailure) -> Self {
        match failure {
            UpstreamFailure::RateLimited { retry_after } => Self::RateLimited {
                retry_after: retry_after.unwrap_or(DEFAULT_RATE_LIMIT_RETRY),
            },
            failure if failure.is_transient() => Self::UpstreamUnavailable,
            failure => Self::UpstreamRejected {
                upstream_code: failure.upstream_code().to_owned(),
            },
        }
    }
}

impl From<ShoptetError> for VendError {
    fn from(error: ShoptetError) -> Self {
        match error {
            ShoptetError::InstallationRevoked
            | ShoptetError::UnexplainedUnauthorized
            | ShoptetError::AddonNotInstalled => Self::NotInstalled,
            ShoptetError::AddonSuspended | ShoptetError::AddonNotApproved => Self::AddonSuspended,
            ShoptetError::Upstream(failure) => failure.into(),
            error => Self::UpstreamRejected {
                upstream_code: error.upstream_code().to_owned(),
            },
        }
    }
}

impl From<ShoprenterError> for VendError {
    fn from(error: ShoprenterError) -> Self {
        match error {
            ShoprenterError::Upstream(failure) => failure.into(),
            error => Self::UpstreamRejected {
                upstream_code: error.upstream_code().to_owned(),
            },
        }
    }
}
