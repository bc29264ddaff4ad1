//! The install callback's handler: what every route shares (the vendor, its
//! stores, the deadline, the metrics), and two routes of its own. Shoptet's
//! install is answered 200 only once the OAuth access token is stored. The
//! other routes live beside this file (`webhook`, `shoprenter_app`,
//! `operator`); `routes` says which request goes where.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use broker_domain::events::ShopDetails;
use broker_domain::http::from_json_object;
use broker_domain::ids::{ShopRef, ShoprenterShopName};
use broker_domain::lazy_secret::LazySecret;
use broker_domain::model::{
    CachedToken, InstallationStatus, Origin, Registration, ShoprenterCredentials,
    ShoptetInstallationRecord, StatusChange,
};
use broker_domain::secret::{ClientSecret, ExposeSecret, InstallCode, WebhookKey};
use broker_domain::storage::{
    InstallationRegistry, InstallationStore, RecoveryWindow, SaveOutcome, Stores, TokenCache,
};
use broker_platforms::minting::PlatformMinter;
use broker_platforms::shoprenter::ShoprenterClient;
use broker_platforms::shoptet::{AddonCredentials, ShoptetClient};
use broker_runtime::metrics::{Dimension, Dimensions, Metric, Metrics, Service};
use broker_vending::{Candidate, REMEMBERED_SHOPS, TokenVendor};
use lambda_http::Request;
use lambda_http::http::{Response, StatusCode};
use serde::Deserialize;
use tokio::time::{Instant, timeout_at};

use crate::caller::{self, OperatorGate, SourceAllowlist};
use crate::config::{AppEntryUrl, InstallConfig};
use crate::error::{InstallError, SHOPTET_NOT_CONFIGURED};
use crate::outcome::{EventOutcome, InstallOutcome, LifecycleEvent, Stored, StoredStatus};
use broker_domain::bus::EventBus;
use broker_shoptet_webhooks::Receiver;

/// Shoptet documents codes of 255 characters; anything far longer is not one.
const MAX_CODE_LEN: usize = 1024;

/// Secrets the handler needs: given directly (`Some(…).into()`, the local
/// server and tests) or read from Secrets Manager on first use.
#[derive(Debug, Clone, Default)]
pub struct InstallSecrets {
    /// The Shoptet add-on's client secret, if it has one.
    pub shoptet_client_secret: LazySecret<ClientSecret>,
    /// Shoptet's webhook signature key; absent: webhooks are unsigned (and
    /// still confirmed upstream before anything changes).
    pub webhook_key: LazySecret<WebhookKey>,
    /// The Shoprenter app's credentials: the ClientSecret verifies its
    /// redirects, both fetch tokens for installed shops.
    pub shoprenter_app: LazySecret<ShoprenterCredentials>,
}

/// How lifecycle events are handled.
#[derive(Debug, Clone)]
pub(crate) struct Lifecycle {
    pub(crate) webhook_key: LazySecret<WebhookKey>,
    pub(crate) recovery: RecoveryWindow,
    pub(crate) hmac_max_age: Duration,
    pub(crate) app_entry_url: Option<AppEntryUrl>,
}

/// The receiving route's parts: built once, it keeps the keys it read.
pub struct EshopWebhookRoute {
    pub(crate) receiver: Receiver,
    pub(crate) bus: Arc<dyn EventBus>,
}

impl EshopWebhookRoute {
    pub fn new(bus: Arc<dyn EventBus>) -> Self {
        Self {
            receiver: Receiver::new(),
            bus,
        }
    }
}

/// The Shoptet add-on's client and credentials.
struct Addon {
    client: ShoptetClient,
    client_id: String,
    client_secret: LazySecret<ClientSecret>,
    /// `None`: derived from the request (see `ShoptetAddon`).
    redirect_uri: Option<String>,
    install_sources: Option<SourceAllowlist>,
}

/// Built by [`InstallCallback::new`] (or `build_on_aws`); requests go to
/// [`InstallCallback::handle`].
pub struct InstallCallback<S, C, R> {
    /// `None` on a Shoprenter-only stack: Shoptet's routes are `not_configured`.
    shoptet: Option<Addon>,
    /// Confirmations and verifications mint through the vendor's lease and
    /// ledger; it also holds the stores.
    vendor: TokenVendor<S, C, R>,
    lifecycle: Lifecycle,
    /// Platform-facing routes answer within this (Shoptet gives up at 4-5 s).
    deadline: Duration,
    operator_gate: OperatorGate,
    /// `None`: no bus, so e-shop webhooks are not forwarded.
    eshop_webhooks: Option<EshopWebhookRoute>,
}

impl<S: InstallationStore, C: TokenCache, R: InstallationRegistry> InstallCallback<S, C, R> {
    /// The handler over any storage adapters, with its secrets already read.
    pub fn new(config: InstallConfig, secrets: InstallSecrets, stores: Stores<S, C, R>) -> Self {
        let http = config.http.build_client();
        let vendor = TokenVendor::new(
            PlatformMinter::new(
                config
                    .shoptet
                    .as_ref()
                    .map(|addon| ShoptetClient::new(http.clone(), addon.endpoints.clone())),
                ShoprenterClient::new(http.clone(), config.shoprenter_oauth_url),
            ),
            secrets.shoprenter_app,
            stores,
            config.timing,
            REMEMBERED_SHOPS,
        )
        // Installs and events are few: each request writes what it counted,
        // so an instance reaped after one install loses nothing.
        .with_metrics(Arc::new(
            Metrics::to_stdout(Service::InstallCallback, config.metrics_namespace.clone())
                .with_flush_interval(Duration::ZERO),
        ));
        Self {
            shoptet: config.shoptet.map(|addon| Addon {
                client: ShoptetClient::new(http, addon.endpoints),
                client_id: addon.client_id,
                client_secret: secrets.shoptet_client_secret,
                redirect_uri: addon.redirect_uri,
                install_sources: addon.install_sources,
            }),
            vendor,
            lifecycle: Lifecycle {
                webhook_key: secrets.webhook_key,
                recovery: config.uninstall_recovery,
                hmac_max_age: config.shoprenter_hmac_max_age,
                app_entry_url: config.shoprenter_app_entry_url,
            },
            deadline: config.install_deadline,
            operator_gate: OperatorGate::default(),
            eshop_webhooks: None,
        }
    }

    /// Serves `POST /shoptet/eshop-webhook`, forwarding to `bus`.
    pub fn with_eshop_webhooks(self, bus: Arc<dyn EventBus>) -> Self {
        Self {
            eshop_webhooks: Some(EshopWebhookRoute::new(bus)),
            ..self
        }
    }

    pub(crate) fn eshop_webhooks(&self) -> Option<&EshopWebhookRoute> {
        self.eshop_webhooks.as_ref()
    }

    /// Who admits callers to the operator routes; by default the IAM
    /// identity in the event (see [`OperatorGate`]). Only a host that
    /// authorises callers itself (`broker-local`) sets another.
    pub fn with_operator_gate(self, operator_gate: OperatorGate) -> Self {
        Self {
            operator_gate,
            ..self
        }
    }

    /// Metrics to `metrics` instead of stdout (tests read them from a buffer).
    pub fn with_metrics(self, metrics: Arc<Metrics>) -> Self {
        Self {
            vendor: self.vendor.with_metrics(metrics),
            ..self
        }
    }

    /// Installs, lifecycle events, and the vendor's mints and waits.
    pub fn metrics(&self) -> &Arc<Metrics> {
        self.vendor.metrics()
    }

    /// The vending core that confirmations and verifications mint through;
    /// it holds the stores.
    pub fn vendor(&self) -> &TokenVendor<S, C, R> {
        &self.vendor
    }

    pub(crate) fn stores(&self) -> &Stores<S, C, R> {
        self.vendor.stores()
    }

    pub(crate) fn operator_gate(&self) -> OperatorGate {
        self.operator_gate
    }

    pub(crate) fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// Shoptet's OAuth server and API; `not_configured` on a
    /// Shoprenter-only stack.
    pub(crate) fn shoptet(&self) -> Result<&ShoptetClient, InstallError> {
        self.addon().map(|addon| &addon.client)
    }

    fn addon(&self) -> Result<&Addon, InstallError> {
        self.shoptet
            .as_ref()
            .ok_or(InstallError::NotConfigured(SHOPTET_NOT_CONFIGURED))
    }

    /// Platform-facing routes answer within this.
    pub(crate) fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Counts an installation recorded, by how.
    pub(crate) fn installed(&self, shop: &ShopRef, outcome: InstallOutcome) {
        let dimensions =
            Dimensions::platform(shop.platform()).with(Dimension::Outcome, outcome.as_str());
        self.metrics().count(Metric::Installs, dimensions);
    }

    /// Counts a lifecycle event handled, by what became of it.
    pub(crate) fn lifecycle_event(
        &self,
        shop: &ShopRef,
        event: LifecycleEvent,
        outcome: EventOutcome,
    ) {
        let dimensions = Dimensions::platform(shop.platform())
            .with(Dimension::Event, event.as_str())
            .with(Dimension::Outcome, outcome.as_str());
        self.metrics().count(Metric::LifecycleEvents, dimensions);
    }

    pub(crate) async fn install_shoptet(
        &self,
        request: &Request,
        started: Instant,
    ) -> Result<Response<String>, InstallError> {
        let deadline = started + self.deadline;
        let addon = self.addon()?;
        // Before the code is read: a call from elsewhere costs nothing.
        if let Some(sources) = &addon.install_sources
            && !sources.admits(request)
        {
            let source = caller::source_ip(request);
            tracing::warn!(source = ?source, "install call from outside SHOPTET_INSTALL_SOURCE_CIDRS refused; if Shoptet's installs fail, check the list");
            return Err(InstallError::SourceNotAllowed);
        }
        let code = install_code(request.uri().query())?;
        let redirect_uri = match &addon.redirect_uri {
            Some(configured) => configured.clone(),
            None => arrival_url(request)?,
        };
        let credentials = AddonCredentials {
            client_id: addon.client_id.clone(),
            client_secret: timeout_at(deadline, addon.client_secret.get())
                .await
                .map_err(|_| InstallError::StoreUnavailable)??
                .cloned(),
        };
        let exchange = addon
            .client
            .exchange_code(&code, &credentials, &redirect_uri);
        let installation = timeout_at(deadline, exchange)
            .await
            .map_err(|_| InstallError::UpstreamUnavailable)??;
        let eshop_id = installation.eshop_id;
        let shop = ShopRef::Shoptet(eshop_id);
        let record = ShoptetInstallationRecord {
            installation,
            installed_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        };
        let origin = Origin::PlatformInstall(Some(ShopDetails {
            eshop_url: record.installation.eshop_url.clone(),
            contact_email: record.installation.contact_email.clone(),
        }));
        let saved = timeout_at(deadline, self.store_installation(&shop, &record, origin))
            .await
            .map_err(|_| InstallError::StoreUnavailable)??;
        // The new OAuth access token replaces the old one, and API tokens
        // minted with the old one must not be served again.
        self.forget_cached_token(&shop, deadline).await;
        let outcome = match saved {
            SaveOutcome::Created => InstallOutcome::Installed,
            SaveOutcome::Replaced => InstallOutcome::Reinstalled,
        };
        self.installed(&shop, outcome);
        // One log outcome for both; `reinstall` tells them apart.
        tracing::info!(
            platform = "shoptet",
            shop = %eshop_id,
            outcome = InstallOutcome::Installed.as_str(),
            reinstall = matches!(saved, SaveOutcome::Replaced),
            duration_ms = started.elapsed().as_millis() as u64,
            "installation stored"
        );
        Ok(Stored::response(
            StatusCode::OK,
            StoredStatus::Installed,
            &shop,
        ))
    }

    /// Stores the shop's installation (a reinstall restores a secret
    /// scheduled for deletion), then registers it as (re)installed. The
    /// registry goes last because its write commits the `installed` event:
    /// an event must mean the installation is stored. If that write fails,
    /// the install fails too (the platform or the merchant retries it); a
    /// secret the registry still calls uninstalled is never served.
    pub(crate) async fn store_installation(
        &self,
        shop: &ShopRef,
        record: &ShoptetInstallationRecord,
        origin: Origin,
    ) -> Result<SaveOutcome, InstallError> {
        let saved = self
            .stores()
            .installations
            .save_shoptet_installation(record)
            .await?;
        self.stores()
            .registry
            .record(shop, &StatusChange::installed(SystemTime::now(), origin))
            .await?;
        self.vendor.forget_locally(shop);
        Ok(saved)
    }

    pub(crate) async fn save_shoprenter_credentials(
        &self,
        shop: &str,
        body: &[u8],
    ) -> Result<Response<String>, InstallError> {
        let shop: ShoprenterShopName = shop.parse().map_err(|_| {
            InstallError::InvalidRequest("the shop name is not a valid Shoprenter shop name")
        })?;
        let credentials = credentials_body(body)?;
        let shop = ShopRef::Shoprenter(shop);
        // Proof that the credentials work: Shoprenter grants a token with
        // them, which is cached for the first vend.
        self.verify_in_time(&shop, &Candidate::Shoprenter(credentials.clone()))
            .await?;
        let ShopRef::Shoprenter(name) = &shop else {
            unreachable!("parsed as a Shoprenter shop above")
        };
        self.stores()
            .installations
            .save_shoprenter_credentials(name, &credentials)
            .await?;
        self.activate(&shop, Origin::Credentials).await?;
        let outcome = InstallOutcome::CredentialsStored;
        self.installed(&shop, outcome);
        tracing::info!(platform = "shoprenter", shop = %shop.id(), outcome = outcome.as_str(), "credentials stored");
        Ok(Stored::response(
            StatusCode::CREATED,
            StoredStatus::Stored,
            &shop,
        ))
    }

    /// Mints with credentials not yet stored, within the request's deadline
    /// (a lease held elsewhere could otherwise outlast the function).
    pub(crate) async fn verify_in_time(
        &self,
        shop: &ShopRef,
        candidate: &Candidate,
    ) -> Result<CachedToken, InstallError> {
        let token = timeout_at(
            Instant::now() + self.deadline,
            self.vendor.verify(shop, candidate),
        )
        .await
        .map_err(|_| InstallError::UpstreamUnavailable)??;
        Ok(token)
    }

    /// Marks the shop installed now; the registration it replaced.
    pub(crate) async fn activate(
        &self,
        shop: &ShopRef,
        origin: Origin,
    ) -> Result<Option<Registration>, InstallError> {
        let previous = self
            .stores()
            .registry
            .record(shop, &StatusChange::installed(SystemTime::now(), origin))
            .await?;
        Ok(previous)
    }

    /// A confirmed uninstall, wherever it comes from: the registry says
    /// `uninstalled` (vends stop at once), the secret is scheduled for
    /// deletion within the recovery window (never deleted at once), and the
    /// cached token is dropped last, so a vend racing this cannot put one
    /// back that outlives the change. Every step is idempotent, so a retry
    /// after a failure finishes the job. Also answers the status the shop
    /// had, so concurrent deliveries can tell which one changed it.
    pub(crate) async fn retire(
        &self,
        shop: &ShopRef,
        origin: Origin,
    ) -> Result<(Registration, Option<InstallationStatus>), InstallError> {
        let now = SystemTime::now();
        let previous = self
            .stores()
            .registry
            .record(
                shop,
                &StatusChange::to(InstallationStatus::Uninstalled, now, origin),
            )
            .await?;
        self.stores()
            .installations
            .schedule_deletion(shop, self.lifecycle.recovery)
            .await?;
        self.stores().tokens.forget(shop).await?;
        self.vendor.forget_locally(shop);
        tracing::info!(platform = %shop.platform(), shop = %shop.id(), outcome = InstallationStatus::Uninstalled.as_str(), recovery_days = self.lifecycle.recovery.in_days(), "installation retired; secret scheduled for deletion");
        let was = previous.as_ref().map(|previous| previous.status);
        let registration = Registration {
            shop: shop.clone(),
            status: InstallationStatus::Uninstalled,
            installed_at: previous
                .as_ref()
                .map_or(now, |previous| previous.installed_at),
            updated_at: now,
            recheck_at: None,
            sequence: previous.as_ref().map_or(0, |previous| previous.sequence),
            mint_failures: previous.map_or(0, |previous| previous.mint_failures),
        };
        Ok((registration, was))
    }

    /// Best effort: the secret is already stored, so the install succeeds
    /// either way. A stale cached token is replaced when a caller reports it.
    pub(crate) async fn forget_cached_token(&self, shop: &ShopRef, deadline: Instant) {
        match timeout_at(deadline, self.stores().tokens.forget(shop)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(platform = %shop.platform(), shop = %shop.id(), %error, "could not drop the cached API token")
            }
            Err(_) => {
                tracing::warn!(platform = %shop.platform(), shop = %shop.id(), "dropping the cached API token timed out")
            }
        }
    }
}

/// The URL this request arrived at, without its query: API Gateway routes by
/// `Host`, so it names our own API, never a host of the caller's choosing.
fn arrival_url(request: &Request) -> Result<String, InstallError> {
    let host = request
        .headers()
        .get("host")
        .and_then(|host| host.to_str().ok())
        .filter(|host| {
            !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'))
        })
        .ok_or(InstallError::InvalidRequest(
            "no usable Host header to derive the redirect URI from (set SHOPTET_REDIRECT_URI)",
        ))?;
    Ok(format!("https://{host}{}", request.uri().path()))
}

/// `{"client_id": "…", "client_secret": "…"}`, both printable ASCII.
fn credentials_body(body: &[u8]) -> Result<ShoprenterCredentials, InstallError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct CredentialsBody {
        client_id: String,
        client_secret: ClientSecret,
    }

    // serde's message could quote the secret: replace it with our own.
    let body: CredentialsBody = from_json_object(body).ok_or(InstallError::InvalidRequest(
        "the body must be JSON {\"client_id\": \"…\", \"client_secret\": \"…\"}",
    ))?;
    let printable = |s: &str, max: usize| {
        (1..=max).contains(&s.len()) && s.chars().all(|c| c.is_ascii_graphic())
    };
    if !printable(&body.client_id, 256) {
        return Err(InstallError::InvalidRequest(
            "client_id must be 1-256 printable ASCII characters",
        ));
    }
    if !printable(body.client_secret.expose_secret(), 1024) {
        return Err(InstallError::InvalidRequest(
            "client_secret must be 1-1024 printable ASCII characters",
        ));
    }
    Ok(ShoprenterCredentials {
        client_id: body.client_id,
        client_secret: body.client_secret,
    })
}

/// The one `code` query parameter, checked before anything goes upstream.
fn install_code(query: Option<&str>) -> Result<InstallCode, InstallError> {
    let mut codes = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(name, _)| name == "code")
        .map(|(_, value)| value);
    let code = codes.next().ok_or(InstallError::InvalidRequest(
        "the code parameter is missing",
    ))?;
    if codes.next().is_some() {
        return Err(InstallError::InvalidRequest(
            "the code parameter appears more than once",
        ));
    }
    if code.is_empty() {
        return Err(InstallError::InvalidRequest("the code parameter is empty"));
    }
    if code.len() > MAX_CODE_LEN {
        return Err(InstallError::InvalidRequest(
            "the code parameter is too long",
        ));
    }
    // OAuth codes are URL-safe tokens; anything else is not a Shoptet code.
    let url_safe = code
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    if !url_safe {
        return Err(InstallError::InvalidRequest(
            "the code parameter has unexpected characters",
        ));
    }
    Ok(InstallCode::new(code.into_owned()))
}
