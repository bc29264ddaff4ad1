//! Sandbox platforms: the platform double in-process, and the configuration
//! that points the broker at it.

use std::collections::HashMap;

use platform_double::{DoubleConfig, PlatformDouble};

pub const SANDBOX_ESHOP_ID: u64 = 222651;
pub const SANDBOX_SHOPRENTER_SHOP: &str = "demo-shop";
const SANDBOX_SHOPRENTER_CLIENT_ID: &str = "sandbox-app";
const SANDBOX_SHOPRENTER_CLIENT_SECRET: &str = "sandbox-app-secret-not-for-production";

pub struct Sandbox {
    pub double: PlatformDouble,
    env: HashMap<&'static str, String>,
}

impl Sandbox {
    pub async fn start(broker_url: &str) -> Self {
        let double = PlatformDouble::start_with(DoubleConfig::default()).await;
        double.register_shoprenter_client(
            SANDBOX_SHOPRENTER_SHOP,
            SANDBOX_SHOPRENTER_CLIENT_ID,
            SANDBOX_SHOPRENTER_CLIENT_SECRET,
            &["product:read", "order:read"],
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
        ]);
        if let Some(secret) = config.shoptet_client_secret {
            env.insert("SHOPTET_CLIENT_SECRET", secret);
        }
        Self { double, env }
    }

    pub fn env(&self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }

    /// What to paste to see the whole flow: an install, a token, an API call.
    pub fn try_it(&self, broker_url: &str) -> String {
        let code = self.double.issue_install_code(SANDBOX_ESHOP_ID);
        let token_url = format!("{broker_url}/tokens/shoptet/{SANDBOX_ESHOP_ID}");
        format!(
            "Sandbox platforms (platform double): {double}\n\
             Try it (the install code is single-use; restart for a new one):\n\
             \x20 curl -s '{broker_url}/shoptet/install?code={code}'\n\
             \x20 curl -s {token_url}\n\
             \x20 curl -s -H \"Shoptet-Access-Token: $(curl -s {token_url} | sed -E 's/.*\"access_token\":\"([^\"]+)\".*/\\1/')\" {api}/eshop\n\
             Shoprenter: curl -s {broker_url}/tokens/shoprenter/{SANDBOX_SHOPRENTER_SHOP}",
            double = self.double.base_url(),
            api = self.double.shoptet_api_url(),
        )
    }
}
