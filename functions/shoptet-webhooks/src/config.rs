//! The worker's configuration, read once per cold start: the vendor's
//! (it mints the installations' API tokens), the subscription, where
//! Shoptet delivers, the bus and the worker's own queue.

use broker_platforms::shoptet_eshop_webhooks::Subscription;
use broker_platforms::upstream::UpstreamUrl;
use broker_runtime::env::{self, ConfigError, Env};
use token_vendor::AwsVendorConfig;

#[derive(Debug, Clone)]
pub struct WebhooksConfig {
    /// `None`: no events configured (`SHOPTET_WEBHOOK_EVENTS` blank): the
    /// worker registers and reconciles nothing.
    pub subscription: Option<Subscription>,
    /// The receiving route's public URL (`SHOPTET_WEBHOOK_URL`).
    pub url: String,
}

impl WebhooksConfig {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let subscription = Subscription::parse(
            &env::optional(env, "SHOPTET_WEBHOOK_EVENTS").unwrap_or_default(),
            &env::optional(env, "SHOPTET_WEBHOOK_PAYLOAD").unwrap_or_default(),
        )
        .map_err(|error| ConfigError::new("SHOPTET_WEBHOOK_EVENTS", error.to_string()))?;
        let url = match &subscription {
            None => String::new(),
            Some(_) => {
                let url = env::optional(env, "SHOPTET_WEBHOOK_URL").ok_or_else(|| {
                    ConfigError::new(
                        "SHOPTET_WEBHOOK_URL",
                        "is required when events are configured",
                    )
                })?;
                // https, or http on loopback (a local run): what Shoptet is
                // told to call comes from configuration only.
                UpstreamUrl::parse(&url)
                    .map_err(|error| ConfigError::new("SHOPTET_WEBHOOK_URL", error.to_string()))?;
                url
            }
        };
        Ok(Self { subscription, url })
    }
}

/// The worker on AWS. Exists only whole.
#[derive(Debug, Clone)]
pub struct AwsWebhooksConfig {
    pub vendor: AwsVendorConfig,
    pub webhooks: WebhooksConfig,
    pub event_bus_name: String,
    pub queue_url: String,
}

impl AwsWebhooksConfig {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let required = |name: &'static str| {
            env::optional(env, name)
                .ok_or_else(|| ConfigError::new(name, "is required but not set"))
        };
        Ok(Self {
            vendor: AwsVendorConfig::from_env(env)?,
            webhooks: WebhooksConfig::from_env(env)?,
            event_bus_name: required("EVENT_BUS_NAME")?,
            queue_url: required("WEBHOOK_QUEUE_URL")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name: &str| {
            pairs
                .iter()
                .find(|(variable, _)| *variable == name)
                .map(|(_, value)| (*value).to_owned())
        }
    }

    #[test]
    fn conflicting_events_are_refused_at_start_up_with_the_pair_named() {
        let error = WebhooksConfig::from_env(&env(&[
            ("SHOPTET_WEBHOOK_EVENTS", "order:update,order:cancel"),
            (
                "SHOPTET_WEBHOOK_URL",
                "https://broker.example/shoptet/eshop-webhook",
            ),
        ]))
        .unwrap_err();
        assert_eq!(error.variable, "SHOPTET_WEBHOOK_EVENTS");
        assert!(
            error.to_string().contains("order:update and order:cancel"),
            "{error}"
        );
    }

    #[test]
    fn events_need_the_url_shoptet_delivers_to_and_no_events_need_nothing() {
        let error = WebhooksConfig::from_env(&env(&[("SHOPTET_WEBHOOK_EVENTS", "order:create")]))
            .unwrap_err();
        assert_eq!(error.variable, "SHOPTET_WEBHOOK_URL");
        let plain = WebhooksConfig::from_env(&env(&[
            ("SHOPTET_WEBHOOK_EVENTS", "order:create"),
            ("SHOPTET_WEBHOOK_URL", "http://example.com/hook"),
        ]));
        assert!(plain.is_err(), "http only on loopback");
        let off = WebhooksConfig::from_env(&env(&[])).unwrap();
        assert_eq!(off.subscription, None);
    }
}
