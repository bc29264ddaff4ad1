//! The records the broker keeps: what an installation gave us, the
//! credentials a shop's tokens are requested with, and cached API tokens.
//! The protocol clients produce them and the storage ports store them; this
//! module depends on neither.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::ids::ShoptetEshopId;
use crate::secret::{ApiAccessToken, ClientSecret, OAuthAccessToken};

/// What an e-shop's installation of the Shoptet add-on gives us.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShoptetInstallation {
    pub oauth_access_token: OAuthAccessToken,
    pub eshop_id: ShoptetEshopId,
    pub eshop_url: String,
    pub contact_email: Option<String>,
    pub trial: Option<bool>,
}

/// A Shoptet installation as stored, with when it was installed (RFC 3339).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShoptetInstallationRecord {
    #[serde(flatten)]
    pub installation: ShoptetInstallation,
    pub installed_at: String,
}

/// A Shoprenter app's (or a shop's custom API client's) credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShoprenterCredentials {
    pub client_id: String,
    pub client_secret: ClientSecret,
}

/// An API token as cached, with the scopes a Shoprenter JWT grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedToken {
    pub access_token: ApiAccessToken,
    pub expires_at: SystemTime,
    pub scopes: Vec<String>,
}

/// Who is refreshing a shop's token, and until when the claim holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub owner: String,
    pub expires_at: SystemTime,
}

/// Everything the token cache knows about one shop.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheEntry {
    pub token: Option<CachedToken>,
    pub lease: Option<Lease>,
    /// Expiries of the tokens the broker minted for the shop (Shoptet caps
    /// live tokens per installation).
    pub ledger: Vec<SystemTime>,
}
