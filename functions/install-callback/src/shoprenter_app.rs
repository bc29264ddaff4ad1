//! `GET /shoprenter/install` and `GET /shoprenter/uninstall`: Shoprenter
//! sends the merchant's browser here with a signed query. Browser routes:
//! errors are a short HTML page (JSON when asked for).

use broker_domain::http::HttpError;
use broker_domain::ids::ShopRef;
use broker_domain::model::ShoprenterCredentials;
use broker_domain::storage::{InstallationRegistry, InstallationStore, TokenCache};
use broker_platforms::shoprenter_app::{AppRedirect, RedirectRefused};
use broker_vending::Candidate;
use lambda_http::Request;
use lambda_http::http::{Response, StatusCode, header};
use std::time::SystemTime;
use tokio::time::{Instant, timeout_at};

use crate::error::InstallError;
use crate::handler::InstallCallback;

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
        self.vendor.forget_locally(&shop);
        // One token with the app's credentials proves they work for this
        // shop, and is cached for its first vend. A failure is logged, not
        // shown: the installation itself is recorded.
        let candidate = Candidate::Shoprenter(app);
        let verify = self.vendor.verify(&shop, &candidate);
        match timeout_at(started + self.deadline, verify).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(platform = "shoprenter", shop = %shop.id(), %error, "installed, but no token with the app credentials yet")
            }
            Err(_) => {
                tracing::warn!(platform = "shoprenter", shop = %shop.id(), "installed, but the first token fetch timed out")
            }
        }
        self.installed(&shop, "installed");
        tracing::info!(platform = "shoprenter", shop = %shop.id(), outcome = "installed", "app installed");
        let target = match &self.lifecycle.app_entry_url {
            Some(entry) => Some(entry.for_shop(redirect.shop.as_str())),
            None => redirect.shop_admin_url(),
        };
        Ok(match target {
            Some(target) => found(&target),
            None => page(
                StatusCode::OK,
                "Installed",
                "The app is installed. You can close this page.",
            ),
        })
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
        let outcome = match was {
            Some(broker_domain::model::InstallationStatus::Uninstalled) => "duplicate",
            _ => "processed",
        };
        self.lifecycle_event(&shop, "app:uninstall", outcome);
        Ok(page(
            StatusCode::OK,
            "Uninstalled",
            "The app is uninstalled. You can close this page.",
        ))
    }

    async fn verified_redirect(
        &self,
        request: &Request,
    ) -> Result<(AppRedirect, ShoprenterCredentials), InstallError> {
        let app = self
            .vendor
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
            self.lifecycle.hmac_max_age,
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

/// Whether the caller asked for JSON (`Accept: application/json`).
pub(crate) fn wants_json(request: &Request) -> bool {
    request
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|accept| accept.contains("application/json"))
}

/// An error as a page for a browser; its text is ours, never the request's.
pub(crate) fn error_page(error: &InstallError) -> Response<String> {
    let title = error
        .status()
        .canonical_reason()
        .unwrap_or("Error")
        .to_owned();
    let message = format!("{} ({})", sentence(error), error.code());
    page(error.status(), &title, &message)
}

fn sentence(error: &InstallError) -> &'static str {
    match error {
        InstallError::InvalidSignature => {
            "This link is not signed by Shoprenter, or it has expired. Start again from the shop's admin."
        }
        InstallError::InvalidRequest(_) => "This link is incomplete.",
        InstallError::NotConfigured(_) => "This app is not set up to be installed yet.",
        _ => "Something went wrong. Please try again in a minute.",
    }
}

fn page(status: StatusCode, title: &str, message: &str) -> Response<String> {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\n<body><h1>{title}</h1><p>{message}</p></body></html>\n"
    );
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(html)
        .expect("a static response is valid")
}

/// A redirect to a configured or verified, normalised URL.
fn found(location: &str) -> Response<String> {
    Response::builder()
        .status(StatusCode::FOUND)
        .header(header::LOCATION, location)
        .header(header::CACHE_CONTROL, "no-store")
        .body(String::new())
        .unwrap_or_else(|_| {
            page(
                StatusCode::OK,
                "Installed",
                "The app is installed. You can close this page.",
            )
        })
}
