//! What callers of the vending core ask and what they get back.

use std::time::Duration;

use crate::ids::ShopRef;
use crate::model::{CachedToken, ShoprenterCredentials};
use crate::secret::{ApiAccessToken, OAuthAccessToken};

#[derive(Debug, Clone)]
pub struct VendRequest {
    pub shop: ShopRef,
    /// The least remaining life the caller needs (the refresh margin applies anyway).
    pub min_ttl: Option<Duration>,
    /// A token the platform just refused: never serve it again.
    pub stale_token: Option<ApiAccessToken>,
}

/// Where a vended token came from, for logs, metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    L1,
    L2,
    Minted,
}

impl Source {
    /// The one spelling of a source: the `Vends` metric's `Source`
    /// dimension (documented, on the dashboard), the `source` of the
    /// vendor's log line, and the bench's reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::L1 => "L1",
            Source::L2 => "L2",
            Source::Minted => "Minted",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Vended {
    pub token: CachedToken,
    pub source: Source,
}

/// What the platform says about an installation, asked through the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmation {
    /// A token was issued (or one issued after the event is cached).
    Live,
    Suspended,
    Uninstalled,
    /// We hold no installation for the shop: nothing to ask with.
    Unknown,
    /// Not asked, or the answer does not settle it for this event: nothing
    /// may change on it.
    Inconclusive(Doubt),
}

/// Whether the event that asks was verified as the platform's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance {
    /// Signed with the configured key and verified: the platform's word.
    Signed,
    /// No key configured: anyone may have sent it.
    Unsigned,
}

/// Why a confirmation settled nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Doubt {
    /// Unsigned: a token was minted for the shop within
    /// [`crate::CONFIRMATION_MINT_INTERVAL`], so no confirmation mints now.
    MintedRecently,
    /// A mint now would eat into the slots of Shoptet's cap kept for
    /// consumers ([`crate::UNSIGNED_CONFIRMATION_LIVE_LIMIT`]; signed: the
    /// last free one).
    ConsumerReserve,
    /// Unsigned: the platform refused the OAuth token with a bare 401.
    UnexplainedRefusal,
    /// Unsigned: the platform itself refused to issue more tokens.
    CapReached,
}

impl Doubt {
    /// For logs and metric dimensions.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MintedRecently => "minted_recently",
            Self::ConsumerReserve => "consumer_reserve",
            Self::UnexplainedRefusal => "unexplained_refusal",
            Self::CapReached => "cap_reached",
        }
    }
}

/// Credentials to prove by minting with them, before they are stored.
#[derive(Debug, Clone)]
pub enum Candidate {
    ShoptetOAuth(OAuthAccessToken),
    Shoprenter(ShoprenterCredentials),
}
