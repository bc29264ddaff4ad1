//! `GET /shoprenter/install` and `GET /shoprenter/uninstall`: Shoprenter
//! sends the merchant's browser here with a signed query. Browser routes:
//! answers and errors are short HTML pages (`browser`; JSON when asked for).

use broker_domain::ids::ShopRef;
use broker_domain::model::{InstallationStatus, ShoprenterCredentials};
use broker_domain::storage::{InstallationRegistry, InstallationStore, TokenCache};
use broker_platforms::shoprenter_app::{AppRedirect, RedirectRefused};
use broker_vending::Candidate;
use lambda_http::Request;
use lambda_http::http::Response;
use std::time::SystemTime;
use tokio::time::{Instant, timeout_at};

use crate::browser;
use crate::error::InstallError;
use crate::handler::InstallCallback;
use crate::outcome::{EventOutcome, InstallOutcome, LifecycleEvent};

impl<S: InstallationStore, C: TokenCache, R: InstallationRegistry> InstallCallback<S, C, R> {
    pub(crate) async fn shoprenter_app_install(
        &self,
        request: &Request,
        started: Instant,
    ) -> Result<Response<String>, InstallError> {
        let (redirect, app) = self.verified_redirect(request).await?;
        let shop = ShopRef::Shoprenter(redirect.shop.clone());
        // The signed redirect is Shoprenter's own word: the shop is installed.
        self.activate(&shop).await?;
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
        let target = match &self.lifecycle().app_entry_url {
            Some(entry) => Some(entry.for_shop(redirect.shop.as_str())),
            None => redirect.shop_admin_url(),
        };
        Ok(browser::installed(target.as_deref()))
    }

    pub(crate) async fn shoprenter_app_uninstall(
        &self,
        request: &Request,
    ) -> Result<Response<String>, InstallError> {
        let (redirect, _) = self.verified_redirect(request).await?;
        let shop = ShopRef::Shoprenter(redirect.shop);
        // A shop's own credentials secret, if it has one, is scheduled for
        // deletion with the same recovery window.
        let (_, was) = self.retire(&shop).await?;
        let outcome = EventOutcome::of_change(was, InstallationStatus::Uninstalled);
        self.lifecycle_event(&shop, LifecycleEvent::ShoprenterAppUninstall, outcome);
        Ok(browser::uninstalled())
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
