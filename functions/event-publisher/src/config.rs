//! The publisher's configuration, whole or not at all.

use broker_events::EndpointUrl;
use broker_runtime::env::{ConfigError, Env, optional, required};
use broker_runtime::metrics::namespace_from_env;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublisherConfig {
    /// `EVENT_BUS_NAME`: the bus's name or ARN.
    pub bus: String,
    pub webhook: Option<WebhookConfig>,
    pub namespace: String,
}

/// `EVENT_WEBHOOK_URL` and `EVENT_WEBHOOK_SECRET_ID`: both or neither.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    pub url: EndpointUrl,
    pub secret_id: String,
}

pub const SECRET_VARIABLE: &str = "EVENT_WEBHOOK_SECRET_ID";

impl PublisherConfig {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let bus = required(env, "EVENT_BUS_NAME")?;
        let webhook = match optional(env, "EVENT_WEBHOOK_URL") {
            None => None,
            Some(url) => Some(WebhookConfig {
                url: EndpointUrl::parse(&url)
                    .map_err(|problem| ConfigError::new("EVENT_WEBHOOK_URL", problem))?,
                secret_id: required(env, SECRET_VARIABLE)?,
            }),
        };
        Ok(Self {
            bus,
            webhook,
            namespace: namespace_from_env(env),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Env {
        move |name: &str| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        }
    }

    #[test]
    fn the_bus_is_required_and_an_endpoint_comes_with_its_secret() {
        assert!(PublisherConfig::from_env(&env(&[])).is_err());
        let config = PublisherConfig::from_env(&env(&[("EVENT_BUS_NAME", "b")])).unwrap();
        assert_eq!((config.bus.as_str(), config.webhook), ("b", None));
        let without_secret = env(&[
            ("EVENT_BUS_NAME", "b"),
            ("EVENT_WEBHOOK_URL", "https://backend.example/events"),
        ]);
        let error = PublisherConfig::from_env(&without_secret).unwrap_err();
        assert!(error.to_string().contains(SECRET_VARIABLE), "{error}");
        let plain_http = env(&[
            ("EVENT_BUS_NAME", "b"),
            ("EVENT_WEBHOOK_URL", "http://backend.example/events"),
            ("EVENT_WEBHOOK_SECRET_ID", "arn:secret"),
        ]);
        assert!(PublisherConfig::from_env(&plain_http).is_err());
    }
}
