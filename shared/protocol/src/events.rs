//! The lifecycle events the broker publishes about installations: one per
//! real change of an installation, and one when minting starts failing for
//! a shop and when it recovers. On EventBridge each is an event with
//! `source` [`SOURCE`], `detail-type` [`EventKind::detail_type`] and the
//! [`InstallationEvent`] as its `detail`; at an HTTPS endpoint the
//! [`InstallationEvent`] is the request body (see `docs/events.md`).
//!
//! No event ever carries a token, a code or a secret.

use serde::{Deserialize, Serialize};

use crate::ids::Platform;

/// The EventBridge `source` of every event the broker publishes.
pub const SOURCE: &str = "shop-token-broker";

/// The version of the event's shape; raised only by a breaking change.
pub const SCHEMA_VERSION: u32 = 1;

/// What happened to the installation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The platform installed the add-on or app (first install, or a
    /// reinstall: see [`InstallationEvent::reinstall`]).
    Installed,
    /// An operator imported an installation that predates the broker.
    Imported,
    /// The platform suspended the add-on in the shop (tokens are refused).
    Suspended,
    /// A suspended installation is live again.
    Resumed,
    /// The installation is gone: the platform confirmed the uninstall.
    Uninstalled,
    /// A shop's own API credentials were replaced (Shoprenter).
    CredentialsChanged,
    /// Minting has failed for the shop several times in a row for a reason
    /// that is not transient; vends fail until it recovers.
    MintingFailing,
    /// The first successful mint after [`EventKind::MintingFailing`].
    MintingRecovered,
}

impl EventKind {
    /// Every kind, in the order of the docs.
    pub const ALL: [EventKind; 8] = [
        EventKind::Installed,
        EventKind::Imported,
        EventKind::Suspended,
        EventKind::Resumed,
        EventKind::Uninstalled,
        EventKind::CredentialsChanged,
        EventKind::MintingFailing,
        EventKind::MintingRecovered,
    ];

    /// The name in JSON, e.g. `credentials_changed`.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::Installed => "installed",
            EventKind::Imported => "imported",
            EventKind::Suspended => "suspended",
            EventKind::Resumed => "resumed",
            EventKind::Uninstalled => "uninstalled",
            EventKind::CredentialsChanged => "credentials_changed",
            EventKind::MintingFailing => "minting_failing",
            EventKind::MintingRecovered => "minting_recovered",
        }
    }

    /// The EventBridge `detail-type`, e.g. `Installation Installed`.
    pub const fn detail_type(self) -> &'static str {
        match self {
            EventKind::Installed => "Installation Installed",
            EventKind::Imported => "Installation Imported",
            EventKind::Suspended => "Installation Suspended",
            EventKind::Resumed => "Installation Resumed",
            EventKind::Uninstalled => "Installation Uninstalled",
            EventKind::CredentialsChanged => "Installation Credentials Changed",
            EventKind::MintingFailing => "Token Minting Failing",
            EventKind::MintingRecovered => "Token Minting Recovered",
        }
    }
}

/// Who or what caused the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventCause {
    /// The platform's install flow (Shoptet's `?code=` exchange).
    PlatformInstall,
    /// A platform webhook (Shoptet's `addon:*`), as confirmed upstream.
    PlatformWebhook,
    /// A redirect the platform signed (Shoprenter's install and uninstall).
    SignedRedirect,
    /// An operator route (IAM): import, credentials, delete.
    Operator,
    /// The broker's own finding while minting (e.g. the platform refused
    /// the installation's token: the uninstall webhook was lost).
    Vendor,
}

/// What the platform returned at install that the add-on needs (Shoptet).
/// `contact_email` is personal data: see `docs/events.md`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShopDetails {
    /// The e-shop's address (`eshopUrl`).
    pub eshop_url: String,
    /// The e-shop's contact e-mail (`contactEmail`), when the platform sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_email: Option<String>,
}

/// Why minting fails, on [`EventKind::MintingFailing`], and how long it
/// failed, on [`EventKind::MintingRecovered`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MintingFailure {
    /// `minting_failing`: the error code vends answered (e.g.
    /// `upstream_rejected`); absent on `minting_recovered`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// How many mints in a row were refused: when the event was written
    /// (`minting_failing`), or before the success (`minting_recovered`).
    pub consecutive_failures: u32,
}

/// One lifecycle event: the EventBridge `detail`, and the HTTPS body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallationEvent {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Unique per event; a redelivery carries the same id (deduplicate on it).
    pub id: String,
    /// What happened.
    pub kind: EventKind,
    /// The shop's platform.
    pub platform: Platform,
    /// The shop: a Shoptet e-shop id or a Shoprenter shop name.
    pub shop: String,
    /// Per shop, strictly increasing with every event of that shop: order a
    /// shop's events by it (gaps are possible, e.g. after a failed write).
    pub sequence: u64,
    /// When the broker committed the change (RFC 3339, UTC, milliseconds).
    pub occurred_at: String,
    /// Who or what caused it.
    pub cause: EventCause,
    /// `installed` only: whether the shop had been installed before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reinstall: Option<bool>,
    /// `installed` (Shoptet): what the platform returned at install.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shop_details: Option<ShopDetails>,
    /// The platform webhook that caused it, e.g. `addon:terminate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_event: Option<String>,
    /// `minting_failing` and `minting_recovered`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minting: Option<MintingFailure>,
}

impl InstallationEvent {
    /// The EventBridge `detail-type` of this event.
    pub fn detail_type(&self) -> &'static str {
        self.kind.detail_type()
    }
}

/// The EventBridge `detail-type` of a forwarded e-shop webhook.
pub const ESHOP_WEBHOOK_DETAIL_TYPE: &str = "Shoptet Webhook";

/// How the broker came by a forwarded e-shop webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryPath {
    /// Shoptet delivered it to the broker's route, signed.
    Live,
    /// The reconciliation found it in the installation's notification
    /// history (failed or not yet delivered) and forwarded it.
    Reconciliation,
}

/// A Shoptet e-shop webhook (`order:create`, `job:finished`, …) the
/// broker received for an installation, verified and forwarded once: the
/// EventBridge `detail` of a `Shoptet Webhook` event, and the HTTPS body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EshopWebhookEvent {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The same for every copy of one notification (a platform retry, a
    /// reconciled copy): deduplicate on it.
    pub id: String,
    /// Always `shoptet`.
    pub platform: Platform,
    /// The e-shop id.
    pub shop: String,
    /// The e-shop event, e.g. `order:create`.
    pub event: String,
    /// The entity the event is about (`eventInstance`), e.g. an order code.
    pub event_instance: String,
    /// When Shoptet created the event (`eventCreated`, Shoptet's form).
    pub event_created: String,
    /// When the broker received it (RFC 3339, UTC, milliseconds).
    pub received_at: String,
    /// Delivered live, or caught up on by the reconciliation.
    pub delivery: DeliveryPath,
    /// The notification's body: byte for byte as Shoptet delivered it
    /// (live), or as its notification history holds it (reconciliation).
    /// With `sendPayload: full` it holds `payload`.
    pub body: String,
}

/// The `detail-type` of a [`WebhookRegistrationEvent`] that registered.
pub const WEBHOOKS_REGISTERED_DETAIL_TYPE: &str = "Shoptet Webhooks Registered";
/// The `detail-type` of a [`WebhookRegistrationEvent`] that failed.
pub const WEBHOOK_REGISTRATION_FAILED_DETAIL_TYPE: &str = "Shoptet Webhooks Registration Failed";

/// The broker registered the configured e-shop webhooks for an
/// installation (something changed: events added or the key renewed), or
/// failed to (`error_code`; `will_retry` says whether it tries again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookRegistrationEvent {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Unique per event.
    pub id: String,
    /// Always `shoptet`.
    pub platform: Platform,
    /// The e-shop id.
    pub shop: String,
    /// When it happened (RFC 3339, UTC, milliseconds).
    pub occurred_at: String,
    /// Events registered now (on success).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registered: Vec<String>,
    /// Whether a new signature key was obtained and stored (on success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_renewed: Option<bool>,
    /// Why it failed (on failure), e.g. `registered_elsewhere`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// On failure: whether the broker tries again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub will_retry: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_reads_back_as_written_and_omits_what_its_kind_lacks() {
        let event = InstallationEvent {
            schema_version: SCHEMA_VERSION,
            id: "0c3d7a52-5b8f-4a59-9a43-2f0f3c1f9a10".into(),
            kind: EventKind::Suspended,
            platform: Platform::Shoptet,
            shop: "222651".into(),
            sequence: 2,
            occurred_at: "2026-12-06T13:00:00.123Z".into(),
            cause: EventCause::PlatformWebhook,
            reinstall: None,
            shop_details: None,
            platform_event: Some("addon:suspend".into()),
            minting: None,
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["kind"], "suspended");
        assert_eq!(json["cause"], "platform_webhook");
        assert!(json.get("reinstall").is_none() && json.get("minting").is_none());
        assert_eq!(
            serde_json::from_value::<InstallationEvent>(json).unwrap(),
            event
        );
    }

    #[test]
    fn every_kind_has_its_own_name_and_detail_type() {
        let names: std::collections::HashSet<_> =
            EventKind::ALL.iter().map(|kind| kind.as_str()).collect();
        let types: std::collections::HashSet<_> = EventKind::ALL
            .iter()
            .map(|kind| kind.detail_type())
            .collect();
        assert_eq!((names.len(), types.len()), (8, 8));
        for kind in EventKind::ALL {
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json, kind.as_str());
        }
    }
}
