//! A stand-in for Shoptet and Shoprenter, speaking their documented OAuth and
//! API rules over real HTTP on a loopback port.
//!
//! Every call is counted per endpoint and shop, the APIs enforce the
//! platforms' rate limits and record how close clients came to them (see
//! [API limits](#api-limits)), and faults (server errors, rate limiting,
//! locks, dropped connections, malformed JSON, latency) can be injected. Integration tests start one per test with
//! [`PlatformDouble::start`]; the `platform-double` binary runs one by hand.
//!
//! Paths served (relative to [`PlatformDouble::base_url`]):
//! - Shoptet OAuth server: `/action/ApiOAuthServer/token`,
//!   `/action/ApiOAuthServer/getAccessToken`
//! - Shoptet API: `/api/…` (`GET /api/eshop` answers the e-shop's contact
//!   information; the webhook and job routes are in
//!   [Ordinary webhooks](#ordinary-webhooks); other paths and methods 403
//!   `invalid-token-no-rights`; on every path an expired token 401
//!   `expired-token`, an unknown or revoked one 401 `invalid-token`)
//! - Shoprenter OAuth: `/shoprenter/{shop}/app/token`
//! - Shoprenter API: `/shoprenter-api/{shop}/api/…` (any method with a live
//!   token of that shop: `{"ok":true,"shop":"<shop>","path":"<rest>"}`;
//!   otherwise 401 `{"error":"invalid_token"}`). As Shoprenter does, it
//!   answers JSON only to a request whose `Accept` names `application/json`;
//!   otherwise the same fields as XML (`<response><ok>true</ok>…</response>`,
//!   `Content-Type: application/xml`)
//! - the double's own control API, `/_double/…`: lifecycle events played on
//!   request (see below). Never counted, faulted, limited or delayed.
//!
//! # API limits
//!
//! The API endpoints enforce the platforms' documented limits, and the
//! double records what it saw so tests can assert a client kept to them.
//! Limits are checked on arrival, after the call is counted
//! ([`PlatformDouble::calls`]) and before any injected fault is taken: a
//! refused call leaves pending faults for the next one. Refusals are
//! delayed by [`PlatformDouble::set_latency`] like any answer, and counted
//! by [`PlatformDouble::rate_limited_api_calls`].
//!
//! Shoptet, for a request whose `Shoptet-Access-Token` the double issued
//! (expired and revoked ones included; requests with other tokens are
//! neither limited nor carry the header):
//! - **3 concurrent connections per API token.** A request holds one of its
//!   token's slots from arrival until its answer is produced, the latency
//!   included. One arriving while all 3 are held gets 429 with the API
//!   error envelope, errorCode `too-many-requests`, no `Retry-After`; it
//!   holds no slot. [`PlatformDouble::max_concurrent_api_calls`] is the most
//!   requests ever *attempted* at once on one token of the e-shop, refused
//!   ones included: 3 for a client that keeps to the limit, 4 or more for
//!   one that does not.
//! - **Leaky bucket per e-shop** of [`DoubleConfig::shoptet_bucket_capacity`]
//!   drops, leaking one drop every `1 /`
//!   [`DoubleConfig::shoptet_bucket_drain_per_second`] seconds from when it
//!   last stopped being empty. The cost is counted after the request: every
//!   answer (errors, faults and connection refusals included) adds a drop
//!   when it is produced, except the bucket's own refusals. A request
//!   arriving at a full bucket (level ≥ capacity) gets 429 with the API
//!   error envelope, errorCode `too-many-requests`, and `Retry-After` as an
//!   HTTP-date: the moment the level will be below capacity, rounded up to
//!   the next whole second (requests still in flight may fill it again by
//!   then). Every answer carries `X-RateLimit-Bucket-Filling: <n>/<capacity>`,
//!   `n` the whole number of drops once its own was added (for the
//!   bucket's refusals, the level as it is).
//! - The 50 concurrent connections per IP are not modelled: a test's client
//!   never comes near them.
//!
//! Shoprenter: **[`DoubleConfig::shoprenter_requests_per_second`] requests
//! per shop** within any sliding second of arrivals, whatever the token. A
//! request that would exceed it gets 429 `{"error":"too_many_requests"}`
//! without `Retry-After` (Shoprenter documents none) and does not enter the
//! window. [`PlatformDouble::max_shoprenter_requests_per_second`] is the
//! most accepted requests seen within one second.
//!
//! # Ordinary webhooks
//!
//! The e-shop's own events, registered by the add-on per installation with
//! an API access token of that e-shop (authenticated, counted, limited and
//! faulted like every API call; each route has its own [`Endpoint`]).
//! Errors use the API's envelope (`{"data":null,"errors":[{"errorCode",
//! "message","instance"}],"metadata":{"requestId"}}`); the errorCodes are the
//! double's choice, Shoptet documents only the statuses.
//! - `POST /api/webhooks` `{"data":[{"event","url","sendPayload"?:"full"}]}`
//!   (1 to 50 items) → 201 `{"data":{"webhooks":[{"id","event","url",
//!   "created","updated"}]}}`. All or nothing: one bad item registers none.
//!   400 `invalid-request-data` (body shape, `sendPayload` other than
//!   `full`), 400 `webhook-unknown-event` (unknown or `addon:*` event), 400
//!   `webhook-invalid-url` (not absolute http(s), over 2000 characters, a
//!   port other than 80, 8080, 443, 8443 — except on a loopback host, a
//!   test-only relaxation), 422 `webhook-exists` ("Webhook already exists
//!   for this event": one URL per event per installation, a repeat within
//!   the request included), 409 `webhook-conflict` (`order:update` with
//!   `order:cancel`, `customer:update` with `customer:enableOrders` or
//!   `customer:disableOrders`, counting those already registered).
//! - `GET /api/webhooks` → `{"data":{"webhooks":[…]}}`, the installation's.
//! - `DELETE /api/webhooks/{id}` → 204; 404 `webhook-not-found` for another
//!   installation's or an unknown id.
//! - `POST /api/webhooks/renew-signature-key` → `{"data":{"signatureKey"}}`
//!   (40 lowercase hex characters), a new key every call: the
//!   installation's own, or the add-on's one under
//!   [`DoubleConfig::signature_key_per_addon`]. Until the first renew,
//!   notifications go unsigned.
//! - Delivery ([`PlatformDouble::deliver_webhook`], the control routes
//!   below, a finished job): a notification per registered webhook, body
//!   `{"eshopId","event","eventCreated","eventInstance"}` (plus `payload`, a
//!   small fake order for `order:*`, when registered with `sendPayload:
//!   "full"`), header `Shoptet-Webhook-Signature` = lowercase hex
//!   HMAC-SHA1(body, the key current at that attempt). 4 s to answer 2xx;
//!   otherwise retried, 3 attempts in all,
//!   [`DoubleConfig::webhook_retry_gap`] apart, every one with the same
//!   bytes; then `failed`.
//! - `GET /api/webhooks/notifications?status=new|failed|success&event=…&page=…&itemsPerPage=…`
//!   → `{"data":{"notifications":[{"id","webhookId","webhookUrl","event",
//!   "eventInstance","eventCreated","created","attempts","status","active",
//!   "data","deliveries"}],"paginator":{"totalCount","page","pageCount",
//!   "itemsOnPage","itemsPerPage"}}}`, newest first, the last 7 days.
//!   `status` is `new` while attempts are due (`active: true`), then
//!   `success` or `failed` (the official SDK's fields); `data` is the body
//!   sent, `deliveries` the double's own record of each attempt. 400
//!   `invalid-query-parameter` for another status or a non-positive page.
//! - `POST /api/products/snapshot` starts an asynchronous job → 200
//!   `{"data":{"jobId"}}`; 403 `job-finished-webhook-missing` (nothing
//!   queued) unless `job:finished` is registered. After
//!   [`DoubleConfig::job_duration`] the job is done and `job:finished` is
//!   delivered with the job id as `eventInstance`.
//! - `GET /api/system/jobs/{jobId}` → `{"data":{"job":{"jobId","status":
//!   "pending|completed",…}}}`; the 11th ask before it is done and later
//!   ones 403 `job-detail-limit-exceeded`; 404 `job-not-found`.
//!
//! An installation's webhooks, key, history and jobs end with it
//! (uninstall, or a new install of the e-shop); pending retries stop.
//!
//! # Control API
//!
//! - `POST /_double/shoptet/{eshopId}/{uninstall|terminate|suspend|approve}`:
//!   changes the add-on's state in the e-shop (uninstall and terminate end
//!   the installation like [`PlatformDouble::uninstall`]; suspend and approve
//!   set [`InstallationState::Suspended`] / [`InstallationState::Active`]),
//!   then delivers the matching add-on event (`addon:uninstall`, …) to
//!   [`DoubleConfig::shoptet_webhook_url`], signed with
//!   [`DoubleConfig::shoptet_webhook_key`] in `Shoptet-Webhook-Signature`
//!   (lowercase hex HMAC-SHA1 of the body), and answers
//!   `{"eshopId", "event", "state", "webhook": {"url", "status", "body"}}`
//!   (`"webhook": null` without a URL; 502 with `"webhook": {"url", "error"}`
//!   when the delivery fails). `eventCreated` is the time of the call in
//!   Shoptet's form (`2019-01-08T15:13:39+0000`: whole seconds, here UTC).
//! - `GET /_double/shoptet/{eshopId}`: `{"eshopId", "state",
//!   "oauth_access_token"}`, the installation state `getAccessToken` reports
//!   (`active`, `suspended`, `not_approved`, `not_installed`) and the OAuth
//!   access token currently valid for the e-shop (`null` when none), as
//!   [`PlatformDouble::installation_state`] and
//!   [`PlatformDouble::oauth_access_token`] tell a test in the same process.
//! - `GET /_double/secrets`: `{"secrets": […]}`, every install code, OAuth
//!   access token and API token the double issued, every Shoprenter client
//!   secret and token, and the configured client secret and webhook key: what
//!   a test in another process scans logs for.
//! - `GET /_double/shoprenter/{shop}/{install|uninstall}`: installs
//!   (registers the client of [`DoubleConfig::shoprenter_app`] for the shop)
//!   or uninstalls (removes it and revokes the tokens it got for the shop)
//!   the Shoprenter app, then answers 302 to the app's
//!   [`ShoprenterApp::redirect_uri`] / [`ShoprenterApp::uninstall_uri`] with
//!   `shopname`, `code`, `timestamp` and `hmac` = lowercase hex
//!   HMAC-SHA256(ClientSecret, `shopname=…&code=…&timestamp=…`), as
//!   Shoprenter sends the merchant's browser. 409 without an app.
//! - `POST /_double/shoptet/{eshopId}/api-tokens/expire`: the e-shop's API
//!   access tokens expire now ([`PlatformDouble::expire_api_tokens`]).
//! - `POST /_double/shoptet/{eshopId}/webhooks/{event}` with an optional
//!   `{"eventInstance"?, "wait"?: "first_attempt"|"settled"}`: the event
//!   happens in the e-shop and is delivered to the installation's webhooks
//!   for it (`eventInstance` defaults to a new order code). Answers
//!   `{"eshopId","event","eventInstance","notifications":[…]}` (items as the
//!   notifications API lists them) once every notification made its first
//!   attempt, or with `"wait":"settled"` once each succeeded or failed.
//! - `POST /_double/shoptet/{eshopId}/orders` (same optional body): a
//!   sandbox order is placed: `order:create` with a new order code.
//! - `GET /_double/shoptet/{eshopId}/webhooks`: `{"eshopId","webhooks",
//!   "signatureKey","notifications"}` of the installation.
//! - `GET /_double/calls/{endpoint}/{shop}`: `{"endpoint","shop","calls"}`
//!   ([`PlatformDouble::calls`]; endpoints by [`Endpoint::name`]).
//! - `POST /_double/faults/{endpoint}` `{"fault","times"?,…}`: queues a fault
//!   for that endpoint ([`PlatformDouble::inject`]; `fault` is
//!   `server_error` with `status`, `rate_limited` or
//!   `rate_limited_http_date` with `retry_after_secs`, `locked`, `drop` or
//!   `malformed_json`). For a test driving the double from another process.

#![warn(missing_docs)]

// No two modules use each other, directly or around a loop.
// Lowest first: `config`, `endpoint`, `random`; `limits`; `webhooks`;
// `shoptet_state`, `shoprenter_state` (each platform's rules and data);
// `faults`; `state` (what every handler shares); `delivery` (sends
// webhook notifications); the HTTP handlers `shoptet`, `shoprenter`,
// `control`; `server`; and this file, which nothing below uses.
mod config;
mod control;
mod delivery;
mod endpoint;
mod faults;
mod limits;
mod random;
mod server;
mod shoprenter;
mod shoprenter_state;
mod shoptet;
mod shoptet_state;
mod state;
mod webhooks;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::{DoubleConfig, ShoprenterApp};
pub use endpoint::Endpoint;
pub use faults::Fault;
pub use shoptet_state::InstallationState;
use state::Shared;
pub use webhooks::{Attempt, DeliveryReport, Notification, NotificationStatus, Webhook};

/// A handle to a running double. Clones share the server; it stops when
/// [`PlatformDouble::shutdown`] is called or the last clone is dropped.
#[derive(Clone)]
pub struct PlatformDouble {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    addr: SocketAddr,
    /// Dropping it (with the last handle) also stops the accept loop.
    shutdown: watch::Sender<bool>,
}

impl fmt::Debug for PlatformDouble {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlatformDouble")
            .field("base_url", &self.base_url())
            .finish_non_exhaustive()
    }
}

impl PlatformDouble {
    /// Starts a double with the default configuration on an ephemeral
    /// loopback port.
    pub async fn start() -> PlatformDouble {
        Self::start_with(DoubleConfig::default()).await
    }

    /// Starts a double with `config` on an ephemeral loopback port.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn start_with(config: DoubleConfig) -> PlatformDouble {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        Self::start_on(addr, config)
            .await
            .expect("bind an ephemeral loopback port for the platform double")
    }

    /// Starts a double with `config` on `addr` (port 0 picks a free one).
    pub async fn start_on(
        addr: SocketAddr,
        config: DoubleConfig,
    ) -> std::io::Result<PlatformDouble> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(config));
        let (shutdown, shutdown_rx) = watch::channel(false);
        tokio::spawn(server::accept_loop(
            listener,
            server::router(shared.clone()),
            shutdown_rx,
        ));
        Ok(PlatformDouble {
            inner: Arc::new(Inner {
                shared,
                addr,
                shutdown,
            }),
        })
    }

    /// `http://IP:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    /// The partner e-shop hosting the Shoptet OAuth server; the token and
    /// getAccessToken URLs are `<this>/action/ApiOAuthServer/…`.
    pub fn shoptet_oauth_url(&self) -> String {
        self.base_url()
    }

    /// The Shoptet API base: `<base_url>/api`.
    pub fn shoptet_api_url(&self) -> String {
        format!("{}/api", self.base_url())
    }

    /// The Shoprenter OAuth base: `<base_url>/shoprenter`; the token URL is
    /// `<this>/{shop}/app/token`.
    pub fn shoprenter_oauth_url(&self) -> String {
        format!("{}/shoprenter", self.base_url())
    }

    /// The Shoprenter API base of `shop`: `<base_url>/shoprenter-api/{shop}/api`.
    pub fn shoprenter_api_url(&self, shop: &str) -> String {
        format!("{}/shoprenter-api/{shop}/api", self.base_url())
    }

    /// The control API base: `<base_url>/_double` (see the crate docs).
    pub fn control_url(&self) -> String {
        format!("{}/_double", self.base_url())
    }

    /// The configuration the double was started with.
    pub fn config(&self) -> &DoubleConfig {
        &self.inner.shared.config
    }

    /// Registers a fresh single-use install code (255 chars `[a-z0-9]`) for
    /// the e-shop, valid for [`DoubleConfig::code_lifetime`].
    pub fn issue_install_code(&self, eshop_id: u64) -> String {
        self.inner
            .shared
            .lock()
            .shoptet
            .issue_code(eshop_id, self.config())
    }

    /// The OAuth access token currently valid for the e-shop, if installed.
    pub fn oauth_access_token(&self, eshop_id: u64) -> Option<String> {
        self.inner
            .shared
            .lock()
            .shoptet
            .oauth_access_token(eshop_id)
    }

    /// The installation state `getAccessToken` reports for the e-shop
    /// (`NotInstalled` for an e-shop the double never saw).
    pub fn installation_state(&self, eshop_id: u64) -> InstallationState {
        self.inner
            .shared
            .lock()
            .shoptet
            .installation_state(eshop_id)
    }

    /// Sets the installation state `getAccessToken` reports for the e-shop.
    pub fn set_installation_state(&self, eshop_id: u64, state: InstallationState) {
        self.inner
            .shared
            .lock()
            .shoptet
            .set_installation_state(eshop_id, state);
    }

    /// Uninstalls the add-on: the OAuth access token and the API access
    /// tokens obtained with it become invalid (401), state `NotInstalled`.
    pub fn uninstall(&self, eshop_id: u64) {
        self.inner.shared.lock().shoptet.uninstall(eshop_id);
    }

    /// How many unexpired, unrevoked API access tokens the e-shop holds.
    pub fn live_api_tokens(&self, eshop_id: u64) -> usize {
        self.inner.shared.lock().shoptet.live_api_tokens(eshop_id)
    }

    /// Makes all of the e-shop's API access tokens expire now; the API then
    /// answers `expired-token` for them.
    pub fn expire_api_tokens(&self, eshop_id: u64) {
        self.inner.shared.lock().shoptet.expire_api_tokens(eshop_id);
    }

    /// Registers Shoprenter client credentials for `shop`, granting `scopes`.
    /// A shop may have several clients (platform app, custom API client).
    pub fn register_shoprenter_client(
        &self,
        shop: &str,
        client_id: &str,
        client_secret: &str,
        scopes: &[&str],
    ) {
        self.inner
            .shared
            .lock()
            .shoprenter
            .register_client(shop, client_id, client_secret, scopes);
    }

    /// Makes every Shoprenter access token issued for `shop` expire now; the
    /// API then answers 401 `invalid_token` for them.
    pub fn expire_shoprenter_tokens(&self, shop: &str) {
        self.inner.shared.lock().shoprenter.expire_tokens(shop);
    }

    /// The last Shoprenter access token issued for `shop` (expired or not).
    pub fn last_shoprenter_token(&self, shop: &str) -> Option<String> {
        self.inner.shared.lock().shoprenter.last_token(shop)
    }

    /// Calls that reached `endpoint` for `shop` (eshopId in decimal, or the
    /// Shoprenter shop name; `"unknown"` when not attributable), including
    /// rejected, rate-limited and faulted ones.
    pub fn calls(&self, endpoint: Endpoint, shop: &str) -> u64 {
        let state = self.inner.shared.lock();
        state
            .counters
            .get(&(endpoint, shop.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// Calls that reached `endpoint`, over all shops.
    pub fn calls_to(&self, endpoint: Endpoint) -> u64 {
        let state = self.inner.shared.lock();
        state
            .counters
            .iter()
            .filter(|((e, _), _)| *e == endpoint)
            .map(|(_, n)| n)
            .sum()
    }

    /// Calls that reached any endpoint.
    pub fn total_calls(&self) -> u64 {
        self.inner.shared.lock().counters.values().sum()
    }

    /// The most Shoptet API requests ever attempted at once on any one API
    /// token of the e-shop, refused ones included (see the crate docs): at
    /// most 3 for a client keeping to Shoptet's limit. 0 if none arrived.
    pub fn max_concurrent_api_calls(&self, eshop_id: u64) -> usize {
        self.inner.shared.lock().limits.max_concurrent(eshop_id)
    }

    /// The most Shoprenter API requests to `shop` the double accepted within
    /// any one second (refused ones are not in the window). 0 if none.
    pub fn max_shoprenter_requests_per_second(&self, shop: &str) -> usize {
        self.inner.shared.lock().limits.max_per_second(shop)
    }

    /// How many 429s `endpoint` answered `shop` (labelled as in
    /// [`PlatformDouble::calls`]) from the double's own API limits: Shoptet's
    /// connections per token and leaky bucket (against the endpoint the
    /// refused request was for), Shoprenter's requests per second. Injected faults are not counted; other endpoints have none.
    pub fn rate_limited_api_calls(&self, endpoint: Endpoint, shop: &str) -> u64 {
        self.inner.shared.lock().limits.refusals(endpoint, shop)
    }

    /// Sets every counter back to zero, and forgets the observed maxima and
    /// refusals. The limits themselves keep their state (requests in
    /// flight, bucket levels, recent arrivals).
    pub fn reset_counters(&self) {
        let mut state = self.inner.shared.lock();
        state.counters.clear();
        state.limits.reset_observations();
    }

    /// Delays every response by `latency` (after counting, before answering,
    /// faulted and rate-limited responses included). A Shoptet API request
    /// holds its token's connection slot throughout.
    pub fn set_latency(&self, latency: Duration) {
        self.inner.shared.lock().latency = latency;
    }

    /// Makes the next `times` calls to `endpoint` (or to any endpoint if
    /// `None`) get `fault` instead of normal processing. Faults queue FIFO.
    pub fn inject(&self, endpoint: Option<Endpoint>, fault: Fault, times: u32) {
        self.inner.shared.lock().faults.push(endpoint, fault, times);
    }

    /// Forgets every pending fault.
    pub fn clear_faults(&self) {
        self.inner.shared.lock().faults.clear();
    }

    /// The event happens in the e-shop: a notification goes to every
    /// webhook of its installation registered for `event` (see the crate
    /// docs). Returns once each succeeded or used up its attempts, so with
    /// a failing receiver it takes twice [`DoubleConfig::webhook_retry_gap`].
    /// An empty report when nothing is registered for the event.
    pub async fn deliver_webhook(
        &self,
        eshop_id: u64,
        event: &str,
        event_instance: &str,
    ) -> DeliveryReport {
        delivery::deliver(
            &self.inner.shared,
            eshop_id,
            event,
            event_instance,
            delivery::Wait::Settled,
        )
        .await
    }

    /// A sandbox order is placed: [`PlatformDouble::deliver_webhook`] of
    /// `order:create` with a new order code as `eventInstance`.
    pub async fn place_order(&self, eshop_id: u64) -> DeliveryReport {
        let code = control::new_order_code(SystemTime::now());
        self.deliver_webhook(eshop_id, "order:create", &code).await
    }

    /// The webhooks the add-on registered in the e-shop, oldest first.
    pub fn webhooks(&self, eshop_id: u64) -> Vec<Webhook> {
        self.inner.shared.lock().shoptet.webhooks.list(eshop_id)
    }

    /// The key the e-shop's notifications are signed with now (the
    /// add-on's one under [`DoubleConfig::signature_key_per_addon`]);
    /// `None` until `renew-signature-key` made one.
    pub fn webhook_signature_key(&self, eshop_id: u64) -> Option<String> {
        self.inner
            .shared
            .lock()
            .shoptet
            .webhooks
            .key(eshop_id, self.config().signature_key_per_addon)
    }

    /// The e-shop's notification history of the last 7 days, oldest first,
    /// every attempt included.
    pub fn webhook_notifications(&self, eshop_id: u64) -> Vec<Notification> {
        self.inner
            .shared
            .lock()
            .shoptet
            .webhooks
            .history(eshop_id, Instant::now())
    }

    /// How many delivery attempts the e-shop's notifications made so far.
    pub fn webhook_delivery_attempts(&self, eshop_id: u64) -> usize {
        self.webhook_notifications(eshop_id)
            .iter()
            .map(|n| n.attempts.len())
            .sum()
    }

    /// Stops accepting connections. Requests in flight still complete.
    pub fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }
}
