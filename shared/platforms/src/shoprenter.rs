//! Shoprenter client-credentials grant and JWT claims.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::ShoprenterShopName;
use crate::model::ShoprenterCredentials;
use crate::secret::{ApiAccessToken, ClientSecret, ExposeSecret};
use crate::upstream::{self, InvalidUpstreamUrl, UpstreamFailure, UpstreamResponse, UpstreamUrl};

/// Shoprenter's OAuth server (client-credentials grant).
pub const DEFAULT_OAUTH_URL: &str = "https://oauth.app.shoprenter.net";

/// Each shop's API, with [`SHOP_PLACEHOLDER`] standing for the shop name.
pub const DEFAULT_API_URL: &str = "https://{shop}.api2.myshoprenter.hu/api";

/// Where a shop name goes in an API URL template.
pub const SHOP_PLACEHOLDER: &str = "{shop}";

pub use broker_domain::limits::SHOPRENTER_ACCESS_TOKEN_LIFETIME as ACCESS_TOKEN_LIFETIME;

/// JWT segments are base64url without padding; tolerate padding anyway.
const JWT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A shop's access token (a JWT) with what its payload says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShoprenterToken {
    pub access_token: ApiAccessToken,
    /// The earlier of `expires_in` (counted from sending) and the JWT's `exp`.
    pub expires_at: SystemTime,
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidApiUrlTemplate {
    #[error("must contain {SHOP_PLACEHOLDER} exactly once")]
    Placeholder,
    #[error("with a shop name in place of {SHOP_PLACEHOLDER}: {0}")]
    Url(InvalidUpstreamUrl),
}

/// The API base URL of every shop: a template whose [`SHOP_PLACEHOLDER`]
/// becomes the (validated, DNS-label) shop name. Checked once, from
/// configuration, so that every shop's URL is a valid upstream URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShoprenterApiUrl {
    template: String,
}

impl ShoprenterApiUrl {
    pub fn parse(template: &str) -> Result<Self, InvalidApiUrlTemplate> {
        let template = template.trim();
        if template.matches(SHOP_PLACEHOLDER).count() != 1 {
            return Err(InvalidApiUrlTemplate::Placeholder);
        }
        // Shop names are DNS labels: any of them substitutes like this one.
        UpstreamUrl::parse(&template.replace(SHOP_PLACEHOLDER, "shop"))
            .map_err(InvalidApiUrlTemplate::Url)?;
        Ok(Self {
            template: template.trim_end_matches('/').to_owned(),
        })
    }

    /// The API base of `shop`, without a trailing slash.
    pub fn for_shop(&self, shop: &ShoprenterShopName) -> String {
        self.template.replace(SHOP_PLACEHOLDER, shop.as_str())
    }
}

impl Default for ShoprenterApiUrl {
    fn default() -> Self {
        Self::parse(DEFAULT_API_URL).expect("the default template is valid")
    }
}

/// Every way a token request can fail: Shoprenter's OAuth errors, then the
/// failures every platform shares.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShoprenterError {
    #[error("Shoprenter refused the client credentials (invalid_client)")]
    InvalidClient,
    #[error("Shoprenter refused the request as malformed (invalid_request){}", hint_suffix(.hint))]
    InvalidRequest { hint: Option<String> },
    #[error("Shoprenter {0}")]
    Upstream(#[from] UpstreamFailure),
}

impl From<upstream::TransportError> for ShoprenterError {
    fn from(error: upstream::TransportError) -> Self {
        Self::Upstream(error.into())
    }
}

fn hint_suffix(hint: &Option<String>) -> String {
    hint.as_deref()
        .map(|hint| format!(": {hint}"))
        .unwrap_or_default()
}

impl ShoprenterError {
    /// Worth trying again later (the same request may succeed).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Upstream(failure) if failure.is_transient())
    }

    /// The OAuth error code (or our name for a failure without one); safe
    /// to show to callers.
    pub fn upstream_code(&self) -> &str {
        match self {
            Self::InvalidClient => "invalid_client",
            Self::InvalidRequest { .. } => "invalid_request",
            Self::Upstream(failure) => failure.upstream_code(),
        }
    }
}

pub struct ShoprenterClient {
    http: reqwest::Client,
    oauth_url: UpstreamUrl,
}

impl ShoprenterClient {
    /// `oauth_url` is `https://oauth.app.shoprenter.net` in production.
    pub fn new(http: reqwest::Client, oauth_url: UpstreamUrl) -> Self {
        Self { http, oauth_url }
    }

    pub async fn request_token(
        &self,
        shop: &ShoprenterShopName,
        credentials: &ShoprenterCredentials,
    ) -> Result<ShoprenterToken, ShoprenterError> {
        #[derive(Serialize)]
        struct TokenRequest<'a> {
            grant_type: &'static str,
            client_id: &'a str,
            client_secret: &'a str,
        }
        #[derive(Deserialize)]
        struct TokenResponse {
            access_token: ApiAccessToken,
            expires_in: u64,
        }

        let url = self.oauth_url.join([shop.as_str(), "app", "token"]);
        let body = TokenRequest {
            grant_type: "client_credentials",
            client_id: &credentials.client_id,
            client_secret: credentials.client_secret.expose_secret(),
        };
        let sent_at = SystemTime::now();
        let response = upstream::send(self.http.post(url).json(&body)).await?;
        if !response.status.is_success() {
            return Err(classify_failure(&response, &credentials.client_secret));
        }
        let malformed = ShoprenterError::from(UpstreamFailure::malformed(&response));
        let parsed: TokenResponse =
            serde_json::from_slice(&response.body).map_err(|_| malformed.clone())?;
        let claims = JwtClaims::decode(&parsed.access_token).ok_or_else(|| malformed.clone())?;
        let by_expires_in = upstream::expiry_after(sent_at, parsed.expires_in);
        let expires_at = match claims.expires_at {
            Some(exp) => exp.min(by_expires_in),
            None => by_expires_in,
        };
        if expires_at <= SystemTime::now() {
            return Err(malformed);
        }
        Ok(ShoprenterToken {
            access_token: parsed.access_token,
            expires_at,
            scopes: claims.scopes,
        })
    }
}

/// The claims we read from a Shoprenter JWT.
///
/// The token is only decoded, NOT verified: we received it directly from the
/// configured OAuth server over TLS, and we use the claims only to schedule
/// refreshes and to tell callers which scopes they hold. Shoprenter's API is
/// what verifies the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtClaims {
    pub expires_at: Option<SystemTime>,
    pub scopes: Vec<String>,
}

impl JwtClaims {
    pub fn decode(jwt: &ApiAccessToken) -> Option<Self> {
        let mut parts = jwt.expose_secret().split('.');
        let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let payload: Value = serde_json::from_slice(&JWT_BASE64.decode(payload).ok()?).ok()?;
        let expires_at = payload
            .get("exp")
            .and_then(Value::as_u64)
            // Past what a clock can hold: no usable expiry, so `expires_in`
            // decides. Negative or fractional values are no `u64`: the same.
            .and_then(|exp| UNIX_EPOCH.checked_add(Duration::from_secs(exp)));
        // Seen as an array (`scopes`) and, in other OAuth servers, as a
        // space-separated string (`scope`).
        let scopes = match (payload.get("scopes"), payload.get("scope")) {
            (Some(Value::Array(items)), _) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            (_, Some(Value::String(joined))) => {
                joined.split_whitespace().map(str::to_owned).collect()
            }
            _ => Vec::new(),
        };
        Some(Self { expires_at, scopes })
    }
}

fn classify_failure(response: &UpstreamResponse, sent_secret: &ClientSecret) -> ShoprenterError {
    let status = response.status;
    let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    let code = body.get("error").and_then(Value::as_str);
    match (status, code) {
        (_, Some("invalid_client")) => ShoprenterError::InvalidClient,
        (_, Some("invalid_request")) => ShoprenterError::InvalidRequest {
            hint: body
                .get("hint")
                .and_then(Value::as_str)
                .filter(|hint| !hint.contains(sent_secret.expose_secret()))
                .map(sanitized_hint),
        },
        (StatusCode::UNAUTHORIZED, None) => ShoprenterError::InvalidClient,
        (_, code) => UpstreamFailure::from_status(response, code).into(),
    }
}

/// Hints name a parameter ("Check the `client_id` parameter"); keep them short
/// and printable so they are safe in an error body.
fn sanitized_hint(hint: &str) -> String {
    hint.chars().filter(|c| !c.is_control()).take(160).collect()
}
