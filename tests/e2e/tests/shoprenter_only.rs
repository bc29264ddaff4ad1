//! The Shoprenter-only pass of scripts/e2e.sh: both functions under `cargo
//! lambda watch` with a Shoprenter app configured and no Shoptet setting at
//! all (`ShoptetOAuthUrl`/`ShoptetClientId` left empty). They start; the
//! app's signed install redirect installs the shop; the vendor serves its
//! token; Shoptet's routes and vends answer `not_configured`; the signed
//! uninstall retires the shop.

use broker_e2e::{note_secret, required};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use broker_domain::secret::ClientSecret;
use broker_platforms::shoprenter_app;
use reqwest::StatusCode;
use serde_json::{Value, json};

struct Pass {
    client: reqwest::Client,
    watch: String,
    shop: String,
    app_secret: ClientSecret,
    known_secrets: String,
}

impl Pass {
    /// The app's redirect to `route`, signed as Shoprenter signs it.
    async fn redirect(&self, route: &str, signed_at: u64) -> (StatusCode, String) {
        let message = format!(
            "shopname={}&code=e2e-{signed_at}&timestamp={signed_at}",
            self.shop
        );
        let hmac = shoprenter_app::sign(&self.app_secret, &message);
        note_secret(&self.known_secrets, &hmac);
        let url = format!(
            "{}/lambda-url/install-callback/shoprenter/{route}?{message}&hmac={hmac}",
            self.watch
        );
        let response = self
            .client
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|error| panic!("GET /shoprenter/{route}: {error}"));
        let status = response.status();
        (status, response.text().await.unwrap_or_default())
    }

    /// A direct invocation of the vendor: (function error's type, payload).
    async fn vend(
        &self,
        platform: &str,
        shop: &str,
        stale: Option<&str>,
    ) -> (Option<String>, Value) {
        let url = format!(
            "{}/2015-03-31/functions/token-vendor/invocations",
            self.watch
        );
        let response = self
            .client
            .post(&url)
            .json(&match stale {
                None => json!({"platform": platform, "shop": shop}),
                Some(token) => json!({"platform": platform, "shop": shop, "stale_token": token}),
            })
            .send()
            .await
            .unwrap_or_else(|error| panic!("invoke token-vendor: {error}"));
        let failed = !response.status().is_success();
        let payload: Value = response.json().await.expect("a JSON payload");
        let error_type = failed.then(|| payload["errorType"].as_str().unwrap_or("?").to_owned());
        (error_type, payload)
    }
}

#[tokio::test]
async fn a_shoprenter_only_stack_installs_vends_and_uninstalls_and_has_no_shoptet() {
    let pass = Pass {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(300))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        watch: required("E2E_WATCH_URL"),
        shop: required("E2E_SHOPRENTER_SHOP"),
        app_secret: ClientSecret::new(required("E2E_SHOPRENTER_CLIENT_SECRET")),
        known_secrets: required("E2E_KNOWN_SECRETS"),
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();

    let (status, page) = pass.redirect("install", now).await;
    assert_eq!(status, StatusCode::OK, "1. signed install: {page}");
    println!("PASS 1. the app's signed install redirect: 200");

    let (error, token) = pass.vend("shoprenter", &pass.shop, None).await;
    assert_eq!(error, None, "2. vend: {}", token["errorType"]);
    assert_eq!(
        token["header_name"], "Authorization",
        "2. a Shoprenter token"
    );
    println!("PASS 2. invoke token-vendor for the Shoprenter shop: a Bearer token");

    let url = format!(
        "{}/lambda-url/install-callback/shoptet/install?code=e2e-no-shoptet",
        pass.watch
    );
    let response = pass
        .client
        .get(&url)
        .send()
        .await
        .expect("GET /shoptet/install");
    assert_eq!(
        response.status(),
        StatusCode::NOT_FOUND,
        "3. Shoptet install"
    );
    let body: Value = response.json().await.expect("a JSON error");
    assert_eq!(body["error"]["code"], "not_configured", "3. {body}");
    let (error, _) = pass.vend("shoptet", "222651", None).await;
    assert_eq!(error.as_deref(), Some("not_configured"), "3. Shoptet vend");
    println!("PASS 3. Shoptet's install and a Shoptet vend: not_configured");

    let (status, page) = pass.redirect("uninstall", now + 1).await;
    assert_eq!(status, StatusCode::OK, "4. signed uninstall: {page}");
    // Reported stale, so that the warm vendor looks past its memory (L1).
    let stale = token["access_token"].as_str().expect("an access_token");
    let (error, _) = pass.vend("shoprenter", &pass.shop, Some(stale)).await;
    assert_eq!(
        error.as_deref(),
        Some("not_installed"),
        "4. vend after uninstall"
    );
    println!("PASS 4. the signed uninstall: 200, then the vendor answers not_installed");
}
