//! The route table: which path and method go to which handler. The
//! handlers live in `handler` (Shoptet's install, Shoprenter credentials),
//! `webhook`, `shoprenter_app` and `operator`; how an error is answered is
//! `error`'s.

use broker_domain::http::HttpError;
use broker_domain::ids::Platform;
use broker_domain::storage::{
    DeliveryLog, InstallationRegistry, InstallationStore, SignedRedirects, TokenCache,
};
use broker_runtime::faults;
use broker_runtime::metrics::{Dimension, Dimensions, Metric};
use lambda_http::http::{Method, Response};
use lambda_http::{Body, Request, RequestExt};
use tokio::time::Instant;

use crate::caller;
use crate::error::{InstallError, InstallRefusal};
use crate::handler::InstallCallback;

enum Route<'a> {
    ShoptetInstall,
    ShoptetWebhook,
    ShoptetEshopWebhook,
    ShoptetInstallation(&'a str),
    ShoprenterAppInstall,
    ShoprenterAppUninstall,
    ShoprenterCredentials(&'a str),
    ShoprenterInstallation(&'a str),
    Installations,
    Installation(&'a str, &'a str),
}

impl Route<'_> {
    /// Matches on the path's tail, so a stage prefix or a Function URL path
    /// makes no difference. The operator's `/installations/…` routes are
    /// matched first (one shop before the listing), so a shop named
    /// `install` or `installations` is never taken for another route.
    fn of(path: &str) -> Option<Route<'_>> {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        match segments.as_slice() {
            [.., "installations", platform, shop] => Some(Route::Installation(platform, shop)),
            [.., "installations"] => Some(Route::Installations),
            [.., "shoptet", "install"] => Some(Route::ShoptetInstall),
            [.., "shoptet", "webhook"] => Some(Route::ShoptetWebhook),
            [.., "shoptet", "eshop-webhook"] => Some(Route::ShoptetEshopWebhook),
            [.., "shoptet", eshop_id, "installation"] => Some(Route::ShoptetInstallation(eshop_id)),
            [.., "shoprenter", "install"] => Some(Route::ShoprenterAppInstall),
            [.., "shoprenter", "uninstall"] => Some(Route::ShoprenterAppUninstall),
            [.., "shoprenter", shop, "credentials"] => Some(Route::ShoprenterCredentials(shop)),
            [.., "shoprenter", shop, "installation"] => Some(Route::ShoprenterInstallation(shop)),
            _ => None,
        }
    }

    /// The methods the route answers, as a 405's `Allow` header lists them.
    fn allow(&self) -> &'static str {
        match self {
            Self::ShoptetInstall
            | Self::ShoprenterAppInstall
            | Self::ShoprenterAppUninstall
            | Self::Installations => "GET",
            Self::ShoptetWebhook | Self::ShoptetEshopWebhook => "POST",
            Self::ShoptetInstallation(_)
            | Self::ShoprenterCredentials(_)
            | Self::ShoprenterInstallation(_) => "PUT",
            Self::Installation(..) => "GET, DELETE",
        }
    }

    /// The `Operation` of a store failure on the route.
    fn operation(&self) -> &'static str {
        match self {
            Self::ShoptetInstall => "ShoptetInstall",
            Self::ShoptetWebhook => "ShoptetWebhook",
            Self::ShoptetEshopWebhook => "ShoptetEshopWebhook",
            Self::ShoptetInstallation(_) => "ShoptetImport",
            Self::ShoprenterAppInstall => "ShoprenterInstall",
            Self::ShoprenterAppUninstall => "ShoprenterUninstall",
            Self::ShoprenterCredentials(_) => "ShoprenterCredentials",
            Self::ShoprenterInstallation(_) => "ShoprenterImport",
            Self::Installations | Self::Installation(..) => "Registry",
        }
    }

    /// The platform whose merchant installs through the route, if one does:
    /// its failures are `InstallFailures`. An operator's import or
    /// credentials call sees its failure in the answer; no alarm needed.
    fn installs(&self) -> Option<Platform> {
        match self {
            Self::ShoptetInstall => Some(Platform::Shoptet),
            Self::ShoprenterAppInstall => Some(Platform::Shoprenter),
            _ => None,
        }
    }

    /// Everything but the five platform callbacks is the operator's: served
    /// only to a caller the [`OperatorGate`](crate::caller::OperatorGate)
    /// admits.
    fn is_operator(&self) -> bool {
        !matches!(
            self,
            Self::ShoptetInstall
                | Self::ShoptetWebhook
                | Self::ShoptetEshopWebhook
                | Self::ShoprenterAppInstall
                | Self::ShoprenterAppUninstall
        )
    }

    /// Browser routes answer errors as a short HTML page.
    fn is_browser(&self) -> bool {
        matches!(
            self,
            Self::ShoprenterAppInstall | Self::ShoprenterAppUninstall
        )
    }
}

impl<S: InstallationStore, C: TokenCache + SignedRedirects + DeliveryLog, R: InstallationRegistry>
    InstallCallback<S, C, R>
{
    /// Every request gets an answer: the route's, or its error rendered.
    /// An invocation still running near its Lambda deadline counts a
    /// timeout ([`broker_runtime::faults`]).
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let deadline = request
            .lambda_context_ref()
            .and_then(|context| faults::lambda_deadline(context.deadline));
        // Boxed: the answer is a large future, and this keeps it off the
        // caller's stack.
        faults::watch_deadline(self.metrics(), deadline, Box::pin(self.answer(request))).await
    }

    async fn answer(&self, request: Request) -> Response<Body> {
        let started = Instant::now();
        let path = request.uri().path().to_owned();
        let route = Route::of(&path);
        let browser = route.as_ref().is_some_and(Route::is_browser);
        let installs = route.as_ref().and_then(Route::installs);
        let operation = route.as_ref().map(Route::operation);
        let result = self.dispatch(route, &request, started).await;
        let duration_ms = started.elapsed().as_millis() as u64;
        let response = match result {
            Ok(response) => response,
            Err(error) => {
                tracing::warn!(outcome = error.code().as_str(), %error, duration_ms, "request refused");
                if let Some(platform) = installs {
                    self.count_install_refusal(platform, &error);
                }
                if let (InstallError::StoreUnavailable, Some(operation)) = (&error, operation) {
                    let operation = Dimensions::of(Dimension::Operation, operation);
                    self.metrics().event(Metric::StoreErrors, operation);
                }
                error.render(&request, browser)
            }
        };
        self.metrics().flush_if_due();
        response.map(Body::from)
    }

    /// A refused install call: a failed install (pages) only if a
    /// platform started it, else a reject (see [`InstallRefusal`]).
    fn count_install_refusal(&self, platform: Platform, error: &InstallError) {
        let metric = match error.install_refusal() {
            InstallRefusal::NoAttempt => return,
            InstallRefusal::Rejected => Metric::InstallRejects,
            InstallRefusal::Failed => Metric::InstallFailures,
        };
        let dimensions =
            Dimensions::platform(platform).with(Dimension::Code, error.code().as_str());
        self.metrics().event(metric, dimensions);
    }

    async fn dispatch(
        &self,
        route: Option<Route<'_>>,
        request: &Request,
        started: Instant,
    ) -> Result<Response<String>, InstallError> {
        // Before the method, the body or the store: an unadmitted caller
        // learns nothing but 403.
        if route.as_ref().is_some_and(Route::is_operator) {
            if !self.operator_gate().admits(request) {
                return Err(InstallError::Forbidden);
            }
            if let Some(arn) = caller::iam_caller(request) {
                tracing::info!(caller = arn, method = %request.method(), path = request.uri().path(), "operator request");
            }
        }
        match (route, request.method()) {
            (Some(Route::ShoptetInstall), &Method::GET) => {
                self.install_shoptet(request, started).await
            }
            (Some(Route::ShoptetWebhook), &Method::POST) => {
                self.shoptet_webhook(request, started).await
            }
            (Some(Route::ShoptetEshopWebhook), &Method::POST) => {
                self.eshop_webhook(request, started).await
            }
            (Some(Route::ShoptetInstallation(id)), &Method::PUT) => {
                self.import_shoptet(id, request.body()).await
            }
            (Some(Route::ShoprenterAppInstall), &Method::GET) => {
                self.shoprenter_app_install(request, started).await
            }
            (Some(Route::ShoprenterAppUninstall), &Method::GET) => {
                self.shoprenter_app_uninstall(request).await
            }
            (Some(Route::ShoprenterCredentials(shop)), &Method::PUT) => {
                self.save_shoprenter_credentials(shop, request.body()).await
            }
            (Some(Route::ShoprenterInstallation(shop)), &Method::PUT) => {
                self.import_shoprenter(shop).await
            }
            (Some(Route::Installations), &Method::GET) => {
                self.list_installations(request.uri().query()).await
            }
            (Some(Route::Installation(platform, shop)), &Method::GET) => {
                self.show_installation(platform, shop).await
            }
            (Some(Route::Installation(platform, shop)), &Method::DELETE) => {
                self.delete_installation(platform, shop).await
            }
            (Some(route), _) => Err(InstallError::MethodNotAllowed {
                allow: route.allow(),
            }),
            (None, _) => Err(InstallError::NotFound),
        }
    }
}
