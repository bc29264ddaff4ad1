//! What the routes report: how an installation was recorded, which
//! lifecycle event arrived and what became of it. Each is spelled once, by
//! its `as_str`, for logs, metric dimensions and JSON bodies alike.

use broker_domain::http::json_response;
use broker_domain::ids::{Platform, ShopRef};
use broker_domain::model::InstallationStatus;
use broker_platforms::shoptet_webhook::AddonEventKind;
use lambda_http::http::{Response, StatusCode};
use serde::{Serialize, Serializer};

/// How an installation came to be recorded (the `Installs` metric's
/// `Outcome`, the `outcome` of the log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallOutcome {
    /// A Shoptet install of a shop without a stored installation, or a
    /// Shoprenter app install.
    Installed,
    /// A Shoptet install over a stored installation.
    Reinstalled,
    /// An operator's import of an installation that predates the broker.
    Imported,
    /// An operator stored a Shoprenter shop's own credentials.
    CredentialsStored,
}

impl InstallOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Installed => "installed",
            Self::Reinstalled => "reinstalled",
            Self::Imported => "imported",
            Self::CredentialsStored => "credentials_stored",
        }
    }
}

/// A lifecycle event the broker handles (the `LifecycleEvents` metric's
/// `Event`, the `event` of the log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleEvent {
    /// One of Shoptet's add-on system events.
    Shoptet(AddonEventKind),
    /// A Shoptet event this broker does not know (acknowledged, ignored).
    UnknownShoptet,
    /// Shoprenter's signed uninstall redirect.
    ShoprenterAppUninstall,
    /// `DELETE /installations/{platform}/{shop}`.
    OperatorDelete,
}

impl LifecycleEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shoptet(kind) => kind.as_str(),
            Self::UnknownShoptet => "unknown",
            Self::ShoprenterAppUninstall => "app:uninstall",
            Self::OperatorDelete => "operator:delete",
        }
    }
}

impl From<Option<AddonEventKind>> for LifecycleEvent {
    fn from(kind: Option<AddonEventKind>) -> Self {
        kind.map_or(Self::UnknownShoptet, Self::Shoptet)
    }
}

/// What became of one lifecycle event. Every webhook delivery is answered
/// 200 so Shoptet stops retrying; only "cannot know now" (503) asks for a
/// retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOutcome {
    /// Confirmed upstream and applied.
    Processed,
    /// Already applied by an earlier delivery.
    Duplicate,
    /// Not confirmed (forged, replayed, stale), an unknown event, or a shop
    /// the broker does not know.
    Ignored,
}

impl EventOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Processed => "processed",
            Self::Duplicate => "duplicate",
            Self::Ignored => "ignored",
        }
    }

    /// A change to `now` from `previous`: a duplicate when the shop already
    /// had that status.
    pub(crate) fn of_change(previous: Option<InstallationStatus>, now: InstallationStatus) -> Self {
        if previous == Some(now) {
            Self::Duplicate
        } else {
            Self::Processed
        }
    }
}

impl Serialize for EventOutcome {
    fn serialize<Z: Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// What a successful install, import or credentials call answers.
#[derive(Debug, Serialize)]
pub struct Stored {
    pub status: StoredStatus,
    pub platform: Platform,
    pub shop: String,
}

/// The `status` of a [`Stored`] answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredStatus {
    /// An installation (an install or an import).
    Installed,
    /// A Shoprenter shop's own credentials.
    Stored,
}

impl StoredStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Installed => "installed",
            Self::Stored => "stored",
        }
    }
}

impl Serialize for StoredStatus {
    fn serialize<Z: Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl Stored {
    pub(crate) fn response(
        status_code: StatusCode,
        status: StoredStatus,
        shop: &ShopRef,
    ) -> Response<String> {
        json_response(
            status_code,
            &Self {
                status,
                platform: shop.platform(),
                shop: shop.id(),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_spelling_is_the_log_and_metric_spelling() {
        for outcome in [
            EventOutcome::Processed,
            EventOutcome::Duplicate,
            EventOutcome::Ignored,
        ] {
            let json = serde_json::to_string(&outcome).unwrap();
            assert_eq!(json, format!("\"{}\"", outcome.as_str()));
        }
        for status in [StoredStatus::Installed, StoredStatus::Stored] {
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
    }

    #[test]
    fn lifecycle_events_keep_their_documented_names() {
        let names: Vec<&str> = [
            LifecycleEvent::Shoptet(AddonEventKind::Uninstall),
            LifecycleEvent::Shoptet(AddonEventKind::Terminate),
            LifecycleEvent::Shoptet(AddonEventKind::Suspend),
            LifecycleEvent::Shoptet(AddonEventKind::Approve),
            LifecycleEvent::from(None),
            LifecycleEvent::ShoprenterAppUninstall,
            LifecycleEvent::OperatorDelete,
        ]
        .into_iter()
        .map(LifecycleEvent::as_str)
        .collect();
        assert_eq!(
            names,
            [
                "addon:uninstall",
                "addon:terminate",
                "addon:suspend",
                "addon:approve",
                "unknown",
                "app:uninstall",
                "operator:delete"
            ]
        );
    }
}
