//! Registering the configured events for one installation and keeping its
//! signature key: list what the installation has, register what is
//! missing, renew the key when asked (or when none is kept), store it.
//! Idempotent: run again, it registers nothing twice.

use broker_domain::ids::ShoptetEshopId;
use broker_domain::storage::{InstallationRegistry, InstallationStore, TokenCache};
use broker_platforms::shoptet::ShoptetClient;
use broker_platforms::shoptet_eshop_webhooks::{EshopEvent, Registration, Subscription};
use broker_vending::TokenVendor;

use crate::failure::WebhookFailure;

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
