//! The double's configuration, and the Shoprenter app it can play the
//! platform's side of.

use std::time::Duration;

/// How the double behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoubleConfig {
    /// The add-on's Shoptet client id. Default `"double-client-id"`.
    pub shoptet_client_id: String,
    /// The add-on's Shoptet client secret; `None` means the partner has none
    /// and any presented secret is ignored. Default `Some("double-client-secret")`.
    pub shoptet_client_secret: Option<String>,
    /// The registered install URL. `None` (default) accepts any
    /// `redirect_uri`; `Some` requires an exact match.
    pub shoptet_redirect_uri: Option<String>,
    /// Lifetime of Shoptet API access tokens. Default 1800 s.
    pub api_token_lifetime: Duration,
    /// Lifetime of Shoptet install codes. Default 300 s.
    pub code_lifetime: Duration,
    /// Lifetime of Shoprenter access tokens. Default 3600 s.
    pub shoprenter_token_lifetime: Duration,
    /// Where the Shoptet control API delivers add-on events (the add-on's
    /// registered webhook URL). `None` (default): the controls only change
    /// state.
    pub shoptet_webhook_url: Option<String>,
    /// The key Shoptet signs webhook deliveries with (lowercase hex
    /// HMAC-SHA1 of the body in `Shoptet-Webhook-Signature`). `None`
    /// (default): deliveries carry no signature. Only for these add-on
    /// events: ordinary webhooks are signed with the key
    /// `POST /api/webhooks/renew-signature-key` made.
    pub shoptet_webhook_key: Option<String>,
    /// The Shoprenter platform app the Shoprenter controls install and
    /// uninstall. `None` (default).
    pub shoprenter_app: Option<ShoprenterApp>,
    /// Drops the Shoptet API's leaky bucket of one e-shop holds before it
    /// refuses requests (see the crate docs). Default 200, as Shoptet's.
    pub shoptet_bucket_capacity: u32,
    /// Drops the Shoptet API's bucket leaks per second. Default 10, as
    /// Shoptet's. 0: it never drains, and refusals carry no `Retry-After`.
    pub shoptet_bucket_drain_per_second: u32,
    /// Shoprenter API requests one shop accepts within a sliding second.
    /// Default 3, as Shoprenter's.
    pub shoprenter_requests_per_second: u32,
    /// One webhook signature key for every installation of the add-on,
    /// instead of one per installation. Shoptet hands the key out to a call
    /// made with one installation's API token, which suggests a key per
    /// installation (the double's default, `false`), but does not say so:
    /// were it per add-on, a renew by one installation would replace every
    /// installation's key. `true` plays that reading, so the broker can be
    /// tested against either.
    pub signature_key_per_addon: bool,
    /// The gap between attempts of an ordinary webhook notification.
    /// Default 15 minutes, as Shoptet's (second-hand); tests set a few
    /// milliseconds.
    pub webhook_retry_gap: Duration,
    /// How long an asynchronous job (`POST /api/products/snapshot`) takes
    /// before it is done and `job:finished` is delivered. Default 1 s.
    pub job_duration: Duration,
}

/// A Shoprenter platform app as registered with Shoprenter: its
/// credentials, the scopes it is granted, and where Shoprenter sends the
/// merchant's browser on install and uninstall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShoprenterApp {
    /// The app's ClientId.
    pub client_id: String,
    /// The app's ClientSecret: its credentials, and the key of the `hmac`
    /// on the install and uninstall redirects.
    pub client_secret: String,
    /// What the app's tokens grant in a shop it is installed in.
    pub scopes: Vec<String>,
    /// The app's RedirectUri (its install URL).
    pub redirect_uri: String,
    /// The app's UninstallUri.
    pub uninstall_uri: String,
}

impl Default for DoubleConfig {
    fn default() -> Self {
        DoubleConfig {
            shoptet_client_id: "double-client-id".to_owned(),
            shoptet_client_secret: Some("double-client-secret".to_owned()),
            shoptet_redirect_uri: None,
            api_token_lifetime: Duration::from_secs(1800),
            code_lifetime: Duration::from_secs(300),
            shoprenter_token_lifetime: Duration::from_secs(3600),
            shoptet_webhook_url: None,
            shoptet_webhook_key: None,
            shoprenter_app: None,
            shoptet_bucket_capacity: 200,
            shoptet_bucket_drain_per_second: 10,
            shoprenter_requests_per_second: 3,
            signature_key_per_addon: false,
            webhook_retry_gap: Duration::from_secs(15 * 60),
            job_duration: Duration::from_secs(1),
        }
    }
}
