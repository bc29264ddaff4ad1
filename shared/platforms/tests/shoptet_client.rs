//! `ShoptetClient` over real HTTP against the platform double: every
//! documented outcome of the code exchange, getAccessToken and the API maps
//! to one typed result, and no error ever renders a code, token or secret.

mod common;

use std::time::{Duration, SystemTime};

use broker_domain::model::ShoptetInstallation;
use broker_domain::secret::{
    ApiAccessToken, ClientSecret, ExposeSecret, InstallCode, OAuthAccessToken,
};
use broker_platforms::shoptet::{AddonCredentials, ShoptetClient, ShoptetConfig, ShoptetError};
use broker_platforms::upstream::{TransportError, UpstreamFailure};
use platform_double::{DoubleConfig, Endpoint, Fault, InstallationState, PlatformDouble};

use common::{assert_about_from_now, http_client, impatient_http_client, upstream};

const ESHOP: u64 = 222_651;
const REDIRECT_URI: &str = "https://broker.example/shoptet/install";
const API_TOKEN_LIFETIME: Duration = Duration::from_secs(600);

/// One double, one client, and every secret handed around so far.
struct Fixture {
    double: PlatformDouble,
    client: ShoptetClient,
    addon: AddonCredentials,
    secrets: Vec<String>,
}

impl Fixture {
    async fn start() -> Self {
        Self::start_with(http_client(), None).await
    }

    /// `client_secret` overrides the (correct) secret the double expects.
    async fn start_with(http: reqwest::Client, client_secret: Option<&str>) -> Self {
        let double = PlatformDouble::start_with(DoubleConfig {
            api_token_lifetime: API_TOKEN_LIFETIME,
            ..DoubleConfig::default()
        })
        .await;
        let expected_secret = double
            .config()
            .shoptet_client_secret
            .clone()
            .expect("the default double has a client secret");
        let secret = client_secret.map_or(expected_secret.clone(), str::to_owned);
        let client = ShoptetClient::new(
            http,
            ShoptetConfig {
                oauth_url: upstream(&double.shoptet_oauth_url()),
                api_url: upstream(&double.shoptet_api_url()),
            },
        );
        let addon = AddonCredentials {
            client_id: double.config().shoptet_client_id.clone(),
            client_secret: Some(ClientSecret::new(secret.clone())),
        };
        Fixture {
            double,
            client,
            addon,
            secrets: vec![expected_secret, secret],
        }
    }

    fn issue_code(&mut self) -> InstallCode {
        let code = self.double.issue_install_code(ESHOP);
        self.secrets.push(code.clone());
        InstallCode::new(code)
    }

    async fn install(&mut self) -> ShoptetInstallation {
        let code = self.issue_code();
        let installation = self
            .client
            .exchange_code(&code, &self.addon, REDIRECT_URI)
            .await
            .expect("a fresh code is exchanged");
        self.secrets
            .push(installation.oauth_access_token.expose_secret().to_owned());
        installation
    }

    async fn mint(&mut self, oauth: &OAuthAccessToken) -> Result<ApiAccessToken, ShoptetError> {
        let grant = self.client.mint_api_token(oauth).await?;
        self.secrets
            .push(grant.access_token.expose_secret().to_owned());
        Ok(grant.access_token)
    }

    async fn api_token(&mut self) -> ApiAccessToken {
        let installation = self.install().await;
        self.mint(&installation.oauth_access_token)
            .await
            .expect("an active installation gets an API access token")
    }

    /// The error renders none of the codes, tokens and secrets seen so far.
    fn assert_leaks_nothing(&self, error: &ShoptetError) {
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        common::assert_leaks_nothing(error, &secrets);
    }
}

// ---------------------------------------------------------------- code exchange

#[tokio::test]
async fn a_fresh_code_is_exchanged_for_the_installation() {
    let mut fx = Fixture::start().await;
    let code = fx.issue_code();

    let installation = fx
        .client
        .exchange_code(&code, &fx.addon, REDIRECT_URI)
        .await
        .unwrap();

    assert_eq!(installation.eshop_id.get(), ESHOP);
    assert_eq!(
        Some(installation.oauth_access_token.expose_secret().to_owned()),
        fx.double.oauth_access_token(ESHOP)
    );
    assert_eq!(
        installation.eshop_url,
        "https://eshop-222651.myshoptet.test/"
    );
    assert_eq!(
        installation.contact_email.as_deref(),
        Some("owner-222651@example.test")
    );
    assert_eq!(installation.trial, Some(false));
    assert_eq!(fx.double.calls(Endpoint::ShoptetCodeExchange, "222651"), 1);
}

#[tokio::test]
async fn a_used_code_is_rejected_with_invalid_grant() {
    let mut fx = Fixture::start().await;
    let code = fx.issue_code();
    let installation = fx
        .client
        .exchange_code(&code, &fx.addon, REDIRECT_URI)
        .await
        .unwrap();
    fx.secrets
        .push(installation.oauth_access_token.expose_secret().to_owned());

    let error = fx
        .client
        .exchange_code(&code, &fx.addon, REDIRECT_URI)
        .await
        .unwrap_err();

    assert_eq!(
        error,
        ShoptetError::Upstream(UpstreamFailure::Rejected {
            status: 400,
            code: "invalid_grant".to_owned()
        })
    );
    assert!(!error.is_transient());
    fx.assert_leaks_nothing(&error);
}

#[tokio::test]
async fn a_wrong_client_secret_is_rejected_with_invalid_client() {
    let mut fx = Fixture::start_with(http_client(), Some("not-the-client-secret")).await;
    let code = fx.issue_code();

    let error = fx
        .client
        .exchange_code(&code, &fx.addon, REDIRECT_URI)
        .await
        .unwrap_err();

    assert_eq!(
        error,
        ShoptetError::Upstream(UpstreamFailure::Rejected {
            status: 401,
            code: "invalid_client".to_owned()
        })
    );
    assert_eq!(fx.double.oauth_access_token(ESHOP), None);
    fx.assert_leaks_nothing(&error);
}

#[tokio::test]
async fn a_truncated_json_answer_is_a_malformed_response() {
    let mut fx = Fixture::start().await;
    let code = fx.issue_code();
    fx.double
        .inject(Some(Endpoint::ShoptetCodeExchange), Fault::MalformedJson, 1);

    let error = fx
        .client
        .exchange_code(&code, &fx.addon, REDIRECT_URI)
        .await
        .unwrap_err();

    assert_eq!(
        error,
        ShoptetError::Upstream(UpstreamFailure::MalformedResponse { status: 200 })
    );
    assert!(error.is_transient());
    fx.assert_leaks_nothing(&error);
}

#[tokio::test]
async fn a_slow_oauth_server_is_a_transport_timeout() {
    let mut fx = Fixture::start_with(impatient_http_client(), None).await;
    let code = fx.issue_code();
    fx.double.set_latency(Duration::from_secs(1));

    let error = fx
        .client
        .exchange_code(&code, &fx.addon, REDIRECT_URI)
        .await
        .unwrap_err();

    assert_eq!(
        error,
        ShoptetError::Upstream(UpstreamFailure::Transport(TransportError::Timeout))
    );
    assert!(error.is_transient());
    fx.assert_leaks_nothing(&error);
}

#[tokio::test]
async fn an_unknown_status_without_an_error_code_is_a_generic_rejection() {
    let mut fx = Fixture::start().await;
    let code = fx.issue_code();
    // The double keeps any valid status, 418 included, with an HTML body.
    fx.double.inject(
        Some(Endpoint::ShoptetCodeExchange),
        Fault::ServerError(418),
        1,
    );

    let error = fx
        .client
        .exchange_code(&code, &fx.addon, REDIRECT_URI)
        .await
        .unwrap_err();

    assert_eq!(
        error,
        ShoptetError::Upstream(UpstreamFailure::Rejected {
            status: 418,
            code: "unrecognised".to_owned()
        })
    );
    assert!(!error.is_transient());
    fx.assert_leaks_nothing(&error);
}

// ---------------------------------------------------------------- getAccessToken

#[tokio::test]
async fn an_active_installation_mints_a_token_expiring_after_the_configured_lifetime() {
    let mut fx = Fixture::start().await;
    let installation = fx.install().await;

    let grant = fx
        .client
        .mint_api_token(&installation.oauth_access_token)
        .await
        .unwrap();

    assert_about_from_now(grant.expires_at, API_TOKEN_LIFETIME);
    let token = grant.access_token.expose_secret();
    assert!(token.starts_with("222651-a-"), "{} chars", token.len());
    assert!((38..=60).contains(&token.len()));
    assert_eq!(fx.double.live_api_tokens(ESHOP), 1);
}

#[tokio::test]
async fn a_sixth_live_token_is_refused_with_maximum_tokens_reached() {
    let mut fx = Fixture::start().await;
    let installation = fx.install().await;
    for _ in 0..5 {
        fx.mint(&installation.oauth_access_token).await.unwrap();
    }

    let error = fx.mint(&installation.oauth_access_token).await.unwrap_err();

    assert!(
        matches!(error, ShoptetError::MaximumTokensReached { .. }),
        "{error:?}"
    );
    assert_eq!(fx.double.live_api_tokens(ESHOP), 5);
    fx.assert_leaks_nothing(&error);
}

#[tokio::test]
async fn a_suspended_addon_gets_addon_suspended() {
    let mut fx = Fixture::start().await;
    let installation = fx.install().await;
    fx.double
        .set_installation_state(ESHOP, InstallationState::Suspended);

    let error = fx.mint(&installation.oauth_access_token).await.unwrap_err();

    assert_eq!(error, ShoptetError::AddonSuspended);
    assert!(!error.is_transient());
    fx.assert_leaks_nothing(&error);
}

#[tokio::test]
async fn a_not_installed_addon_gets_addon_not_installed() {
    let mut fx = Fixture::start().await;
    let installation = fx.install().await;
    fx.double
        .set_installation_state(ESHOP, InstallationState::NotInstalled);

    let error = fx.mint(&installation.oauth_access_token).await.unwrap_err();

    assert_eq!(error, ShoptetError::AddonNotInstalled);
    fx.assert_leaks_nothing(&error);
}

#[tokio::test]
async fn an_unapproved_installation_gets_addon_not_approved() {
    let mut fx = Fixture::start().await;
    let installation = fx.install().await;
    fx.double
        .set_installation_state(ESHOP, InstallationState::NotApproved);

    let error = fx.mint(&installation.oauth_access_token).await.unwrap_err();

    assert_eq!(error, ShoptetError::AddonNotApproved);
    fx.assert_leaks_nothing(&error);
}

#[tokio::test]
async fn an_uninstalled_addon_gets_installation_revoked() {
    let mut fx = Fixture::start().await;
    let installation = fx.install().await;
    fx.double.uninstall(ESHOP);

    let error = fx.mint(&installation.oauth_access_token).await.unwrap_err();

    assert_eq!(error, ShoptetError::InstallationRevoked);
    assert!(!error.is_transient());
    fx.assert_leaks_nothing(&error);
}

#[tokio::test]
async fn a_bare_401_from_get_access_token_is_unexplained_not_a_revocation() {
    let mut fx = Fixture::start().await;
    let installation = fx.install().await;
    // A 401 with an HTML body (a proxy's, say): no `invalid_token` code.
    fx.double.inject(
        Some(Endpoint::ShoptetGetAccessToken),
        Fault::ServerError(401),
        1,
    );

    let error = fx.mint(&installation.oauth_access_token).await.unwrap_err();

    assert_eq!(error, ShoptetError::UnexplainedUnauthorized);
    assert!(!error.is_transient());
    fx.assert_leaks_nothing(&error);
}

#[tokio::test]
async fn rate_limiting_is_reported_with_its_retry_after() {
    let mut fx = Fixture::start().await;
    let installation = fx.install().await;
    fx.double.inject(
        Some(Endpoint::ShoptetGetAccessToken),
        Fault::RateLimited {
            retry_after_secs: 7,
        },
        1,
    );

    let error = fx.mint(&installation.oauth_access_token).await.unwrap_err();

    assert_eq!(
        error,
        ShoptetError::Upstream(UpstreamFailure::RateLimited {
            retry_after: Some(Duration::from_secs(7))
        })
    );
    assert!(error.is_transient());
    fx.assert_leaks_nothing(&error);
}

#[tokio::test]
async fn a_server_error_is_reported_as_transient() {
    let mut fx = Fixture::start().await;
    let installation = fx.install().await;
    fx.double.inject(
        Some(Endpoint::ShoptetGetAccessToken),
        Fault::ServerError(503),
        1,
    );

    let error = fx.mint(&installation.oauth_access_token).await.unwrap_err();

    assert_eq!(
        error,
        ShoptetError::Upstream(UpstreamFailure::ServerError { status: 503 })
    );
    assert!(error.is_transient());
    // No silent retry: each getAccessToken call may create a live token.
    assert_eq!(
        fx.double.calls(Endpoint::ShoptetGetAccessToken, "222651"),
        1
    );
    fx.assert_leaks_nothing(&error);
}

#[tokio::test]
async fn a_dropped_connection_is_a_transport_unreachable() {
    let mut fx = Fixture::start().await;
    let installation = fx.install().await;
    fx.double
        .inject(Some(Endpoint::ShoptetGetAccessToken), Fault::Drop, 1);

    let error = fx.mint(&installation.oauth_access_token).await.unwrap_err();

    assert_eq!(
        error,
        ShoptetError::Upstream(UpstreamFailure::Transport(TransportError::Unreachable))
    );
    assert!(error.is_transient());
    assert_eq!(
        fx.double.calls(Endpoint::ShoptetGetAccessToken, "222651"),
        1
    );
    fx.assert_leaks_nothing(&error);
}

// ---------------------------------------------------------------- API

#[tokio::test]
async fn a_live_token_reads_the_eshop() {
    let mut fx = Fixture::start().await;
    let token = fx.api_token().await;

    let data = fx.client.get_api(&token, &["eshop"]).await.unwrap();

    assert_eq!(
        data["contactInformation"]["eshopName"],
        "Double e-shop 222651"
    );
    assert_eq!(fx.double.calls(Endpoint::ShoptetApi, "222651"), 1);
}

#[tokio::test]
async fn an_expired_token_gets_expired_token() {
    let mut fx = Fixture::start().await;
    let token = fx.api_token().await;
    fx.double.expire_api_tokens(ESHOP);

    let error = fx.client.get_api(&token, &["eshop"]).await.unwrap_err();

    assert_eq!(error, ShoptetError::ExpiredToken);
    assert!(!error.is_transient());
    fx.assert_leaks_nothing(&error);
}

#[tokio::test]
async fn an_unknown_token_gets_invalid_token() {
    let mut fx = Fixture::start().await;
    let unknown = "222651-a-thisisnotatokenthedoubleeverissued";
    fx.secrets.push(unknown.to_owned());

    let error = fx
        .client
        .get_api(&ApiAccessToken::new(unknown), &["eshop"])
        .await
        .unwrap_err();

    assert_eq!(error, ShoptetError::InvalidToken);
    fx.assert_leaks_nothing(&error);
}

#[tokio::test]
async fn a_resource_outside_the_tokens_rights_gets_token_has_no_rights() {
    let mut fx = Fixture::start().await;
    let token = fx.api_token().await;

    let error = fx.client.get_api(&token, &["orders"]).await.unwrap_err();

    assert_eq!(error, ShoptetError::TokenHasNoRights);
    assert!(!error.is_transient());
    fx.assert_leaks_nothing(&error);
}

#[tokio::test]
async fn an_expires_in_beyond_any_clock_or_not_a_whole_number_never_panics() {
    let mut fx = Fixture::start().await;
    let installation = fx.install().await;
    let huge =
        r#"{"access_token": "api-token-huge-0123456789", "expires_in": 18446744073709551615}"#;
    fx.double.inject(
        Some(Endpoint::ShoptetGetAccessToken),
        Fault::Answer(huge),
        1,
    );

    let before = SystemTime::now();
    let grant = fx
        .client
        .mint_api_token(&installation.oauth_access_token)
        .await
        .expect("a huge lifetime is clamped, not a failure");
    assert!(
        grant.expires_at
            <= before + broker_platforms::upstream::MAX_EXPIRES_IN + Duration::from_secs(1)
    );

    for odd in [
        r#"{"access_token": "api-token-odd-0123456789", "expires_in": -1}"#,
        r#"{"access_token": "api-token-odd-0123456789", "expires_in": 1800.5}"#,
        r#"{"access_token": "api-token-odd-0123456789", "expires_in": "1800"}"#,
        r#"{"access_token": "api-token-odd-0123456789"}"#,
    ] {
        fx.double
            .inject(Some(Endpoint::ShoptetGetAccessToken), Fault::Answer(odd), 1);
        let error = fx
            .client
            .mint_api_token(&installation.oauth_access_token)
            .await
            .unwrap_err();
        assert_eq!(
            error,
            ShoptetError::Upstream(UpstreamFailure::MalformedResponse { status: 200 }),
            "{odd}"
        );
    }
}

#[tokio::test]
async fn minted_expiry_is_counted_from_sending_so_it_is_never_late() {
    let mut fx = Fixture::start().await;
    let installation = fx.install().await;
    let before = SystemTime::now();

    let grant = fx
        .client
        .mint_api_token(&installation.oauth_access_token)
        .await
        .unwrap();

    assert!(grant.expires_at >= before + API_TOKEN_LIFETIME);
    assert!(grant.expires_at <= SystemTime::now() + API_TOKEN_LIFETIME);
}
