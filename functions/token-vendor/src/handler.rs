//! The vendor's two front doors: HTTP (API Gateway v1/v2, Function URL, the
//! local server) and direct invocation. Both answer the same JSON.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use broker_domain::http::{HttpError, from_json_object, json_response};
use broker_domain::ids::ShopRef;
use broker_domain::lazy_secret::LazySecret;
use broker_domain::model::ShoprenterCredentials;
use broker_domain::secret::{ApiAccessToken, ExposeSecret};
use broker_domain::storage::{InstallationRegistry, InstallationStore, Stores, TokenCache};
use broker_platforms::minting::PlatformMinter;
use broker_platforms::shoprenter::{ShoprenterApiUrl, ShoprenterClient};
use broker_platforms::shoptet::{ShoptetClient, ShoptetConfig};
use broker_runtime::faults;
use broker_runtime::metrics::{Dimension, Dimensions, Metric, Metrics, Service};
use broker_vending::{Source, TokenVendor, VendError, VendRequest, Vended};
use lambda_http::http::{Method, Response, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt};
// The optional body of `POST /tokens/{platform}/{shop}` and a direct
// invocation's payload: the protocol's one request type.
use shop_token_protocol::request::VendRequest as WireRequest;
use tokio::time::Instant;

use crate::config::VendorConfig;

/// Where the caller sends the token: API bases per platform.
#[derive(Debug, Clone)]
pub struct ApiBases {
    /// Without a trailing slash.
    pub shoptet: String,
    pub shoprenter: ShoprenterApiUrl,
}

/// A vended token as HTTP and direct invocation both answer it: the
/// protocol's answer, which consumers (`shop-token-client`) read with the
/// same type. Its `Debug` never shows the token.
pub use shop_token_protocol::answer::TokenResponse;

/// Built by [`VendHandler::new`] (or `build_on_aws`); requests go to
/// [`VendHandler::handle`].
pub struct VendHandler<S, C, R> {
    vendor: TokenVendor<S, C, R>,
    api_bases: ApiBases,
}

impl<S: InstallationStore, C: TokenCache, R: InstallationRegistry> VendHandler<S, C, R> {
    /// The handler over any storage adapters. The Shoprenter app credentials
    /// are given (`Option`) or read on first use ([`LazySecret`]).
    pub fn new(
        config: VendorConfig,
        shoprenter_app_credentials: impl Into<LazySecret<ShoprenterCredentials>>,
        stores: Stores<S, C, R>,
    ) -> Self {
        let http = config.http.build_client();
        let api_bases = ApiBases {
            shoptet: config
                .shoptet_api_url
                .as_str()
                .trim_end_matches('/')
                .to_owned(),
            shoprenter: config.shoprenter_api_url,
        };
        let shoptet = config.shoptet_oauth_url.map(|oauth_url| {
            let api_url = config.shoptet_api_url;
            ShoptetClient::new(http.clone(), ShoptetConfig { oauth_url, api_url })
        });
        let shoprenter = ShoprenterClient::new(http, config.shoprenter_oauth_url);
        let vendor = TokenVendor::new(
            PlatformMinter::new(shoptet, shoprenter),
            shoprenter_app_credentials.into(),
            stores,
            config.timing,
            config.remembered_shops,
        )
        .with_metrics(Arc::new(Metrics::to_stdout(
            Service::TokenVendor,
            config.metrics_namespace,
        )));
        Self { vendor, api_bases }
    }

    /// Metrics to `metrics` instead of stdout (tests read them from a buffer).
    pub fn with_metrics(self, metrics: Arc<Metrics>) -> Self {
        Self {
            vendor: self.vendor.with_metrics(metrics),
            ..self
        }
    }

    /// The vends, errors, mints and waits this instance has counted.
    pub fn metrics(&self) -> &Arc<Metrics> {
        self.vendor.metrics()
    }

    /// The vending core behind both front doors.
    pub fn vendor(&self) -> &TokenVendor<S, C, R> {
        &self.vendor
    }

    /// Where the answers send the caller.
    pub fn api_bases(&self) -> &ApiBases {
        &self.api_bases
    }

    /// HTTP requests always get a response (errors as JSON bodies); direct
    /// invocations get the JSON on success and a function error whose
    /// `errorType` is the stable code otherwise.
    /// An invocation still running near its Lambda deadline counts a
    /// timeout ([`broker_runtime::faults`]).
    pub async fn handle(&self, request: Request) -> Result<Response<Body>, VendError> {
        let deadline = request
            .lambda_context_ref()
            .and_then(|context| faults::lambda_deadline(context.deadline));
        // Boxed: the answer is a large future, and this keeps it off the
        // caller's stack.
        faults::watch_deadline(self.metrics(), deadline, Box::pin(self.answer(request))).await
    }

    async fn answer(&self, request: Request) -> Result<Response<Body>, VendError> {
        let direct = matches!(
            request.request_context_ref(),
            Some(RequestContext::PassThrough)
        );
        let result = if direct {
            self.direct(request.body()).await
        } else {
            self.http(&request).await
        };
        // The first request after the flush interval writes the counters.
        self.metrics().flush_if_due();
        match result {
            Ok(response) => Ok(response.map(Body::from)),
            Err(error) if direct => Err(error),
            Err(error) => Ok(error.to_response().map(Body::from)),
        }
    }

    async fn http(&self, request: &Request) -> Result<Response<String>, VendError> {
        let segments: Vec<&str> = request
            .uri()
            .path()
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let [.., "tokens", platform, shop] = segments.as_slice() else {
            return Err(self.refused_before_vending(VendError::NotFound));
        };
        let options: WireRequest = match *request.method() {
            Method::GET => WireRequest::default(),
            Method::POST if request.body().is_empty() => WireRequest::default(),
            // serde's message could quote the stale token: use our own. The
            // path names the shop, so the body may not.
            Method::POST => from_json_object(request.body())
                .filter(|options: &WireRequest| !options.names_a_shop())
                .ok_or_else(|| {
                    VendError::InvalidRequest(
                        "the body must be JSON {\"min_ttl_seconds\": N, \"stale_token\": \"…\"} (both optional)"
                            .into(),
                    )
                })
                .map_err(|error| self.refused_before_vending(error))?,
            _ => {
                let error = VendError::InvalidRequest("use GET or POST".into());
                return Err(self.refused_before_vending(error));
            }
        };
        let stale_token = options.stale_token.map(ApiAccessToken::new);
        self.vend(platform, shop, options.min_ttl_seconds, stale_token)
            .await
    }

    async fn direct(&self, payload: &[u8]) -> Result<Response<String>, VendError> {
        // A direct invocation names the shop in the payload.
        let named = |payload: WireRequest| match (payload.platform, payload.shop) {
            (Some(platform), Some(shop)) => {
                Some((platform, shop, payload.min_ttl_seconds, payload.stale_token))
            }
            _ => None,
        };
        let Some((platform, shop, min_ttl_seconds, stale_token)) =
            from_json_object(payload).and_then(named)
        else {
            let error = VendError::InvalidRequest(
                "the payload must be {\"platform\", \"shop\", \"min_ttl_seconds\"?, \"stale_token\"?}"
                    .into(),
            );
            return Err(self.refused_before_vending(error));
        };
        self.vend(
            &platform,
            &shop,
            min_ttl_seconds,
            stale_token.map(ApiAccessToken::new),
        )
        .await
    }

    async fn vend(
        &self,
        platform: &str,
        shop: &str,
        min_ttl_seconds: Option<u64>,
        stale_token: Option<ApiAccessToken>,
    ) -> Result<Response<String>, VendError> {
        let started = Instant::now();
        let shop = ShopRef::parse(platform, shop).map_err(|problem| {
            self.refused_before_vending(VendError::InvalidRequest(problem.to_string()))
        })?;
        let request = VendRequest {
            shop,
            min_ttl: min_ttl_seconds.map(Duration::from_secs),
            stale_token,
        };
        let result = self.vendor.vend(&request).await;
        let duration_ms = started.elapsed().as_millis() as u64;
        let (platform, shop) = (request.shop.platform(), request.shop.id());
        match result {
            Ok(vended) => {
                let source = vended.source;
                let dimensions =
                    Dimensions::platform(platform).with(Dimension::Source, source.as_str());
                self.metrics().count(Metric::Vends, dimensions);
                // Cache hits are most of the traffic: a line each would cost
                // more in log ingestion than the vend itself.
                match source {
                    Source::Minted => {
                        tracing::info!(%platform, %shop, source = source.as_str(), duration_ms, "token vended")
                    }
                    Source::L1 | Source::L2 => {
                        tracing::debug!(%platform, %shop, source = source.as_str(), duration_ms, "token vended")
                    }
                }
                Ok(json_response(
                    StatusCode::OK,
                    &self.body(&request.shop, &vended),
                ))
            }
            Err(error) => {
                let dimensions =
                    Dimensions::platform(platform).with(Dimension::Code, error.code().as_str());
                self.metrics().count(Metric::VendErrors, dimensions);
                self.count_store_failure(&error);
                tracing::warn!(%platform, %shop, outcome = error.code().as_str(), %error, duration_ms, "token not vended");
                Err(error)
            }
        }
    }

    /// A refusal because a store failed is written at once as
    /// `StoreErrors`, the metric the store alarm watches; every other
    /// refusal is an answer, counted only in `VendErrors`.
    fn count_store_failure(&self, error: &VendError) {
        if let VendError::StoreUnavailable = error {
            let operation = Dimensions::of(Dimension::Operation, VEND_OPERATION);
            self.metrics().event(Metric::StoreErrors, operation);
        }
    }

    /// Counts a request refused before it named a platform and shop.
    fn refused_before_vending(&self, error: VendError) -> VendError {
        let dimensions = Dimensions::of(Dimension::Platform, UNKNOWN_PLATFORM)
            .with(Dimension::Code, error.code().as_str());
        self.metrics().count(Metric::VendErrors, dimensions);
        error
    }

    fn body(&self, shop: &ShopRef, vended: &Vended) -> TokenResponse {
        let token = &vended.token;
        let token_text = token.access_token.expose_secret();
        let (api_base_url, scopes) = match shop {
            ShopRef::Shoptet(_) => (self.api_bases.shoptet.clone(), None),
            ShopRef::Shoprenter(name) => (
                self.api_bases.shoprenter.for_shop(name),
                Some(token.scopes.clone()),
            ),
        };
        TokenResponse {
            platform: shop.platform(),
            shop: shop.id(),
            access_token: token_text.to_owned(),
            expires_at: humantime::format_rfc3339_seconds(token.expires_at).to_string(),
            expires_in: token
                .expires_at
                .duration_since(SystemTime::now())
                .unwrap_or_default()
                .as_secs(),
            header_name: TokenResponse::header_name_for(shop.platform()).to_owned(),
            header_value: TokenResponse::header_value_for(shop.platform(), token_text),
            api_base_url,
            scopes,
        }
    }
}

/// The `Operation` of a store failure that refused a vend.
const VEND_OPERATION: &str = "Vend";

/// The `Platform` of a refused request that named none we serve.
const UNKNOWN_PLATFORM: &str = "unknown";
