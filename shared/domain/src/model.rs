//! The records the broker keeps: what an installation gave us, the
//! credentials a shop's tokens are requested with, and cached API tokens.
//! The protocol clients produce them and the storage ports store them; this
//! module depends on neither.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::ids::{ShopRef, ShoptetEshopId};
use crate::secret::{ApiAccessToken, ClientSecret, OAuthAccessToken};
use shop_token_protocol::events::ShopDetails;

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

/// Where an installation stands, as the platform last confirmed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstallationStatus {
    Active,
    Suspended,
    Uninstalled,
}

impl InstallationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Uninstalled => "uninstalled",
        }
    }
}

impl std::str::FromStr for InstallationStatus {
    type Err = &'static str;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "active" => Ok(Self::Active),
            "suspended" => Ok(Self::Suspended),
            "uninstalled" => Ok(Self::Uninstalled),
            _ => Err("the status is `active`, `suspended` or `uninstalled`"),
        }
    }
}

impl std::fmt::Display for InstallationStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One shop's entry in the installation registry: no secret, so listing
/// installations never touches the secret store. Times have millisecond
/// precision in every adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub shop: ShopRef,
    pub status: InstallationStatus,
    /// When the shop last (re)installed.
    pub installed_at: SystemTime,
    pub updated_at: SystemTime,
    /// A suspended shop: not asked upstream again before this.
    pub recheck_at: Option<SystemTime>,
    /// The sequence number of the shop's last lifecycle event (0: none yet).
    pub sequence: u64,
    /// Mints refused in a row for a reason that is not transient (reset by
    /// a successful mint); see [`crate::events::FAILING_AFTER`].
    pub mint_failures: u32,
}

/// What caused a status change: the event it produces says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The platform's install flow (Shoptet's code exchange), with what the
    /// platform returned that the add-on needs.
    PlatformInstall(Option<ShopDetails>),
    /// A redirect the platform signed (Shoprenter's install and uninstall).
    SignedRedirect,
    /// A platform webhook (Shoptet's `addon:*`), confirmed upstream.
    PlatformWebhook(&'static str),
    /// An operator imported an installation that predates the broker.
    Import,
    /// An operator stored a shop's own API credentials (Shoprenter).
    Credentials,
    /// Any other operator route (a delete).
    Operator,
    /// The broker's own finding while minting.
    Vendor,
}

/// A confirmed change of a shop's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    pub status: InstallationStatus,
    pub at: SystemTime,
    /// A (re)install: `installed_at` becomes `at`. Otherwise `installed_at`
    /// is kept (or set to `at` for a shop the registry did not know).
    pub installed: bool,
    /// Stored as given (a suspension's first re-check); `None` clears it.
    pub recheck_at: Option<SystemTime>,
    /// What caused it.
    pub origin: Origin,
}

impl StatusChange {
    /// A new installation, or a reinstall.
    pub fn installed(at: SystemTime, origin: Origin) -> Self {
        Self {
            status: InstallationStatus::Active,
            at,
            installed: true,
            recheck_at: None,
            origin,
        }
    }

    pub fn to(status: InstallationStatus, at: SystemTime, origin: Origin) -> Self {
        Self {
            status,
            at,
            installed: false,
            recheck_at: None,
            origin,
        }
    }
}

/// A one-way digest (SHA-256) of a signed redirect's signature: what the
/// broker remembers of a redirect it accepted. The signature itself is
/// never stored or logged; the digest names the redirect without being one.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SignatureDigest([u8; 32]);

impl SignatureDigest {
    pub fn new(digest: [u8; 32]) -> Self {
        Self(digest)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, as the table adapters store it.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(text: &str) -> Option<Self> {
        let mut digest = [0u8; 32];
        hex::decode_to_slice(text, &mut digest).ok()?;
        Some(Self(digest))
    }
}

impl std::fmt::Debug for SignatureDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SignatureDigest({})", self.to_hex())
    }
}

/// A signed lifecycle redirect the broker accepted for a shop (Shoprenter's
/// install and uninstall): the platform's signed time and the digest of its
/// signature. No route: the same signed query is the same redirect on either.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedRedirect {
    /// The redirect's own signed `timestamp` (whole seconds).
    pub signed_at: SystemTime,
    pub digest: SignatureDigest,
    /// When the backend may forget it: once its timestamp is outside any
    /// acceptance window, so a redirect it orders can no longer verify.
    pub expires_at: SystemTime,
}

/// Names one e-shop webhook notification without holding it: a digest of
/// the fields Shoptet repeats on every attempt (`eshopId`, `event`,
/// `eventInstance`, `eventCreated`; Shoptet sends no notification id).
/// The delivery log keys on it, so a retry, a reconciled copy and a live
/// delivery of one notification are one.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeliveryFingerprint([u8; 32]);

impl DeliveryFingerprint {
    pub fn new(digest: [u8; 32]) -> Self {
        Self(digest)
    }

    /// Lowercase hex, as the adapters store it.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Debug for DeliveryFingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeliveryFingerprint({})", self.to_hex())
    }
}
