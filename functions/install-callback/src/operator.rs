//! Operator routes (IAM in the template): import installations that predate
//! the broker, uninstall one now, and read the registry. Answers never hold
//! a token, code or secret.

use std::num::NonZeroUsize;
use std::time::SystemTime;

use tokio::time::{Instant, timeout_at};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use broker_domain::http::{from_json_object, json_response};
use broker_domain::ids::{Platform, ShopRef, ShoptetEshopId};
use broker_domain::model::{
    CachedToken, InstallationStatus, Origin, Registration, ShoptetInstallation,
    ShoptetInstallationRecord,
};
use broker_domain::secret::{ExposeSecret, OAuthAccessToken};
use broker_domain::storage::{
    InstallationRegistry, InstallationStore, MAX_PAGE, RegistryQuery, SaveOutcome, TokenCache,
};
use broker_vending::Candidate;
use lambda_http::http::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::error::InstallError;
use crate::handler::InstallCallback;
use crate::outcome::{EventOutcome, InstallOutcome, LifecycleEvent, Stored, StoredStatus};

/// A page when the caller does not say.
const DEFAULT_PAGE: usize = 50;

/// One installation as the registry knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallationView {
    pub platform: Platform,
    pub shop: String,
    pub status: InstallationStatus,
    /// RFC 3339, whole seconds.
    pub installed_at: String,
    pub updated_at: String,
    /// The `sequence` of the shop's last lifecycle event (0: none yet), to
    /// compare with what a subscriber applied (docs/events.md).
    pub last_event_sequence: u64,
}

impl From<&Registration> for InstallationView {
    fn from(registration: &Registration) -> Self {
        let time = |at| humantime::format_rfc3339_seconds(at).to_string();
        Self {
            platform: registration.shop.platform(),
            shop: registration.shop.id(),
            status: registration.status,
            installed_at: time(registration.installed_at),
            updated_at: time(registration.updated_at),
            last_event_sequence: registration.sequence,
        }
    }
}

/// `GET /installations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallationList {
    pub installations: Vec<InstallationView>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

impl<S: InstallationStore, C: TokenCache, R: InstallationRegistry> InstallCallback<S, C, R> {
    /// `PUT /shoptet/{eshopId}/installation` with the installation's OAuth
    /// access token from the add-on's own database: verified with one
    /// `getAccessToken` (cached, counted in the ledger), then stored like an
    /// install.
    pub(crate) async fn import_shoptet(
        &self,
        eshop_id: &str,
        body: &[u8],
    ) -> Result<Response<String>, InstallError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct ImportBody {
            oauth_access_token: OAuthAccessToken,
            #[serde(default)]
            eshop_url: Option<String>,
            #[serde(default)]
            contact_email: Option<String>,
        }

        // Before the body is read: without the add-on there is nothing to verify with.
        self.shoptet()?;
        let eshop_id: ShoptetEshopId = eshop_id.parse().map_err(|_| {
            InstallError::InvalidRequest("the eshopId is not a valid Shoptet e-shop id")
        })?;
        // serde's message could quote the token: use our own.
        let body: ImportBody = from_json_object(body).ok_or(InstallError::InvalidRequest(
            "the body must be JSON {\"oauth_access_token\": \"…\", \"eshop_url\"?, \"contact_email\"?}",
        ))?;
        let token = body.oauth_access_token.expose_secret();
        if !(1..=1024).contains(&token.len()) || !token.chars().all(|c| c.is_ascii_graphic()) {
            return Err(InstallError::InvalidRequest(
                "oauth_access_token must be 1-1024 printable ASCII characters",
            ));
        }
        let shop = ShopRef::Shoptet(eshop_id);
        let candidate = Candidate::ShoptetOAuth(body.oauth_access_token.clone());
        let token = self.verify_in_time(&shop, &candidate).await?;
        self.bound_to(&shop, eshop_id, &token).await?;
        let record = ShoptetInstallationRecord {
            installation: ShoptetInstallation {
                oauth_access_token: body.oauth_access_token,
                eshop_id,
                eshop_url: body.eshop_url.unwrap_or_default(),
                contact_email: body.contact_email,
                trial: None,
            },
            installed_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        };
        let saved = self
            .store_installation(&shop, &record, Origin::Import)
            .await?;
        let outcome = InstallOutcome::Imported;
        self.installed(&shop, outcome);
        tracing::info!(platform = "shoptet", shop = %eshop_id, outcome = outcome.as_str(), "installation imported");
        let status = match saved {
            SaveOutcome::Created => StatusCode::CREATED,
            SaveOutcome::Replaced => StatusCode::OK,
        };
        Ok(Stored::response(status, StoredStatus::Installed, &shop))
    }

    /// Whether the token verified for `shop` is that e-shop's: `GET
    /// /api/eshop` names the e-shop a token belongs to
    /// (`data.contactInformation.eshopId`). Otherwise shop A's OAuth token
    /// stored as shop B would serve B's consumers A's data. On a mismatch
    /// (or an answer that names no e-shop) nothing is stored and what the
    /// verification cached is dropped: 422.
    async fn bound_to(
        &self,
        shop: &ShopRef,
        eshop_id: ShoptetEshopId,
        token: &CachedToken,
    ) -> Result<(), InstallError> {
        let answer = timeout_at(
            Instant::now() + self.deadline(),
            self.shoptet()?.get_api(&token.access_token, &["eshop"]),
        )
        .await
        .map_err(|_| InstallError::UpstreamUnavailable)?;
        let named = match answer {
            Ok(data) => ShoptetEshopId::from_json(&data["contactInformation"]["eshopId"]),
            Err(error) if error.is_transient() => return Err(InstallError::UpstreamUnavailable),
            Err(_) => None,
        };
        if named == Some(eshop_id) {
            return Ok(());
        }
        tracing::warn!(platform = "shoptet", shop = %eshop_id, "import refused: the token belongs to another e-shop");
        self.vendor().forget_locally(shop);
        self.stores().tokens.forget(shop).await?;
        Err(InstallError::ShopMismatch)
    }

    /// `PUT /shoprenter/{shop}/installation`: an app installation that
    /// predates the broker, verified with one token fetch (cached).
    pub(crate) async fn import_shoprenter(
        &self,
        shop: &str,
    ) -> Result<Response<String>, InstallError> {
        let shop = ShopRef::Shoprenter(shop.parse().map_err(|_| {
            InstallError::InvalidRequest("the shop name is not a valid Shoprenter shop name")
        })?);
        let app = self
            .vendor()
            .shoprenter_app_credentials()
            .await?
            .cloned()
            .ok_or(InstallError::NotConfigured(
                "no Shoprenter app is configured (SHOPRENTER_CLIENT_ID, SHOPRENTER_CLIENT_SECRET_ID)",
            ))?;
        self.verify_in_time(&shop, &Candidate::Shoprenter(app))
            .await?;
        let previous = self.activate(&shop, Origin::Import).await?;
        let outcome = InstallOutcome::Imported;
        self.installed(&shop, outcome);
        tracing::info!(platform = "shoprenter", shop = %shop.id(), outcome = outcome.as_str(), "app installation imported");
        let status = match previous.map(|r| r.status) {
            Some(InstallationStatus::Active) => StatusCode::OK,
            _ => StatusCode::CREATED,
        };
        Ok(Stored::response(status, StoredStatus::Installed, &shop))
    }

    /// `DELETE /installations/{platform}/{shop}`: a confirmed uninstall, now.
    pub(crate) async fn delete_installation(
        &self,
        platform: &str,
        shop: &str,
    ) -> Result<Response<String>, InstallError> {
        let shop = parse_shop(platform, shop)?;
        // An installation from before the registry has a secret only.
        let known = self.stores().registry.registration(&shop).await?.is_some()
            || self
                .stores()
                .installations
                .load_document(&shop)
                .await?
                .is_some();
        if !known {
            return Err(InstallError::UnknownInstallation);
        }
        let (registration, was) = self.retire(&shop, Origin::Operator).await?;
        let outcome = EventOutcome::of_change(was, InstallationStatus::Uninstalled);
        self.lifecycle_event(&shop, LifecycleEvent::OperatorDelete, outcome);
        Ok(json_response(
            StatusCode::OK,
            &InstallationView::from(&registration),
        ))
    }

    /// `GET /installations/{platform}/{shop}`.
    pub(crate) async fn show_installation(
        &self,
        platform: &str,
        shop: &str,
    ) -> Result<Response<String>, InstallError> {
        let shop = parse_shop(platform, shop)?;
        let registration = self
            .stores()
            .registry
            .registration(&shop)
            .await?
            .ok_or(InstallError::UnknownInstallation)?;
        Ok(json_response(
            StatusCode::OK,
            &InstallationView::from(&registration),
        ))
    }

    /// `GET /installations?platform=&status=&limit=&cursor=`.
    pub(crate) async fn list_installations(
        &self,
        query: Option<&str>,
    ) -> Result<Response<String>, InstallError> {
        let query = list_query(query.unwrap_or_default())?;
        let page = self.stores().registry.list(&query).await?;
        let list = InstallationList {
            installations: page
                .registrations
                .iter()
                .map(InstallationView::from)
                .collect(),
            next_cursor: page
                .next_after
                .map(|after| URL_SAFE_NO_PAD.encode(after.key())),
        };
        Ok(json_response(StatusCode::OK, &list))
    }
}

fn parse_shop(platform: &str, shop: &str) -> Result<ShopRef, InstallError> {
    ShopRef::parse(platform, shop).map_err(|_| {
        InstallError::InvalidRequest("not a valid platform (shoptet, shoprenter) and shop id")
    })
}

fn list_query(query: &str) -> Result<RegistryQuery, InstallError> {
    let mut parsed = RegistryQuery {
        platform: None,
        status: None,
        limit: NonZeroUsize::new(DEFAULT_PAGE).expect("nonzero"),
        after: None,
    };
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match &*name {
            "platform" => {
                parsed.platform = Some(value.parse().map_err(|_| {
                    InstallError::InvalidRequest("platform is shoptet or shoprenter")
                })?)
            }
            "status" => {
                parsed.status = Some(value.parse().map_err(|_| {
                    InstallError::InvalidRequest("status is active, suspended or uninstalled")
                })?)
            }
            "limit" => {
                parsed.limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|limit| *limit <= MAX_PAGE)
                    .and_then(NonZeroUsize::new)
                    .ok_or(InstallError::InvalidRequest("limit is 1 to 100"))?
            }
            "cursor" => {
                let after = URL_SAFE_NO_PAD
                    .decode(value.as_bytes())
                    .ok()
                    .and_then(|key| String::from_utf8(key).ok())
                    .and_then(|key| ShopRef::from_key(&key).ok())
                    .ok_or(InstallError::InvalidRequest(
                        "cursor is not one this listing returned",
                    ))?;
                parsed.after = Some(after);
            }
            _ => {
                return Err(InstallError::InvalidRequest(
                    "the query takes platform, status, limit and cursor",
                ));
            }
        }
    }
    Ok(parsed)
}
