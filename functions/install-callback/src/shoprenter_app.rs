//! `GET /shoprenter/install` and `GET /shoprenter/uninstall`: Shoprenter
//! sends the merchant's browser here with a signed query. Browser routes:
//! answers and errors are short HTML pages (`browser`; JSON when asked for).
//!
//! Install and uninstall are signed alike, so a signed query is acted on
//! once, on whichever route it arrives first, and only if it is signed
//! later than the last one acted on for the shop ([`SignedRedirects`]): a
//! replayed install cannot uninstall, a replayed uninstall cannot
//! reinstall, an uninstall signed before the shop's install is ignored,
//! and a replay mints nothing. A repeat answers the merchant's reload with
//! the page of the shop's current state when it is the state the redirect
//! asked for, else `RedirectUsed`.
//!
//! Shoprenter documents no way to ask whether an app is still installed in
//! a shop (no status endpoint; whether its client-credentials token
//! endpoint refuses an uninstalled shop is not documented), so an
//! uninstall is not confirmed upstream: the signature, its timestamp and
//! this ordering are all there is.

use broker_domain::ids::ShopRef;
use broker_domain::model::{AcceptedRedirect, InstallationStatus, Origin, ShoprenterCredentials};
use broker_domain::storage::{
    InstallationRegistry, InstallationStore, RedirectAcceptance, SignedRedirects, TokenCache,
};
use broker_platforms::shoprenter_app::{AppRedirect, RedirectRefused};
use broker_vending::Candidate;
use lambda_http::Request;
use lambda_http::http::Response;
use std::time::{Duration, SystemTime};
use tokio::time::{Instant, timeout_at};

use crate::browser;
use crate::error::InstallError;
use crate::handler::InstallCallback;
use crate::outcome::{EventOutcome, InstallOutcome, LifecycleEvent};

/// How long an accepted redirect is remembered at least: the template's cap
/// on `ShoprenterHmacMaxAgeSeconds`, so that raising the window later
/// cannot revive a redirect whose record has gone.
const REMEMBERED_AT_LEAST: Duration = Duration::from_secs(3600);

impl<S: InstallationStore, C: TokenCache + SignedRedirects, R: InstallationRegistry>
    InstallCallback<S, C, R>
{
    pub(crate) async fn shoprenter_app_install(
        &self,
        request: &Request,
        started: Instant,
    ) -> Result<Response<String>, InstallError> {
        let (redirect, app) = self.verified_redirect(request).await?;
        let shop = ShopRef::Shoprenter(redirect.shop.clone());
        let target = match &self.lifecycle().app_entry_url {
            Some(entry) => Some(entry.for_shop(redirect.shop.as_str())),
            None => redirect.shop_admin_url(),
        };
        let (accepted, previous) = match self.accept_once(&shop, &redirect).await? {
            RedirectAcceptance::Accepted { previous } => (self.remembered(&redirect), previous),
            RedirectAcceptance::Repeat | RedirectAcceptance::Outdated => {
                // A reload of the install page: nothing is done again, no
                // token is fetched; the merchant still gets to the app if
                // the shop is installed.
                tracing::info!(platform = "shoprenter", shop = %shop.id(), "a signed redirect already used (or overtaken) sent to install: nothing done");
                return match self.status_of(&shop).await? {
                    Some(InstallationStatus::Active) => Ok(browser::installed(target.as_deref())),
                    _ => Err(InstallError::RedirectUsed),
                };
            }
        };
        // The signed redirect is Shoprenter's own word: the shop is installed.
        if let Err(error) = self.activate(&shop, Origin::SignedRedirect).await {
            self.withdraw(&shop, &accepted, previous.as_ref()).await;
            return Err(error);
        }
        self.vendor().forget_locally(&shop);
        // One token with the app's credentials proves they work for this
        // shop, and is cached for its first vend. A failure is logged, not
        // shown: the installation itself is recorded.
        let candidate = Candidate::Shoprenter(app);
        let verify = self.vendor().verify(&shop, &candidate);
        match timeout_at(started + self.deadline(), verify).await {
            Ok(Ok(_token)) => {}
            Ok(Err(error)) => {
                tracing::warn!(platform = "shoprenter", shop = %shop.id(), %error, "installed, but no token with the app credentials yet")
            }
            Err(_) => {
                tracing::warn!(platform = "shoprenter", shop = %shop.id(), "installed, but the first token fetch timed out")
            }
        }
        let outcome = InstallOutcome::Installed;
        self.installed(&shop, outcome);
        tracing::info!(platform = "shoprenter", shop = %shop.id(), outcome = outcome.as_str(), "app installed");
        Ok(browser::installed(target.as_deref()))
    }

    pub(crate) async fn shoprenter_app_uninstall(
        &self,
        request: &Request,
    ) -> Result<Response<String>, InstallError> {
        let (redirect, _) = self.verified_redirect(request).await?;
        let shop = ShopRef::Shoprenter(redirect.shop.clone());
        let (accepted, previous) = match self.accept_once(&shop, &redirect).await? {
            RedirectAcceptance::Accepted { previous } => (self.remembered(&redirect), previous),
            // An install's query replayed here, the same uninstall again, or
            // one signed before the shop's latest (re)install: nothing
            // changes. A reload of the uninstall page still says so.
            RedirectAcceptance::Repeat | RedirectAcceptance::Outdated => {
                self.lifecycle_event(
                    &shop,
                    LifecycleEvent::ShoprenterAppUninstall,
                    EventOutcome::Ignored,
                );
                return match self.status_of(&shop).await? {
                    Some(InstallationStatus::Uninstalled) => Ok(browser::uninstalled()),
                    _ => Err(InstallError::RedirectUsed),
                };
            }
        };
        // A shop's own credentials secret, if it has one, is scheduled for
        // deletion with the same recovery window.
        let (_, was) = match self.retire(&shop, Origin::SignedRedirect).await {
            Ok(retired) => retired,
            Err(error) => {
                self.withdraw(&shop, &accepted, previous.as_ref()).await;
                return Err(error);
            }
        };
        let outcome = EventOutcome::of_change(was, InstallationStatus::Uninstalled);
        self.lifecycle_event(&shop, LifecycleEvent::ShoprenterAppUninstall, outcome);
        Ok(browser::uninstalled())
    }

    /// What is remembered of an accepted redirect, and until when: past
    /// the end of its acceptance window (and never shorter than
    /// [`REMEMBERED_AT_LEAST`]).
    fn remembered(&self, redirect: &AppRedirect) -> AcceptedRedirect {
        AcceptedRedirect {
            signed_at: redirect.signed_at,
            digest: redirect.signature,
            expires_at: redirect.signed_at + self.lifecycle().hmac_max_age.max(REMEMBERED_AT_LEAST),
        }
    }

    async fn accept_once(
        &self,
        shop: &ShopRef,
        redirect: &AppRedirect,
    ) -> Result<RedirectAcceptance, InstallError> {
        let offered = self.remembered(redirect);
        Ok(self.stores().tokens.accept_once(shop, &offered).await?)
    }

    /// The action on an accepted redirect failed: forget the acceptance, so
    /// a retry of the same redirect is acted on. If even that fails, the
    /// merchant starts again from the shop's admin (a new signed redirect).
    async fn withdraw(
        &self,
        shop: &ShopRef,
        accepted: &AcceptedRedirect,
        previous: Option<&AcceptedRedirect>,
    ) {
        if let Err(error) = self
            .stores()
            .tokens
            .withdraw(shop, accepted, previous)
            .await
        {
            broker_domain::storage::log_failure(&error);
        }
    }

    async fn status_of(&self, shop: &ShopRef) -> Result<Option<InstallationStatus>, InstallError> {
        Ok(self
            .stores()
            .registry
            .registration(shop)
            .await?
            .map(|registration| registration.status))
    }

    async fn verified_redirect(
        &self,
        request: &Request,
    ) -> Result<(AppRedirect, ShoprenterCredentials), InstallError> {
        let app = self
            .vendor()
            .shoprenter_app_credentials()
            .await?
            .cloned()
            .ok_or(InstallError::NotConfigured(
                "no Shoprenter app is configured (SHOPRENTER_CLIENT_ID, SHOPRENTER_CLIENT_SECRET_ID)",
            ))?;
        let redirect = AppRedirect::verify(
            request.uri().query().unwrap_or_default(),
            &app.client_secret,
            SystemTime::now(),
            self.lifecycle().hmac_max_age,
        )
        .map_err(|refused| match refused {
            RedirectRefused::Malformed(problem) => InstallError::InvalidRequest(problem),
            RedirectRefused::BadSignature | RedirectRefused::Stale => {
                InstallError::InvalidSignature
            }
        })?;
        Ok((redirect, app))
    }
}
