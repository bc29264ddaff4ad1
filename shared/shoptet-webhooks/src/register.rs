//! Registering the configured events for one installation and keeping its
//! signature key: list what the installation has, register what is
//! missing, renew the key when asked (or when none is kept), store it.
//! Idempotent: run again, it registers nothing twice.

use broker_domain::http::HttpError;
use broker_domain::ids::ShoptetEshopId;
use broker_domain::storage::{InstallationRegistry, InstallationStore, StoreError, TokenCache};
use broker_platforms::shoptet::{ShoptetClient, ShoptetError};
use broker_platforms::shoptet_eshop_webhooks::{EshopEvent, Registration, Subscription};
use broker_vending::{TokenVendor, VendError};

/// Whether to ask Shoptet for a new signature key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRenewal {
    /// An install, a reinstall or an import: whatever key is kept belongs
    /// to an earlier installation (or to the add-on's code before the
    /// broker), and cannot be read back from Shoptet.
    Always,
    /// A re-registration: keep the key unless none is kept (renewing would
    /// fail every delivery already signed with the old one).
    IfMissing,
}

/// What a registration did (or, in a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// Events registered now (to be registered, in a dry run).
    pub added: Vec<EshopEvent>,
    /// Configured events the installation had already.
    pub present: usize,
    /// Whether a new key was (would be) obtained and stored.
    pub key_renewed: bool,
}

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

/// The add-on's subscription and where Shoptet delivers it.
pub struct Registrar {
    subscription: Subscription,
    /// The receiving route's public URL.
    url: String,
    client: ShoptetClient,
}

impl Registrar {
    pub fn new(subscription: Subscription, url: String, client: ShoptetClient) -> Self {
        Self {
            subscription,
            url,
            client,
        }
    }

    pub fn subscription(&self) -> &Subscription {
        &self.subscription
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The configured events the installation lacks, and how many it has
    /// at our URL.
    async fn missing(
        &self,
        token: &broker_domain::secret::ApiAccessToken,
    ) -> Result<(Vec<EshopEvent>, usize), WebhookFailure> {
        let existing = self.client.list_webhooks(token).await?;
        let mut missing = Vec::new();
        let mut present = 0;
        for event in self.subscription.events() {
            match existing.iter().find(|w| w.event == event.as_str()) {
                Some(webhook) if webhook.url == self.url => present += 1,
                Some(_) => return Err(WebhookFailure::RegisteredElsewhere(event.as_str())),
                None => missing.push(*event),
            }
        }
        Ok((missing, present))
    }

    /// Registers what the installation lacks and keeps its key; with
    /// `dry_run`, reads only (one token, one listing) and says what it
    /// would do.
    pub async fn register<S, C, R>(
        &self,
        vendor: &TokenVendor<S, C, R>,
        eshop_id: ShoptetEshopId,
        renewal: KeyRenewal,
        dry_run: bool,
    ) -> Result<Registered, WebhookFailure>
    where
        S: InstallationStore,
        C: TokenCache,
        R: InstallationRegistry,
    {
        crate::token::with_token(vendor, eshop_id, |token| async move {
            let token = &token;
            let (mut added, mut present) = self.missing(token).await?;
            let store = &vendor.stores().installations;
            let key_renewed = match renewal {
                KeyRenewal::Always => true,
                KeyRenewal::IfMissing => store.load_signature_key(eshop_id).await?.is_none(),
            };
            if dry_run {
                return Ok(Registered {
                    added,
                    present,
                    key_renewed,
                });
            }
            // The key first: Shoptet signs a notification when it sends it, so
            // a key kept before the first webhook exists verifies them all.
            if key_renewed {
                let key = self.client.renew_signature_key(token).await?;
                store.save_signature_key(eshop_id, &key).await?;
            }
            // Twice at most: a 422 means a concurrent registration got there
            // first (all or nothing: none of ours was registered), so what is
            // still missing after it is registered once more.
            for attempt in 0..2 {
                if added.is_empty() {
                    break;
                }
                match self
                    .client
                    .register_webhooks(token, &added, &self.url, self.subscription.full_payload())
                    .await?
                {
                    Registration::Registered => break,
                    Registration::AlreadyExists if attempt == 0 => {
                        let (still_missing, now_present) = self.missing(token).await?;
                        added = still_missing;
                        present = now_present;
                    }
                    Registration::AlreadyExists => {
                        return Err(WebhookFailure::Shoptet("webhook-exists".into()));
                    }
                    Registration::Conflict => return Err(WebhookFailure::Conflict),
                }
            }
            Ok(Registered {
                added,
                present,
                key_renewed,
            })
        })
        .await
    }
}
