//! Lifecycle events: which change of a shop's registration is an event, and
//! what it says. Every registry adapter commits a registration and its
//! event in one atomic write (the event is part of the registration's
//! record), so a committed change always has its event and an uncommitted
//! one never does. Delivering them is the publisher's job (the DynamoDB
//! registry's stream; the SQLite and memory adapters' outbox).

use std::time::SystemTime;

pub use shop_token_protocol::events::*;

use crate::http::ErrorCode;
use crate::ids::ShopRef;
use crate::model::{InstallationStatus, Origin, Registration, StatusChange};

/// After this many non-transient refusals in a row, a shop's minting is
/// `minting_failing` (one event); its next successful mint is
/// `minting_recovered`. Three: one refusal can be a platform's bad moment,
/// three in a row (each a separate vend, each after the cache missed) is a
/// state the add-on must hear about.
pub const FAILING_AFTER: u32 = 3;

/// What a vend's mint came to, as the registry counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MintOutcome {
    /// A token was minted.
    Minted,
    /// The platform refused for a reason that is not transient (the
    /// caller decides which are).
    Refused(ErrorCode),
}

/// A registration as a change leaves it, and the event the change is (if
/// it is one); `None` when there is nothing to write: a repeat of the
/// shop's state (a duplicate delivery) would record nothing but a new
/// `updated_at`, and skipping it keeps repeats racing each other from
/// contending for the item. Pure: every adapter calls it inside its atomic
/// write.
pub fn apply_change(
    shop: &ShopRef,
    previous: Option<&Registration>,
    change: &StatusChange,
) -> Option<(Registration, Option<InstallationEvent>)> {
    let installed_at = match previous {
        Some(previous) if !change.installed => previous.installed_at,
        _ => change.at,
    };
    let kind = event_kind(previous, change);
    let sequence = previous.map_or(0, |previous| previous.sequence);
    let next = Registration {
        shop: shop.clone(),
        status: change.status,
        installed_at,
        updated_at: change.at,
        recheck_at: change.recheck_at,
        sequence: if kind.is_some() {
            sequence + 1
        } else {
            sequence
        },
        // A reinstall starts afresh (new credentials); otherwise the count
        // stands (a status change says nothing about minting).
        mint_failures: match previous {
            Some(previous) if !change.installed => previous.mint_failures,
            _ => 0,
        },
    };
    if kind.is_none() && is_repeat(previous, &next) {
        return None;
    }
    let event = kind.map(|(kind, reinstall)| {
        let (cause, platform_event) = cause_of(&change.origin);
        let shop_details = match &change.origin {
            Origin::PlatformInstall(details) if kind == EventKind::Installed => details.clone(),
            _ => None,
        };
        InstallationEvent {
            reinstall,
            shop_details,
            platform_event: platform_event.map(str::to_owned),
            ..event(&next, kind, cause, change.at)
        }
    });
    Some((next, event))
}

/// Whether `next` differs from `previous` in nothing but `updated_at`.
fn is_repeat(previous: Option<&Registration>, next: &Registration) -> bool {
    previous.is_some_and(|previous| {
        Registration {
            updated_at: next.updated_at,
            ..previous.clone()
        } == *next
    })
}

/// A registration after a mint's outcome is counted, and the event it is,
/// if any; `None` when nothing needs writing (a success after successes).
pub fn apply_mint(
    previous: &Registration,
    outcome: &MintOutcome,
    at: SystemTime,
) -> Option<(Registration, Option<InstallationEvent>)> {
    let mut next = previous.clone();
    let (kind, minting) = match outcome {
        MintOutcome::Minted if previous.mint_failures == 0 => return None,
        MintOutcome::Minted => {
            next.mint_failures = 0;
            // Below the threshold nothing was announced, so nothing recovers.
            if previous.mint_failures < FAILING_AFTER {
                return Some((next, None));
            }
            let minting = MintingFailure {
                error_code: None,
                consecutive_failures: previous.mint_failures,
            };
            (EventKind::MintingRecovered, minting)
        }
        MintOutcome::Refused(code) => {
            next.mint_failures = previous.mint_failures.saturating_add(1);
            // Announced once, when the count reaches the threshold.
            if next.mint_failures != FAILING_AFTER {
                return Some((next, None));
            }
            let minting = MintingFailure {
                error_code: Some(code.as_str().to_owned()),
                consecutive_failures: next.mint_failures,
            };
            (EventKind::MintingFailing, minting)
        }
    };
    next.sequence += 1;
    let event = InstallationEvent {
        minting: Some(minting),
        ..event(&next, kind, EventCause::Vendor, at)
    };
    Some((next, Some(event)))
}

/// Which event a change is: `None` for a repeat of the shop's status.
fn event_kind(
    previous: Option<&Registration>,
    change: &StatusChange,
) -> Option<(EventKind, Option<bool>)> {
    let was = previous.map(|previous| previous.status);
    if change.installed {
        return Some(match (&change.origin, was) {
            (Origin::Import, _) => (EventKind::Imported, None),
            (
                Origin::Credentials,
                Some(InstallationStatus::Active | InstallationStatus::Suspended),
            ) => (EventKind::CredentialsChanged, None),
            _ => (EventKind::Installed, Some(previous.is_some())),
        });
    }
    if was == Some(change.status) {
        return None;
    }
    Some(match change.status {
        InstallationStatus::Active => (EventKind::Resumed, None),
        InstallationStatus::Suspended => (EventKind::Suspended, None),
        InstallationStatus::Uninstalled => (EventKind::Uninstalled, None),
    })
}

fn cause_of(origin: &Origin) -> (EventCause, Option<&'static str>) {
    match origin {
        Origin::PlatformInstall(_) => (EventCause::PlatformInstall, None),
        Origin::SignedRedirect => (EventCause::SignedRedirect, None),
        Origin::PlatformWebhook(name) => (EventCause::PlatformWebhook, Some(name)),
        Origin::Import | Origin::Credentials | Origin::Operator => (EventCause::Operator, None),
        Origin::Vendor => (EventCause::Vendor, None),
    }
}

fn event(
    registration: &Registration,
    kind: EventKind,
    cause: EventCause,
    at: SystemTime,
) -> InstallationEvent {
    InstallationEvent {
        schema_version: SCHEMA_VERSION,
        id: uuid::Uuid::new_v4().to_string(),
        kind,
        platform: registration.shop.platform(),
        shop: registration.shop.id(),
        sequence: registration.sequence,
        occurred_at: humantime::format_rfc3339_millis(at).to_string(),
        cause,
        reinstall: None,
        shop_details: None,
        platform_event: None,
        minting: None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::ids::ShoptetEshopId;

    fn shop() -> ShopRef {
        ShopRef::Shoptet(ShoptetEshopId::new(222651).unwrap())
    }

    fn at(second: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000 + second)
    }

    fn after(
        previous: Option<&Registration>,
        change: StatusChange,
    ) -> (Registration, Option<InstallationEvent>) {
        apply_change(&shop(), previous, &change).expect("a change to write")
    }

    #[test]
    fn an_install_then_every_real_change_is_one_event_numbered_in_order() {
        let details = ShopDetails {
            eshop_url: "https://shop.example".into(),
            contact_email: Some("owner@shop.example".into()),
        };
        let (installed, event) = after(
            None,
            StatusChange::installed(at(0), Origin::PlatformInstall(Some(details.clone()))),
        );
        let event = event.unwrap();
        assert_eq!(
            (event.kind, event.sequence, event.reinstall, event.cause),
            (
                EventKind::Installed,
                1,
                Some(false),
                EventCause::PlatformInstall
            )
        );
        assert_eq!(event.shop_details, Some(details));
        assert_eq!(event.occurred_at, "2027-01-15T08:00:00.000Z");

        let suspend = StatusChange::to(
            InstallationStatus::Suspended,
            at(1),
            Origin::PlatformWebhook("addon:suspend"),
        );
        let (suspended, event) = after(Some(&installed), suspend.clone());
        let event = event.unwrap();
        assert_eq!((event.kind, event.sequence), (EventKind::Suspended, 2));
        assert_eq!(event.platform_event.as_deref(), Some("addon:suspend"));
        assert!(event.shop_details.is_none());

        // The same suspension again changes nothing: nothing to write.
        assert_eq!(apply_change(&shop(), Some(&suspended), &suspend), None);
        // A later suspension with a new re-check is written, as no event.
        let (again, none) = after(
            Some(&suspended),
            StatusChange {
                recheck_at: Some(at(9)),
                ..suspend
            },
        );
        assert_eq!((none, again.sequence), (None, 2));

        let (resumed, event) = after(
            Some(&again),
            StatusChange::to(InstallationStatus::Active, at(2), Origin::Vendor),
        );
        assert_eq!(
            event.map(|e| (e.kind, e.sequence, e.cause)),
            Some((EventKind::Resumed, 3, EventCause::Vendor))
        );
        let (gone, event) = after(
            Some(&resumed),
            StatusChange::to(
                InstallationStatus::Uninstalled,
                at(3),
                Origin::SignedRedirect,
            ),
        );
        assert_eq!(event.map(|e| e.kind), Some(EventKind::Uninstalled));
        let (_, event) = after(
            Some(&gone),
            StatusChange::installed(at(4), Origin::PlatformInstall(None)),
        );
        let event = event.unwrap();
        assert_eq!(
            (event.kind, event.sequence, event.reinstall),
            (EventKind::Installed, 5, Some(true))
        );
    }

    #[test]
    fn operators_import_and_credentials_name_their_own_kinds() {
        let (imported, event) = after(None, StatusChange::installed(at(0), Origin::Import));
        assert_eq!(
            event.map(|e| (e.kind, e.cause)),
            Some((EventKind::Imported, EventCause::Operator))
        );
        let (_, event) = after(
            Some(&imported),
            StatusChange::installed(at(1), Origin::Credentials),
        );
        assert_eq!(event.map(|e| e.kind), Some(EventKind::CredentialsChanged));
        // Credentials for a shop never installed install it.
        let (_, event) = after(None, StatusChange::installed(at(1), Origin::Credentials));
        assert_eq!(
            event.map(|e| (e.kind, e.reinstall)),
            Some((EventKind::Installed, Some(false)))
        );
    }

    #[test]
    fn minting_fails_once_at_the_threshold_and_recovers_once() {
        let (mut registration, _) =
            after(None, StatusChange::installed(at(0), Origin::SignedRedirect));
        let refused = MintOutcome::Refused(ErrorCode::UpstreamRejected);
        let mut events = Vec::new();
        for n in 1..=FAILING_AFTER + 2 {
            let (next, event) = apply_mint(&registration, &refused, at(u64::from(n))).unwrap();
            assert_eq!(next.mint_failures, n);
            events.extend(event);
            registration = next;
        }
        assert_eq!(events.len(), 1, "{events:?}");
        let failing = &events[0];
        assert_eq!(
            (failing.kind, failing.sequence),
            (EventKind::MintingFailing, 2)
        );
        assert_eq!(
            failing.minting,
            Some(MintingFailure {
                error_code: Some("upstream_rejected".into()),
                consecutive_failures: FAILING_AFTER
            })
        );
        let (recovered, event) = apply_mint(&registration, &MintOutcome::Minted, at(9)).unwrap();
        let event = event.unwrap();
        assert_eq!(
            (event.kind, event.sequence),
            (EventKind::MintingRecovered, 3)
        );
        assert_eq!(
            event.minting.unwrap().consecutive_failures,
            FAILING_AFTER + 2
        );
        assert_eq!(recovered.mint_failures, 0);
        // Successes after successes need no write at all.
        assert_eq!(apply_mint(&recovered, &MintOutcome::Minted, at(10)), None);
    }

    #[test]
    fn refusals_below_the_threshold_then_a_success_announce_nothing() {
        let (registration, _) = after(None, StatusChange::installed(at(0), Origin::Import));
        let refused = MintOutcome::Refused(ErrorCode::UpstreamRejected);
        let (once, event) = apply_mint(&registration, &refused, at(1)).unwrap();
        assert_eq!((event, once.mint_failures), (None, 1));
        let (reset, event) = apply_mint(&once, &MintOutcome::Minted, at(2)).unwrap();
        assert_eq!((event, reset.mint_failures, reset.sequence), (None, 0, 1));
    }
}
