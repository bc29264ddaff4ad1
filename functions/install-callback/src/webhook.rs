//! `POST /shoptet/webhook`: Shoptet's add-on system events. Nothing changes
//! on the body's word: the OAuth server confirms the state first, through
//! the vendor's lease and ledger (whose budget bounds what an unsigned
//! event may mint).
//!
//! Without a signature key anyone can send events, so every well-formed
//! one gets the same answer, `{"status":"received"}`, whatever became of
//! it: sequential eshopIds must not tell which shops installed the add-on,
//! nor their state. The real outcome still goes to the log line and the
//! `LifecycleEvents` metric, for the operator. Signed, verified deliveries
//! get the detailed outcome.

use std::time::SystemTime;

use broker_domain::http::json_response;
use broker_domain::ids::ShopRef;
use broker_domain::model::{InstallationStatus, Origin, StatusChange};
use broker_domain::storage::{InstallationRegistry, InstallationStore, TokenCache};
use broker_platforms::shoptet_webhook::{self, AddonEvent, AddonEventKind, SIGNATURE_HEADER};
use broker_vending::{Confirmation, Provenance};
use lambda_http::Request;
use lambda_http::http::{Response, StatusCode};
use serde::Serialize;
use tokio::time::{Instant, timeout_at};

use crate::error::InstallError;
use crate::handler::InstallCallback;
use crate::outcome::{EventOutcome, LifecycleEvent};

/// The body of a 200: the outcome for a verified sender, one fixed word
/// for anyone else.
#[derive(Serialize)]
#[serde(untagged)]
enum Answer {
    Verified { status: EventOutcome },
    Unverified { status: &'static str },
}

impl Answer {
    fn to(provenance: Provenance, outcome: EventOutcome) -> Self {
        match provenance {
            Provenance::Signed => Self::Verified { status: outcome },
            Provenance::Unsigned => Self::Unverified { status: "received" },
        }
    }
}

impl<S: InstallationStore, C: TokenCache, R: InstallationRegistry> InstallCallback<S, C, R> {
    pub(crate) async fn shoptet_webhook(
        &self,
        request: &Request,
        started: Instant,
    ) -> Result<Response<String>, InstallError> {
        // Without the add-on no event can be confirmed upstream.
        self.shoptet()?;
        let body: &[u8] = request.body();
        // Size first: an oversized body costs neither a secret read nor an HMAC.
        if body.len() > shoptet_webhook::MAX_BODY {
            return Err(InstallError::InvalidRequest(
                "the body is too large for an event",
            ));
        }
        let provenance = match self.lifecycle().webhook_key.get().await? {
            Some(key) => {
                let signature = request
                    .headers()
                    .get(SIGNATURE_HEADER)
                    .map(|value| value.as_bytes())
                    .unwrap_or_default();
                if !shoptet_webhook::signature_matches(key, body, signature) {
                    return Err(InstallError::InvalidSignature);
                }
                Provenance::Signed
            }
            None => Provenance::Unsigned,
        };
        let now = SystemTime::now();
        let event = AddonEvent::parse(body, now).map_err(|_| {
            InstallError::InvalidRequest(
                "the body must be a Shoptet add-on event {\"eshopId\", \"event\", \"eventCreated\", \"eventInstance\"}",
            )
        })?;
        let shop = ShopRef::Shoptet(event.eshop_id);
        let outcome = match event.kind {
            None => EventOutcome::Ignored,
            Some(kind) => {
                let created = event.created.unwrap_or(now);
                timeout_at(
                    started + self.deadline(),
                    self.apply(&shop, kind, created, now, provenance),
                )
                .await
                .map_err(|_| InstallError::UpstreamUnavailable)??
            }
        };
        let kind = LifecycleEvent::from(event.kind);
        self.lifecycle_event(&shop, kind, outcome);
        tracing::info!(
            platform = "shoptet",
            shop = %event.eshop_id,
            event = kind.as_str(),
            outcome = outcome.as_str(),
            ?provenance,
            duration_ms = started.elapsed().as_millis() as u64,
            "add-on event handled"
        );
        Ok(json_response(
            StatusCode::OK,
            &Answer::to(provenance, outcome),
        ))
    }

    async fn apply(
        &self,
        shop: &ShopRef,
        kind: AddonEventKind,
        created: SystemTime,
        received: SystemTime,
        provenance: Provenance,
    ) -> Result<EventOutcome, InstallError> {
        use AddonEventKind::{Approve, Suspend, Terminate, Uninstall};
        let confirmation = self
            .vendor()
            .confirm(shop, created, received, provenance)
            .await?;
        let registry = &self.stores().registry;
        let now = SystemTime::now();
        let origin = Origin::PlatformWebhook(kind.as_str());
        let outcome = match (kind, confirmation) {
            (Uninstall | Terminate, Confirmation::Uninstalled) => {
                let (_, was) = self.retire(shop, origin).await?;
                EventOutcome::of_change(was, InstallationStatus::Uninstalled)
            }
            // No installation left to ask with: an earlier delivery retired it.
            (Uninstall | Terminate, Confirmation::Unknown) => {
                let registration = registry.registration(shop).await?;
                match registration.map(|r| r.status) {
                    Some(InstallationStatus::Uninstalled) => EventOutcome::Duplicate,
                    _ => EventOutcome::Ignored,
                }
            }
            // Shoptet's pages disagree on `addon:terminate` (final, or a
            // pause like a suspension: *unconfirmed*): the OAuth server's
            // answer decides which it was.
            (Suspend | Terminate, Confirmation::Suspended) => {
                let change = StatusChange {
                    recheck_at: Some(now + self.vendor().timing().suspended_recheck),
                    ..StatusChange::to(InstallationStatus::Suspended, now, origin)
                };
                let previous = registry.record(shop, &change).await?;
                self.stores().tokens.forget(shop).await?;
                self.vendor().forget_locally(shop);
                EventOutcome::of_change(previous.map(|r| r.status), InstallationStatus::Suspended)
            }
            (Approve, Confirmation::Live) => {
                let change = StatusChange::to(InstallationStatus::Active, now, origin);
                let previous = registry.record(shop, &change).await?;
                EventOutcome::of_change(previous.map(|r| r.status), InstallationStatus::Active)
            }
            (_, confirmation) => {
                tracing::info!(platform = "shoptet", shop = %shop.id(), event = kind.as_str(), upstream = ?confirmation, "the platform does not confirm the event; nothing changed");
                EventOutcome::Ignored
            }
        };
        Ok(outcome)
    }
}
