//! Sandbox platforms: the platform double in-process, and the configuration
//! that points the broker at it.

use std::collections::HashMap;

use platform_double::{DoubleConfig, PlatformDouble, ShoprenterApp};

pub const SANDBOX_ESHOP_ID: u64 = 222651;
pub const SANDBOX_SHOPRENTER_SHOP: &str = "demo-shop";
const SANDBOX_SHOPRENTER_CLIENT_ID: &str = "sandbox-app";
const SANDBOX_SHOPRENTER_CLIENT_SECRET: &str = "sandbox-app-secret-not-for-production";
const SANDBOX_SHOPRENTER_SCOPES: [&str; 2] = ["product:read", "order:read"];
/// The e-shop events the sandbox registers for every install.
const SANDBOX_WEBHOOK_EVENTS: &str = "order:create,order:paid,job:finished";
/// Signs the double's webhooks; the broker verifies them with it.
const SANDBOX_WEBHOOK_KEY: &str = "sandbox-webhook-key-not-for-production";

pub struct Sandbox {
    pub double: PlatformDouble,
    env: HashMap<&'static str, String>,
}

impl Sandbox {
    pub async fn start(broker_url: &str) -> Self {
        // The double delivers its lifecycle events to this broker: Shoptet's
        // signed webhooks, Shoprenter's signed app redirects.
        let double = PlatformDouble::start_with(DoubleConfig {
            shoptet_webhook_url: Some(format!("{broker_url}/shoptet/webhook")),
            shoptet_webhook_key: Some(SANDBOX_WEBHOOK_KEY.to_owned()),
            shoprenter_app: Some(ShoprenterApp {
                client_id: SANDBOX_SHOPRENTER_CLIENT_ID.to_owned(),
                client_secret: SANDBOX_SHOPRENTER_CLIENT_SECRET.to_owned(),
                scopes: SANDBOX_SHOPRENTER_SCOPES.map(str::to_owned).to_vec(),
                redirect_uri: format!("{broker_url}/shoprenter/install"),
                uninstall_uri: format!("{broker_url}/shoprenter/uninstall"),
            }),
            // Seconds, not Shoptet's 15 minutes, so a stopped broker's
            // missed deliveries come back while one watches.
            webhook_retry_gap: std::time::Duration::from_secs(10),
            ..DoubleConfig::default()
        })
        .await;
        // The app is already in the demo shop on the platform's side (an
        // installation that predates the broker, ready to be imported); the
        // double's install control registers it again all the same.
        double.register_shoprenter_client(
            SANDBOX_SHOPRENTER_SHOP,
            SANDBOX_SHOPRENTER_CLIENT_ID,
            SANDBOX_SHOPRENTER_CLIENT_SECRET,
            &SANDBOX_SHOPRENTER_SCOPES,
        );
        let config = double.config().clone();
        let mut env = HashMap::from([
            ("SHOPTET_OAUTH_URL", double.shoptet_oauth_url()),
            ("SHOPTET_API_URL", double.shoptet_api_url()),
            ("SHOPTET_CLIENT_ID", config.shoptet_client_id),
            (
                "SHOPTET_REDIRECT_URI",
                format!("{broker_url}/shoptet/install"),
            ),
            ("SHOPRENTER_OAUTH_URL", double.shoprenter_oauth_url()),
            (
                "SHOPRENTER_API_URL",
                format!("{}/shoprenter-api/{{shop}}/api", double.base_url()),
            ),
            (
                "SHOPRENTER_CLIENT_ID",
                SANDBOX_SHOPRENTER_CLIENT_ID.to_owned(),
            ),
            (
                "SHOPRENTER_CLIENT_SECRET",
                SANDBOX_SHOPRENTER_CLIENT_SECRET.to_owned(),
            ),
            ("SHOPTET_WEBHOOK_KEY", SANDBOX_WEBHOOK_KEY.to_owned()),
            // E-shop webhooks: registered for every install (overridden by
            // SHOPTET_WEBHOOK_EVENTS; blank turns them off).
            ("SHOPTET_WEBHOOK_EVENTS", SANDBOX_WEBHOOK_EVENTS.to_owned()),
            (
                "SHOPTET_WEBHOOK_URL",
                format!("{broker_url}/shoptet/eshop-webhook"),
            ),
        ]);
        if let Some(secret) = config.shoptet_client_secret {
            env.insert("SHOPTET_CLIENT_SECRET", secret);
        }
        Self { double, env }
    }

    pub fn env(&self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }

    /// What to paste to see the whole flow: an install, a token, an API
    /// call; the add-on's lifecycle, each step a signed webhook from the
    /// double; the Shoprenter app's install and uninstall redirects.
    pub fn try_it(&self, broker_url: &str) -> String {
        let code = self.double.issue_install_code(SANDBOX_ESHOP_ID);
        let token_url = format!("{broker_url}/tokens/shoptet/{SANDBOX_ESHOP_ID}");
        let shoptet_control = format!("{}/shoptet/{SANDBOX_ESHOP_ID}", self.double.control_url());
        let shoprenter_control = format!(
            "{}/shoprenter/{SANDBOX_SHOPRENTER_SHOP}",
            self.double.control_url()
        );
        format!(
            "Sandbox platforms (platform double): {double}\n\
             Try it (the install code is single-use; restart for a new one):\n\
             \x20 curl -s '{broker_url}/shoptet/install?code={code}'\n\
             \x20 curl -s {token_url}\n\
             \x20 curl -s -H \"Shoptet-Access-Token: $(curl -s {token_url} | sed -E 's/.*\"access_token\":\"([^\"]+)\".*/\\1/')\" {api}/eshop\n\
             The same with the shop-token CLI (cargo install --path client --features cli):\n\
             \x20 shop-token token shoptet {SANDBOX_ESHOP_ID} --broker {broker_url}\n\
             \x20 shop-token call shoptet {SANDBOX_ESHOP_ID} GET /eshop --broker {broker_url}\n\
             Lifecycle (the double changes the add-on's state, then sends the broker the signed webhook):\n\
             \x20 curl -s -X POST {shoptet_control}/suspend\n\
             \x20 curl -s -X POST {shoptet_control}/approve\n\
             \x20 curl -s -X POST {shoptet_control}/uninstall\n\
             \x20 curl -s {broker_url}/installations/shoptet/{SANDBOX_ESHOP_ID}\n\
             Shoprenter (the double redirects to the broker with a signed query):\n\
             \x20 curl -sL {shoprenter_control}/install\n\
             \x20 curl -s {broker_url}/tokens/shoprenter/{SANDBOX_SHOPRENTER_SHOP}\n\
             \x20 curl -sL {shoprenter_control}/uninstall\n\
             E-shop webhooks (the install registered {events}; an order is delivered signed to the broker, which forwards it as a `Shoptet Webhook` event):\n\
             \x20 curl -s {shoptet_control}/webhooks\n\
             \x20 curl -s -X POST {shoptet_control}/orders\n\
             Events (embedded store): each event is printed below as an `event: {{...}}` line; with --events-url URL it is also delivered there, signed (docs/events.md)",
            events = SANDBOX_WEBHOOK_EVENTS,
            double = self.double.base_url(),
            api = self.double.shoptet_api_url(),
        )
    }
}
