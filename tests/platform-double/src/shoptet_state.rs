//! Shoptet's side of the world: install codes, installations, OAuth and API
//! access tokens, and the rules of the OAuth server and the API (the HTTP
//! handlers in [`crate::shoptet`] call them once counters, limits and faults
//! had their turn), with the API's error envelope the injected faults
//! imitate too.

use std::collections::HashMap;
use std::time::Instant;

use axum::Json;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::config::DoubleConfig;
use crate::random;
use crate::webhooks::{ApiError, Refusal, Webhooks};

/// Length of install codes and OAuth access tokens.
const LONG_SECRET_LEN: usize = 255;
/// How many unexpired API access tokens one installation may hold.
const MAX_LIVE_API_TOKENS: usize = 5;

/// The state of a Shoptet add-on installation, as seen by `getAccessToken`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InstallationState {
    /// Installed and approved: API access tokens are handed out.
    Active,
    /// Installed but suspended: 403 `addon_suspended`.
    Suspended,
    /// Installation not approved: 403 `addon_not_approved`.
    NotApproved,
    /// Not installed: 403 `addon_not_installed`.
    NotInstalled,
}

#[derive(Debug)]
struct Code {
    eshop_id: u64,
    expires_at: Instant,
    used: bool,
}

#[derive(Debug)]
struct Installation {
    oauth_token: Option<String>,
    state: InstallationState,
}

#[derive(Debug)]
struct ApiToken {
    eshop_id: u64,
    expires_at: Instant,
    /// Set when the installation that obtained it ended (uninstall, reinstall).
    revoked: bool,
}

/// Shoptet's side of the world.
#[derive(Debug, Default)]
pub(crate) struct ShoptetState {
    /// Every code ever issued; used ones stay so later calls can be attributed.
    codes: HashMap<String, Code>,
    installations: HashMap<u64, Installation>,
    /// Every OAuth access token ever issued, valid or not, to its e-shop.
    oauth_tokens: HashMap<String, u64>,
    api_tokens: HashMap<String, ApiToken>,
    /// Ordinary webhooks, their keys and history, and asynchronous jobs.
    pub(crate) webhooks: Webhooks,
}

impl ShoptetState {
    pub(crate) fn issue_code(&mut self, eshop_id: u64, config: &DoubleConfig) -> String {
        let code = random::lower_alnum(LONG_SECRET_LEN);
        self.codes.insert(
            code.clone(),
            Code {
                eshop_id,
                expires_at: Instant::now() + config.code_lifetime,
                used: false,
            },
        );
        code
    }

    /// Every code, OAuth access token, API token and webhook signature key
    /// the double issued.
    pub(crate) fn issued_secrets(&self) -> impl Iterator<Item = &str> {
        self.codes
            .keys()
            .chain(self.oauth_tokens.keys())
            .chain(self.api_tokens.keys())
            .map(String::as_str)
            .chain(self.webhooks.issued_keys())
    }

    pub(crate) fn oauth_access_token(&self, eshop_id: u64) -> Option<String> {
        self.installations.get(&eshop_id)?.oauth_token.clone()
    }

    pub(crate) fn installation_state(&self, eshop_id: u64) -> InstallationState {
        self.installations
            .get(&eshop_id)
            .map_or(InstallationState::NotInstalled, |installation| {
                installation.state
            })
    }

    pub(crate) fn set_installation_state(&mut self, eshop_id: u64, state: InstallationState) {
        self.installation(eshop_id).state = state;
    }

    pub(crate) fn uninstall(&mut self, eshop_id: u64) {
        self.end_installation(eshop_id);
        self.installation(eshop_id).state = InstallationState::NotInstalled;
    }

    pub(crate) fn live_api_tokens(&self, eshop_id: u64) -> usize {
        let now = Instant::now();
        self.api_tokens
            .values()
            .filter(|t| t.eshop_id == eshop_id && !t.revoked && t.expires_at > now)
            .count()
    }

    pub(crate) fn expire_api_tokens(&mut self, eshop_id: u64) {
        let now = Instant::now();
        for token in self.api_tokens.values_mut() {
            if token.eshop_id == eshop_id && token.expires_at > now {
                token.expires_at = now;
            }
        }
    }

    /// The e-shop a code was issued for, used or not (to attribute calls).
    pub(crate) fn eshop_of_code(&self, code: &str) -> Option<u64> {
        self.codes.get(code).map(|code| code.eshop_id)
    }

    /// The e-shop an OAuth access token was issued for, valid or not.
    pub(crate) fn eshop_of_oauth_token(&self, token: &str) -> Option<u64> {
        self.oauth_tokens.get(token).copied()
    }

    /// The e-shop an API access token was issued for, expired and revoked
    /// ones included.
    pub(crate) fn eshop_of_api_token(&self, token: &str) -> Option<u64> {
        self.api_tokens
            .get(token)
            .map(|api_token| api_token.eshop_id)
    }

    fn installation(&mut self, eshop_id: u64) -> &mut Installation {
        self.installations.entry(eshop_id).or_insert(Installation {
            oauth_token: None,
            state: InstallationState::NotInstalled,
        })
    }

    /// Invalidates the e-shop's OAuth access token and every API access
    /// token obtained with it, and forgets the installation's webhooks (see
    /// [`crate::webhooks`]).
    fn end_installation(&mut self, eshop_id: u64) {
        self.installation(eshop_id).oauth_token = None;
        self.webhooks.forget(eshop_id);
        for token in self.api_tokens.values_mut() {
            if token.eshop_id == eshop_id {
                token.revoked = true;
            }
        }
    }

    /// Code exchange after the counters and faults had their turn.
    ///
    /// A code is consumed as soon as an authenticated client presents it,
    /// whatever the outcome of the remaining checks (as OAuth servers do to
    /// stop code replay): a retry with the same code answers `invalid_grant`.
    pub(crate) fn exchange(
        &mut self,
        config: &DoubleConfig,
        fields: Option<&HashMap<String, String>>,
    ) -> Response {
        let Some(fields) = fields else {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "The request body is neither JSON nor form-encoded",
            );
        };
        let field = |name: &str| {
            fields
                .get(name)
                .map(String::as_str)
                .filter(|v| !v.is_empty())
        };

        let client_ok = field("client_id") == Some(config.shoptet_client_id.as_str())
            && config
                .shoptet_client_secret
                .as_deref()
                .is_none_or(|secret| field("client_secret") == Some(secret));
        if !client_ok {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "Client authentication failed",
            );
        }

        let grant = field("code").and_then(|code| {
            let entry = self.codes.get_mut(code)?;
            let valid = !entry.used && entry.expires_at > Instant::now();
            entry.used = true;
            valid.then_some(entry.eshop_id)
        });

        for name in ["code", "grant_type", "redirect_uri", "scope"] {
            if field(name).is_none() {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    &format!("The request is missing the required parameter `{name}`"),
                );
            }
        }
        if field("grant_type") != Some("authorization_code") {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "The grant_type must be `authorization_code`",
            );
        }
        if field("scope") != Some("api") {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "The scope must be `api`",
            );
        }
        if let Some(expected) = config.shoptet_redirect_uri.as_deref()
            && field("redirect_uri") != Some(expected)
        {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "The redirect_uri does not match the registered one",
            );
        }

        let Some(eshop_id) = grant else {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "The authorization code is invalid, expired or already used",
            );
        };

        // A new installation replaces any previous one of the same e-shop.
        self.end_installation(eshop_id);
        let token = random::lower_alnum(LONG_SECRET_LEN);
        self.oauth_tokens.insert(token.clone(), eshop_id);
        let installation = self.installation(eshop_id);
        installation.oauth_token = Some(token.clone());
        installation.state = InstallationState::Active;

        Json(json!({
            "access_token": token,
            "expires_in": null,
            "token_type": "Bearer",
            "scope": "api",
            "eshopId": eshop_id,
            "eshopUrl": eshop_url(eshop_id),
            "contactEmail": format!("owner-{eshop_id}@example.test"),
            "trial": false,
        }))
        .into_response()
    }

    /// getAccessToken after the counters and faults had their turn.
    pub(crate) fn vend_api_token(
        &mut self,
        config: &DoubleConfig,
        oauth_token: Option<&str>,
    ) -> Response {
        let eshop_id = oauth_token.and_then(|token| {
            let eshop_id = *self.oauth_tokens.get(token)?;
            let current = self.installations.get(&eshop_id)?.oauth_token.as_deref();
            (current == Some(token)).then_some(eshop_id)
        });
        let Some(eshop_id) = eshop_id else {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "The access token provided is invalid",
            );
        };

        let refusal = match self.installation(eshop_id).state {
            InstallationState::Active => None,
            InstallationState::Suspended => Some(("addon_suspended", "Addon is suspended")),
            InstallationState::NotApproved => {
                Some(("addon_not_approved", "Addon installation is not approved"))
            }
            InstallationState::NotInstalled => {
                Some(("addon_not_installed", "Addon is not installed"))
            }
        };
        if let Some((error, description)) = refusal {
            return oauth_error(StatusCode::FORBIDDEN, error, description);
        }

        if self.live_api_tokens(eshop_id) >= MAX_LIVE_API_TOKENS {
            return oauth_error(
                StatusCode::TOO_MANY_REQUESTS,
                "maximum_tokens_reached",
                "Maximum number of valid tokens reached",
            );
        }

        // Documented shape: `<eshopId>-a-<random>`, 38 to 60 characters;
        // the double keeps to 40..=60.
        let prefix = format!("{eshop_id}-a-");
        let low = 40usize.saturating_sub(prefix.len()).max(8);
        let high = 60usize.saturating_sub(prefix.len()).max(low);
        let token = prefix + &random::lower_alnum(random::between(low, high));
        self.api_tokens.insert(
            token.clone(),
            ApiToken {
                eshop_id,
                expires_at: Instant::now() + config.api_token_lifetime,
                revoked: false,
            },
        );
        Json(json!({
            "access_token": token,
            "expires_in": config.api_token_lifetime.as_secs(),
        }))
        .into_response()
    }

    /// The e-shop whose live API access token `token` is; otherwise the
    /// API's 401 (`invalid-token` for an unknown or revoked one,
    /// `expired-token`). Every API route checks it first.
    pub(crate) fn authenticate(&self, token: Option<&str>) -> Result<u64, Refusal> {
        let refusal = |code: &'static str, message: &str| Refusal {
            status: StatusCode::UNAUTHORIZED,
            errors: vec![ApiError {
                code,
                message: message.to_owned(),
                instance: "access-token".to_owned(),
            }],
        };
        match token.and_then(|t| self.api_tokens.get(t)) {
            None => Err(refusal("invalid-token", "Invalid access token.")),
            Some(api_token) if api_token.revoked => {
                Err(refusal("invalid-token", "Invalid access token."))
            }
            Some(api_token) if api_token.expires_at <= Instant::now() => Err(refusal(
                "expired-token",
                "Token is expired. Please ask for new one.",
            )),
            Some(api_token) => Ok(api_token.eshop_id),
        }
    }

    /// An API call after the counters and faults had their turn, on a path
    /// other than the webhook and job routes.
    pub(crate) fn api_call(&self, method: &Method, path: &str, token: Option<&str>) -> Response {
        let eshop_id = match self.authenticate(token) {
            Ok(eshop_id) => eshop_id,
            Err(refusal) => return api_refusal(&refusal),
        };
        if method != Method::GET || path != "eshop" {
            // The real message quotes an abbreviated token; the double never
            // echoes any part of it.
            return api_error(
                StatusCode::FORBIDDEN,
                "invalid-token-no-rights",
                "Your access token has no defined rights for this resource.",
            );
        }
        Json(json!({
            "data": {
                "contactInformation": {
                    "eshopId": eshop_id,
                    "eshopName": format!("Double e-shop {eshop_id}"),
                    "url": eshop_url(eshop_id),
                    "email": format!("owner-{eshop_id}@example.test"),
                },
                "urls": [{ "url": eshop_url(eshop_id), "isMain": true }],
            },
            "errors": null,
        }))
        .into_response()
    }
}

fn eshop_url(eshop_id: u64) -> String {
    format!("https://eshop-{eshop_id}.myshoptet.test/")
}

/// An OAuth server error body.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

/// The API's error envelope for token errors.
fn api_error(status: StatusCode, code: &str, message: &str) -> Response {
    api_envelope(status, code, message, "access-token")
}

/// The API's error envelope for a refusal of the webhook and job routes.
pub(crate) fn api_refusal(refusal: &Refusal) -> Response {
    let errors: Vec<_> = refusal
        .errors
        .iter()
        .map(|e| json!({ "errorCode": e.code, "message": e.message, "instance": e.instance }))
        .collect();
    (
        refusal.status,
        Json(json!({
            "data": null,
            "errors": errors,
            "metadata": { "requestId": random::request_id() },
        })),
    )
        .into_response()
}

/// A successful API answer: `data` in the envelope, `errors` null.
pub(crate) fn api_data(status: StatusCode, data: serde_json::Value) -> Response {
    (
        status,
        Json(json!({
            "data": data,
            "errors": null,
            "metadata": { "requestId": random::request_id() },
        })),
    )
        .into_response()
}

/// The API's error envelope.
pub(crate) fn api_envelope(
    status: StatusCode,
    code: &str,
    message: &str,
    instance: &str,
) -> Response {
    (
        status,
        Json(json!({
            "data": null,
            "errors": [{ "errorCode": code, "message": message, "instance": instance }],
            "metadata": { "requestId": random::request_id() },
        })),
    )
        .into_response()
}

/// A 429 in the API's error envelope, with `Retry-After` if given.
pub(crate) fn too_many_requests(message: &str, retry_after: Option<HeaderValue>) -> Response {
    let mut response = api_envelope(
        StatusCode::TOO_MANY_REQUESTS,
        "too-many-requests",
        message,
        "rate-limit",
    );
    if let Some(date) = retry_after {
        response.headers_mut().insert(header::RETRY_AFTER, date);
    }
    response
}
