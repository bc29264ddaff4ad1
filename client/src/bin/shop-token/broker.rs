//! The broker the command line names: broker-local or API Gateway over
//! HTTP, or the token-vendor function invoked directly.

use std::time::Duration;

use shop_token_client::protocol::loopback::is_loopback_host;
use shop_token_client::{
    ClientError, HttpTransport, LambdaTransport, SecretString, Shop, Transport, VendAnswer,
};

use crate::args::BrokerAt;
use crate::outcome::{Exit, Failure};

/// One of the client's transports, chosen at run time.
pub enum Broker {
    Http(HttpTransport),
    Function(LambdaTransport),
}

impl Broker {
    /// - `--function`: direct invocation with the standard AWS environment;
    /// - `--broker` with `SHOP_TOKEN_BEARER_TOKEN` set: HTTP with that bearer
    ///   token (broker-local `--allow-remote`);
    /// - `--broker https://…`: SigV4 with the standard AWS environment;
    /// - `--broker http://<loopback>`: plain HTTP (broker-local).
    ///
    /// Plain `http://` to another host is refused: the answer is a token.
    pub async fn connect(at: &BrokerAt) -> Result<Self, (Exit, Failure)> {
        let usage = |message: String| (Exit::Usage, Failure::new("usage", message));
        match at {
            BrokerAt::Function(name) => Ok(Broker::Function(LambdaTransport::from_env(name).await)),
            BrokerAt::Url(url) => {
                let transport =
                    HttpTransport::new(url).map_err(|error| usage(format!("--broker: {error}")))?;
                if let Some(bearer) = std::env::var("SHOP_TOKEN_BEARER_TOKEN")
                    .ok()
                    .filter(|bearer| !bearer.is_empty())
                {
                    return Ok(Broker::Http(transport.with_bearer_token(bearer)));
                }
                let parsed = reqwest::Url::parse(url).expect("HttpTransport checked the URL");
                if parsed.scheme() == "https" {
                    let signer = shop_token_client::SigV4Signer::from_env()
                        .await
                        .map_err(|error| crate::outcome::of_token_error(&error))?;
                    return Ok(Broker::Http(transport.with_sigv4(signer)));
                }
                if is_loopback_host(parsed.host_str().unwrap_or_default()) {
                    Ok(Broker::Http(transport))
                } else {
                    Err(usage(
                        "--broker: plain http:// only to a loopback host (broker-local); use https:// for the stack's API, or set SHOP_TOKEN_BEARER_TOKEN for broker-local --allow-remote".into(),
                    ))
                }
            }
        }
    }
}

impl Transport for Broker {
    async fn vend(
        &self,
        shop: &Shop,
        min_ttl: Option<Duration>,
        stale_token: Option<&SecretString>,
    ) -> Result<VendAnswer, ClientError> {
        match self {
            Broker::Http(transport) => transport.vend(shop, min_ttl, stale_token).await,
            Broker::Function(transport) => transport.vend(shop, min_ttl, stale_token).await,
        }
    }
}

/// The vendor's success JSON, as `token` prints it (the token included:
/// that is what the command is for).
pub fn answer_json(answer: &VendAnswer) -> String {
    serde_json::to_string(&answer.to_response()).expect("strings and numbers serialize")
}
