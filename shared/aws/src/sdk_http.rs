//! The AWS SDK's HTTP transport: reqwest on the process's one TLS
//! configuration ([`crate::tls`]).
//!
//! The SDK's default client builds its own rustls configuration from the
//! system's certificate directory; giving it this one instead means a single
//! trust store, built once from compiled-in roots, for every connection the
//! function opens. DynamoDB and Secrets Manager requests and answers are
//! small JSON documents, so bodies are sent and read whole.

use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;

/// The SDK's own default connect timeout, kept for every connector.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(3_100);

/// The SDK configuration of a function: the transport below, and, where the
/// Lambda environment already holds them, the region (`AWS_REGION`) and the
/// credentials (`AWS_ACCESS_KEY_ID`, …) read from it directly. Building the
/// default provider chains instead (profile, web identity, container and
/// IMDS providers, none used in Lambda) was the largest part of init's
/// memory. Elsewhere (no such variables) the default chains apply.
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    let mut loader = aws_config::from_env().http_client(http_client());
    if let Ok(region) = std::env::var("AWS_REGION") {
        loader = loader.region(aws_config::Region::new(region));
    }
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
        loader = loader.credentials_provider(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        );
    }
    loader.load().await
}

/// The HTTP client to give `aws_config` (`.http_client(…)`): one reqwest
/// client, so one connection pool, on [`crate::tls::client_config`].
pub fn http_client() -> SharedHttpClient {
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured((*crate::tls::client_config()).clone())
        .connect_timeout(CONNECT_TIMEOUT)
        // The SDK signs the exact request; a redirect would not be signed.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a reqwest client with a rustls configuration and static settings always builds");
    SharedHttpClient::new(ReqwestClient(client))
}

#[derive(Debug, Clone)]
struct ReqwestClient(reqwest::Client);

impl HttpClient for ReqwestClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(ReqwestConnector {
            client: self.0.clone(),
            read_timeout: settings.read_timeout(),
        })
    }
}

#[derive(Debug)]
struct ReqwestConnector {
    client: reqwest::Client,
    /// Applied to the whole exchange (the SDK's own client times the answer's
    /// head); the SDK sets none for DynamoDB and Secrets Manager by default.
    read_timeout: Option<Duration>,
}

impl HttpConnector for ReqwestConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.client.clone();
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let exchange = send(client, request);
            match read_timeout {
                None => exchange.await,
                Some(limit) => tokio::time::timeout(limit, exchange)
                    .await
                    .map_err(|elapsed| ConnectorError::timeout(elapsed.into()))?,
            }
        })
    }
}

async fn send(
    client: reqwest::Client,
    request: HttpRequest,
) -> Result<HttpResponse, ConnectorError> {
    let body = request
        .body()
        .bytes()
        .ok_or_else(|| ConnectorError::user("streaming request bodies are not supported".into()))?
        .to_vec();
    let request = request
        .try_into_http1x()
        .map_err(|error| ConnectorError::user(error.into()))?;
    let (parts, _) = request.into_parts();
    let response = client
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(connector_error)?;
    let mut answer = http::Response::builder().status(response.status());
    if let Some(headers) = answer.headers_mut() {
        headers.extend(response.headers().clone());
    }
    let bytes = response.bytes().await.map_err(connector_error)?;
    let answer = answer
        .body(SdkBody::from(bytes))
        .map_err(|error| ConnectorError::other(error.into(), None))?;
    HttpResponse::try_from(answer).map_err(|error| ConnectorError::other(error.into(), None))
}

/// Timeouts and broken connections are retried by the SDK; the rest is not.
fn connector_error(error: reqwest::Error) -> ConnectorError {
    if error.is_timeout() {
        ConnectorError::timeout(error.into())
    } else if error.is_connect() || error.is_request() || error.is_body() {
        ConnectorError::io(error.into())
    } else {
        ConnectorError::other(error.into(), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use broker_platforms::upstream::HttpSettings;

    #[test]
    fn the_sdk_transport_and_the_upstream_clients_share_one_tls_configuration() {
        let _upstream = HttpSettings::default().build_client();
        let _sdk = http_client();
        let _another_upstream = HttpSettings::default().build_client();

        assert_eq!(crate::tls::builds(), 1);
    }
}
