//! Every secret type formats without its value, whichever way it is printed.

use broker_domain::model::{ShoprenterCredentials, ShoptetInstallation};
use broker_domain::secret::{
    ApiAccessToken, ClientSecret, ExposeSecret, InstallCode, OAuthAccessToken,
};

const SECRET: &str = "s3cr3t-VALUE-that-must-never-be-printed-0123456789";

fn assert_hidden(rendered: &str) {
    // Not even a recognisable slice of it.
    test_support::LeakScanner::new([SECRET]).assert_absent("a rendering", rendered);
}

#[test]
fn every_secret_type_redacts_debug_and_display() {
    let rendered = [
        format!(
            "{:?} {}",
            InstallCode::new(SECRET),
            InstallCode::new(SECRET)
        ),
        format!(
            "{:?} {}",
            OAuthAccessToken::new(SECRET),
            OAuthAccessToken::new(SECRET)
        ),
        format!(
            "{:?} {}",
            ApiAccessToken::new(SECRET),
            ApiAccessToken::new(SECRET)
        ),
        format!(
            "{:?} {}",
            ClientSecret::new(SECRET),
            ClientSecret::new(SECRET)
        ),
        format!("{:#?}", ApiAccessToken::new(SECRET)),
    ];
    for line in &rendered {
        assert_hidden(line);
    }
    assert!(rendered[0].starts_with("InstallCode([redacted]"));
}

#[test]
fn structs_holding_secrets_redact_them_too() {
    let installation = ShoptetInstallation {
        oauth_access_token: OAuthAccessToken::new(SECRET),
        eshop_id: "222651".parse().unwrap(),
        eshop_url: "https://shop.example/".into(),
        contact_email: None,
        trial: None,
    };
    let credentials = ShoprenterCredentials {
        client_id: "public-id".into(),
        client_secret: ClientSecret::new(SECRET),
    };
    assert_hidden(&format!("{installation:?} {installation:#?}"));
    assert_hidden(&format!("{credentials:?}"));
}

#[test]
fn stored_secrets_round_trip_through_serialization() {
    let credentials = ShoprenterCredentials {
        client_id: "public-id".into(),
        client_secret: ClientSecret::new(SECRET),
    };
    let json = serde_json::to_string(&credentials).unwrap();
    let back: ShoprenterCredentials = serde_json::from_str(&json).unwrap();
    assert_eq!(back.client_secret.expose_secret(), SECRET);
}
