//! The install callback: Shoptet's install redirect and the Shoprenter
//! credentials endpoint. Answers 200 to Shoptet only once the OAuth access
//! token is stored.

use std::time::{Duration, SystemTime};

use broker_shared::http::{HttpError, json_response};
use broker_shared::ids::{Platform, ShopRef, ShoprenterShopName};
use broker_shared::model::{ShoprenterCredentials, ShoptetInstallationRecord};
use broker_shared::secret::{ClientSecret, ExposeSecret, InstallCode};
use broker_shared::shoprenter::ShoprenterClient;
use broker_shared::shoptet::{AddonCredentials, ShoptetClient};
use broker_shared::storage::{InstallationStore, SaveOutcome, Stores, TokenCache};
use lambda_http::http::{Method, Response, StatusCode};
use lambda_http::{Body, Request};
use serde::{Deserialize, Serialize};
use tokio::time::{Instant, timeout_at};

use crate::config::InstallConfig;
use crate::error::InstallError;

/// Shoptet documents codes of 255 characters; anything far longer is not one.
const MAX_CODE_LEN: usize = 1024;

pub struct InstallCallback<S, C> {
    pub shoptet: ShoptetClient,
    pub addon: AddonCredentials,
    /// `None`: derived from the request (see `InstallConfig`).
    pub redirect_uri: Option<String>,
    pub shoprenter: ShoprenterClient,
    pub stores: Stores<S, C>,
    pub deadline: Duration,
}

enum Route<'a> {
    ShoptetInstall,
    ShoprenterCredentials(&'a str),
}

/// What a successful install or credentials call answers.
#[derive(Debug, Serialize)]
pub struct Stored {
    /// `installed` or `stored`.
    pub status: &'static str,
    pub platform: Platform,
    pub shop: String,
}

impl Stored {
    fn response(status_code: StatusCode, status: &'static str, shop: &ShopRef) -> Response<String> {
        json_response(
            status_code,
            &Self {
                status,
                platform: shop.platform(),
                shop: shop.id(),
            },
        )
    }
}

impl<S: InstallationStore, C: TokenCache> InstallCallback<S, C> {
    /// The handler over any storage adapters, with the add-on's client
    /// secret already resolved.
    pub fn new(
        config: InstallConfig,
        client_secret: Option<ClientSecret>,
        stores: Stores<S, C>,
    ) -> Self {
        let http = config.http.build_client();
        Self {
            shoptet: ShoptetClient::new(http.clone(), config.shoptet),
            addon: AddonCredentials {
                client_id: config.shoptet_client_id,
                client_secret,
            },
            redirect_uri: config.shoptet_redirect_uri,
            shoprenter: ShoprenterClient::new(http, config.shoprenter_oauth_url),
            stores,
            deadline: config.install_deadline,
        }
    }

    pub async fn handle(&self, request: Request) -> Response<Body> {
        let started = Instant::now();
        let path = request.uri().path().to_owned();
        let result = match (route(&path), request.method()) {
            (Some(Route::ShoptetInstall), &Method::GET) => {
                self.install_shoptet(&request, started).await
            }
            (Some(Route::ShoprenterCredentials(shop)), &Method::PUT) => {
                self.save_shoprenter_credentials(shop, request.body()).await
            }
            (Some(_), _) => Err(InstallError::MethodNotAllowed),
            (None, _) => Err(InstallError::NotFound),
        };
        let duration_ms = started.elapsed().as_millis() as u64;
        let response = match result {
            Ok(response) => response,
            Err(error) => {
                tracing::warn!(outcome = error.code(), %error, duration_ms, "request refused");
                error.to_response()
            }
        };
        response.map(Body::from)
    }

    async fn install_shoptet(
        &self,
        request: &Request,
        started: Instant,
    ) -> Result<Response<String>, InstallError> {
        let deadline = started + self.deadline;
        let code = install_code(request.uri().query())?;
        let redirect_uri = match &self.redirect_uri {
            Some(configured) => configured.clone(),
            None => arrival_url(request)?,
        };
        let exchange = self
            .shoptet
            .exchange_code(&code, &self.addon, &redirect_uri);
        let installation = timeout_at(deadline, exchange)
            .await
            .map_err(|_| InstallError::UpstreamUnavailable)??;
        let eshop_id = installation.eshop_id;
        let record = ShoptetInstallationRecord {
            installation,
            installed_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        };
        let saved = timeout_at(
            deadline,
            self.stores.installations.save_shoptet_installation(&record),
        )
        .await
        .map_err(|_| InstallError::StoreUnavailable)??;
        // The new OAuth access token replaces the old one, and API tokens
        // minted with the old one must not be served again.
        let shop = ShopRef::Shoptet(eshop_id);
        self.forget_cached_token(&shop, deadline).await;
        tracing::info!(
            platform = "shoptet",
            shop = %eshop_id,
            outcome = "installed",
            reinstall = matches!(saved, SaveOutcome::Replaced),
            duration_ms = started.elapsed().as_millis() as u64,
            "installation stored"
        );
        Ok(Stored::response(StatusCode::OK, "installed", &shop))
    }

    async fn save_shoprenter_credentials(
        &self,
        shop: &str,
        body: &[u8],
    ) -> Result<Response<String>, InstallError> {
        let shop: ShoprenterShopName = shop.parse().map_err(|_| {
            InstallError::InvalidRequest("the shop name is not a valid Shoprenter shop name")
        })?;
        let credentials = credentials_body(body)?;
        // Proof that the credentials work: Shoprenter grants a token with them.
        self.shoprenter.request_token(&shop, &credentials).await?;
        self.stores
            .installations
            .save_shoprenter_credentials(&shop, &credentials)
            .await?;
        let shop = ShopRef::Shoprenter(shop);
        self.forget_cached_token(&shop, Instant::now() + Duration::from_secs(2))
            .await;
        tracing::info!(platform = "shoprenter", shop = %shop.id(), outcome = "credentials_stored", "credentials stored");
        Ok(Stored::response(StatusCode::CREATED, "stored", &shop))
    }

    /// Best effort: the secret is already stored, so the install succeeds
    /// either way. A stale cached token is replaced when a caller reports it.
    async fn forget_cached_token(&self, shop: &ShopRef, deadline: Instant) {
        match timeout_at(deadline, self.stores.tokens.forget(shop)).await {
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

/// Matches on the path's tail, so a stage prefix or a Function URL path
/// makes no difference.
fn route(path: &str) -> Option<Route<'_>> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        [.., "shoptet", "install"] => Some(Route::ShoptetInstall),
        [.., "shoprenter", shop, "credentials"] => Some(Route::ShoprenterCredentials(shop)),
        _ => None,
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
    let body: CredentialsBody = serde_json::from_slice(body).map_err(|_| {
        InstallError::InvalidRequest(
            "the body must be JSON {\"client_id\": \"…\", \"client_secret\": \"…\"}",
        )
    })?;
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
