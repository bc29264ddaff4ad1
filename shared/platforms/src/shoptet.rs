//! Shoptet add-on OAuth: code exchange, API access tokens, API error envelopes.
//!
//! The OAuth server lives on the partner's own e-shop; its URL is add-on
//! configuration and is never derived from a request.

use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::ShoptetEshopId;
use crate::model::ShoptetInstallation;
use crate::secret::{ApiAccessToken, ClientSecret, ExposeSecret, InstallCode, OAuthAccessToken};
use crate::upstream::{self, UpstreamFailure, UpstreamResponse, UpstreamUrl};

/// The header Shoptet's API reads the API access token from.
pub use shop_token_protocol::answer::SHOPTET_TOKEN_HEADER as API_TOKEN_HEADER;

/// Base of Shoptet's REST API.
pub const DEFAULT_API_URL: &str = "https://api.myshoptet.com/api";

pub use broker_domain::limits::{
    SHOPTET_API_TOKEN_LIFETIME as API_TOKEN_LIFETIME, SHOPTET_LIVE_TOKEN_CAP as LIVE_TOKEN_CAP,
};

/// Where Shoptet's servers are: the partner e-shop's OAuth server and the API.
#[derive(Debug, Clone)]
pub struct ShoptetConfig {
    /// The partner e-shop, e.g. `https://12345.myshoptet.com`.
    pub oauth_url: UpstreamUrl,
    /// Base of the REST API, [`DEFAULT_API_URL`].
    pub api_url: UpstreamUrl,
}

/// The add-on's OAuth client, from the partner e-shop's "Access to API" page.
/// Only the code exchange needs it; minting API tokens does not.
#[derive(Debug, Clone)]
pub struct AddonCredentials {
    pub client_id: String,
    /// Only partners who were given one have a client secret.
    pub client_secret: Option<ClientSecret>,
}

/// A freshly minted API access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenGrant {
    pub access_token: ApiAccessToken,
    /// Counted from the moment the request was sent, so it is never later
    /// than Shoptet's own idea of the expiry.
    pub expires_at: SystemTime,
}

/// Every way a Shoptet call can fail: Shoptet's own error codes, then the
/// failures every platform shares. Messages never contain a token, a code or
/// a secret: upstream texts are dropped, only error codes are kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShoptetError {
    #[error("the API access token has expired (expired-token)")]
    ExpiredToken,
    #[error("the API access token is not valid (invalid-token)")]
    InvalidToken,
    #[error("the API access token has no rights for this resource (invalid-token-no-rights)")]
    TokenHasNoRights,
    #[error("the installation already has the maximum number of live API access tokens")]
    MaximumTokensReached { retry_after: Option<Duration> },
    #[error("the add-on is suspended for this e-shop")]
    AddonSuspended,
    #[error("the add-on is not installed in this e-shop")]
    AddonNotInstalled,
    #[error("the add-on installation is not approved")]
    AddonNotApproved,
    #[error("the installation's OAuth access token is no longer valid (uninstalled)")]
    InstallationRevoked,
    /// getAccessToken answered 401 without an error code we know: most
    /// likely the same as [`Self::InstallationRevoked`], but a proxy or an
    /// outage answers that too.
    #[error("the OAuth server answered 401 without an error code")]
    UnexplainedUnauthorized,
    #[error("Shoptet {0}")]
    Upstream(#[from] UpstreamFailure),
}

impl From<upstream::TransportError> for ShoptetError {
    fn from(error: upstream::TransportError) -> Self {
        Self::Upstream(error.into())
    }
}

impl ShoptetError {
    /// The platform's error code (or our name for a failure without one);
    /// safe to show to callers.
    pub fn upstream_code(&self) -> &str {
        match self {
            Self::ExpiredToken => "expired-token",
            Self::InvalidToken => "invalid-token",
            Self::TokenHasNoRights => "invalid-token-no-rights",
            Self::MaximumTokensReached { .. } => "maximum_tokens_reached",
            Self::AddonSuspended => "addon_suspended",
            Self::AddonNotInstalled => "addon_not_installed",
            Self::AddonNotApproved => "addon_not_approved",
            Self::InstallationRevoked => "installation_revoked",
            Self::UnexplainedUnauthorized => "unauthorized",
            Self::Upstream(failure) => failure.upstream_code(),
        }
    }

    /// Worth trying again later (the same request may succeed).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Upstream(failure) if failure.is_transient())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    CodeExchange,
    GetAccessToken,
    Api,
}

pub struct ShoptetClient {
    pub(crate) http: reqwest::Client,
    config: ShoptetConfig,
}

impl ShoptetClient {
    pub fn new(http: reqwest::Client, config: ShoptetConfig) -> Self {
        Self { http, config }
    }

    /// Exchanges an install `code` for the installation's OAuth access token.
    /// `redirect_uri` is the install URL registered with Shoptet.
    pub async fn exchange_code(
        &self,
        code: &InstallCode,
        addon: &AddonCredentials,
        redirect_uri: &str,
    ) -> Result<ShoptetInstallation, ShoptetError> {
        let body = CodeExchangeRequest {
            client_id: &addon.client_id,
            client_secret: addon.client_secret.as_ref().map(|s| s.expose_secret()),
            code: code.expose_secret(),
            grant_type: "authorization_code",
            redirect_uri,
            scope: "api",
        };
        let url = self
            .config
            .oauth_url
            .join(["action", "ApiOAuthServer", "token"]);
        let response = upstream::send(self.http.post(url).json(&body)).await?;
        parse_success::<CodeExchangeResponse>(&response, Call::CodeExchange)?
            .into_installation()
            .ok_or_else(|| UpstreamFailure::malformed(&response).into())
    }

    /// Mints a new API access token. Each call creates one more live token
    /// upstream (at most 5 may live at once), so callers must cache.
    pub async fn mint_api_token(
        &self,
        oauth_access_token: &OAuthAccessToken,
    ) -> Result<ApiTokenGrant, ShoptetError> {
        #[derive(Deserialize)]
        struct AccessTokenResponse {
            access_token: ApiAccessToken,
            expires_in: u64,
        }

        let url = self
            .config
            .oauth_url
            .join(["action", "ApiOAuthServer", "getAccessToken"]);
        let sent_at = SystemTime::now();
        let request = self
            .http
            .get(url)
            .bearer_auth(oauth_access_token.expose_secret());
        let response = upstream::send(request).await?;
        let parsed: AccessTokenResponse = parse_success(&response, Call::GetAccessToken)?;
        if parsed.access_token.is_empty() || parsed.expires_in == 0 {
            return Err(UpstreamFailure::malformed(&response).into());
        }
        Ok(ApiTokenGrant {
            access_token: parsed.access_token,
            expires_at: upstream::expiry_after(sent_at, parsed.expires_in),
        })
    }

    /// `GET <api_url>/<path>` with the API access token; returns the `data`
    /// member of Shoptet's envelope.
    pub async fn get_api(
        &self,
        api_access_token: &ApiAccessToken,
        path: &[&str],
    ) -> Result<Value, ShoptetError> {
        self.get_api_with_query(api_access_token, path, &[]).await
    }

    /// The URL of an API path.
    pub(crate) fn api_url(&self, path: &[&str]) -> reqwest::Url {
        self.config.api_url.join(path.iter().copied())
    }

    /// [`Self::get_api`] with query parameters.
    pub async fn get_api_with_query(
        &self,
        api_access_token: &ApiAccessToken,
        path: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Value, ShoptetError> {
        #[derive(Deserialize)]
        struct Envelope {
            data: Value,
        }
        let mut url = self.api_url(path);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let request = self
            .http
            .get(url)
            .header(API_TOKEN_HEADER, api_access_token.expose_secret());
        let response = upstream::send(request).await?;
        parse_success::<Envelope>(&response, Call::Api).map(|envelope| envelope.data)
    }
}

/// The code exchange's form, as Shoptet's OAuth server reads it.
#[derive(Serialize)]
struct CodeExchangeRequest<'a> {
    client_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<&'a str>,
    code: &'a str,
    grant_type: &'static str,
    redirect_uri: &'a str,
    scope: &'static str,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CodeExchangeResponse {
    #[serde(rename = "access_token")]
    access_token: OAuthAccessToken,
    eshop_id: Value,
    #[serde(default)]
    eshop_url: String,
    contact_email: Option<String>,
    trial: Option<bool>,
}

impl CodeExchangeResponse {
    /// `None` when the answer lacks a usable token or eshopId.
    fn into_installation(self) -> Option<ShoptetInstallation> {
        let eshop_id = ShoptetEshopId::from_json(&self.eshop_id)?;
        if self.access_token.is_empty() {
            return None;
        }
        Some(ShoptetInstallation {
            oauth_access_token: self.access_token,
            eshop_id,
            eshop_url: self.eshop_url,
            contact_email: self.contact_email,
            trial: self.trial,
        })
    }
}

fn parse_success<T: for<'de> Deserialize<'de>>(
    response: &UpstreamResponse,
    call: Call,
) -> Result<T, ShoptetError> {
    if !response.status.is_success() {
        return Err(classify_failure(response, call));
    }
    // serde's message may quote the offending value: drop it.
    serde_json::from_slice(&response.body).map_err(|_| UpstreamFailure::malformed(response).into())
}

/// An API call's failure, typed as every Shoptet failure is.
pub(crate) fn api_failure(response: &UpstreamResponse) -> ShoptetError {
    classify_failure(response, Call::Api)
}

/// Maps every documented error shape (OAuth `{"error": …}` and the API's
/// `{"errors":[{"errorCode": …}]}` envelope) to one typed error. Unknown shapes
/// become a generic rejection or server error, never a panic.
fn classify_failure(response: &UpstreamResponse, call: Call) -> ShoptetError {
    let status = response.status;
    let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    let code = body
        .get("error")
        .and_then(Value::as_str)
        .or_else(|| body.pointer("/errors/0/errorCode").and_then(Value::as_str));
    let describes_not_approved = ["error_description", "message"]
        .iter()
        .filter_map(|field| body.get(field).and_then(Value::as_str))
        .any(|text| text.to_ascii_lowercase().contains("not approved"));

    match code {
        Some("maximum_tokens_reached") => {
            return ShoptetError::MaximumTokensReached {
                retry_after: response.retry_after,
            };
        }
        Some("expired-token") => return ShoptetError::ExpiredToken,
        Some("invalid-token") => return ShoptetError::InvalidToken,
        Some("invalid-token-no-rights") => return ShoptetError::TokenHasNoRights,
        Some("addon_suspended") => return ShoptetError::AddonSuspended,
        Some("addon_not_installed") => return ShoptetError::AddonNotInstalled,
        Some("addon_not_approved") => return ShoptetError::AddonNotApproved,
        _ if describes_not_approved => return ShoptetError::AddonNotApproved,
        _ => {}
    }
    // A 401 from getAccessToken means the OAuth access token itself is dead.
    // OAuth's `invalid_token` (RFC 6750) says so; a bare 401 only suggests
    // it. Which code Shoptet sends with it is *(unconfirmed)*: code that
    // acts on a bare one must be able to wait for better evidence.
    if call == Call::GetAccessToken && status == StatusCode::UNAUTHORIZED {
        return match code {
            Some("invalid_token") => ShoptetError::InstallationRevoked,
            _ => ShoptetError::UnexplainedUnauthorized,
        };
    }
    UpstreamFailure::from_status(response, code).into()
}
