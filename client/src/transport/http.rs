//! The vendor's HTTP route: `broker-local` (optionally with a bearer token)
//! or the stack's API Gateway (SigV4, feature `http`).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use reqwest::{Client, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use shop_token_protocol::error::{ErrorBody, ErrorCode};
use shop_token_protocol::retry_after;

use super::port::{Transport, options_body};
#[cfg(feature = "http")]
use super::sigv4::SigV4Signer;
use crate::error::{ClientError, TransportError};
use crate::shop::Shop;
use crate::token::VendAnswer;

/// How long to wait for a connection to the broker.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a vend may take: the vendor waits up to 9 s for another
/// instance's refresh, plus its own upstream call; API Gateway gives up at 30 s.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// `POST {base}/tokens/{platform}/{shop}` with the JSON options.
///
/// - [`HttpTransport::new`]: plain HTTP, e.g. `broker-local` on
///   `http://127.0.0.1:8787`; [`with_bearer_token`](Self::with_bearer_token)
///   when it runs with `--allow-remote` and `BROKER_BEARER_TOKEN`.
/// - With the `http` feature, `HttpTransport::api_gateway` signs every
///   request with SigV4 (service `execute-api`) for the stack's HTTP API,
///   e.g. `https://abc123.execute-api.eu-central-1.amazonaws.com`.
///
/// ```
/// use shop_token_client::{HttpTransport, TokenClient};
///
/// let transport = HttpTransport::new("http://127.0.0.1:8787")?;
/// let client = TokenClient::new(transport);
/// # Ok::<(), shop_token_client::ClientError>(())
/// ```
#[derive(Clone)]
pub struct HttpTransport {
    /// Without a trailing slash.
    base: Arc<str>,
    client: Client,
    auth: Auth,
}

#[derive(Clone)]
enum Auth {
    None,
    Bearer(Arc<SecretString>),
    #[cfg(feature = "http")]
    SigV4(Arc<SigV4Signer>),
}

impl HttpTransport {
    /// The broker at `base_url` (`https`, or `http` to a loopback host
    /// such as `broker-local`; no credentials, query or fragment; a path
    /// such as an API stage is kept), without authentication.
    pub fn new(base_url: &str) -> Result<Self, ClientError> {
        let url = Url::parse(base_url)
            .map_err(|error| TransportError::with_cause("the broker URL is not a URL", &error))?;
        // Tokens and stale tokens travel in these answers and requests:
        // plain http only where nothing but this machine can read them.
        let acceptable = url
            .host_str()
            .is_some_and(|host| shop_token_protocol::loopback::scheme_allowed(url.scheme(), host))
            && url.username().is_empty()
            && url.password().is_none()
            && url.query().is_none()
            && url.fragment().is_none();
        if !acceptable {
            return Err(TransportError::new(
                "the broker URL must be https://host[:port][/path] (http:// only to a loopback host) without credentials, query or fragment",
            )
            .into());
        }
        let client = Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            // A redirect would re-send a POST's stale token (307/308), and
            // SigV4 signs one exact request: the broker never redirects.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| {
                TransportError::with_cause("cannot build the HTTP client", &error.without_url())
            })?;
        Ok(Self {
            base: Arc::from(url.as_str().trim_end_matches('/')),
            client,
            auth: Auth::None,
        })
    }

    /// Sends `Authorization: Bearer <token>` (what `broker-local
    /// --allow-remote` demands).
    pub fn with_bearer_token(mut self, token: impl Into<String>) -> Self {
        self.auth = Auth::Bearer(Arc::new(SecretString::from(token.into())));
        self
    }

    /// Uses `client` for the requests (its timeouts, proxies, TLS roots).
    pub fn with_client(mut self, client: Client) -> Self {
        self.client = client;
        self
    }

    /// Signs every request with `signer` (SigV4), as API Gateway's IAM
    /// authorization demands.
    #[cfg(feature = "http")]
    pub fn with_sigv4(mut self, signer: SigV4Signer) -> Self {
        self.auth = Auth::SigV4(Arc::new(signer));
        self
    }

    /// The stack's HTTP API at `base_url`, every request signed with SigV4
    /// with the credentials and region of the standard AWS environment
    /// (see [`SigV4Signer::from_env`]).
    #[cfg(feature = "http")]
    pub async fn api_gateway(base_url: &str) -> Result<Self, ClientError> {
        let signer = SigV4Signer::from_env().await?;
        Ok(Self::new(base_url)?.with_sigv4(signer))
    }

    /// The broker's base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    async fn send(
        &self,
        shop: &Shop,
        min_ttl: Option<Duration>,
        stale_token: Option<&SecretString>,
    ) -> Result<VendAnswer, ClientError> {
        let url = format!("{}/tokens/{}/{}", self.base, shop.platform(), shop.id());
        let body = options_body(min_ttl, stale_token);
        let failed = |what: &str, error: reqwest::Error| {
            ClientError::from(TransportError::with_cause(
                format_args!("POST {url}: {what}"),
                &error.without_url(),
            ))
        };
        let mut request = self
            .client
            .post(&url)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .body(body)
            .build()
            .map_err(|error| failed("cannot build the request", error))?;
        match &self.auth {
            Auth::None => {}
            Auth::Bearer(token) => {
                let mut value = HeaderValue::try_from(format!("Bearer {}", token.expose_secret()))
                    .map_err(|_| {
                        TransportError::new("the bearer token is not a valid header value")
                    })?;
                value.set_sensitive(true);
                request.headers_mut().insert(AUTHORIZATION, value);
            }
            #[cfg(feature = "http")]
            Auth::SigV4(signer) => signer.sign(&mut request).await?,
        }
        let response = self
            .client
            .execute(request)
            .await
            .map_err(|error| failed("no answer", error))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| retry_after::parse_bytes(value.as_bytes(), SystemTime::now()));
        let body = response
            .bytes()
            .await
            .map_err(|error| failed("reading the answer", error))?;
        if status == StatusCode::OK {
            VendAnswer::from_json(&body)
        } else {
            Err(error_answer(status, &body, retry_after))
        }
    }
}

impl Transport for HttpTransport {
    async fn vend(
        &self,
        shop: &Shop,
        min_ttl: Option<Duration>,
        stale_token: Option<&SecretString>,
    ) -> Result<VendAnswer, ClientError> {
        self.send(shop, min_ttl, stale_token).await
    }
}

impl fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match self.auth {
            Auth::None => "none",
            Auth::Bearer(_) => "bearer",
            #[cfg(feature = "http")]
            Auth::SigV4(_) => "sigv4",
        };
        f.debug_struct("HttpTransport")
            .field("base_url", &self.base)
            .field("auth", &auth)
            .finish_non_exhaustive()
    }
}

/// The broker's error (`{"error":{"code","message","upstream_code"?}}`),
/// or what an answer without one means.
fn error_answer(status: StatusCode, body: &[u8], retry_after: Option<Duration>) -> ClientError {
    if let Some(ErrorBody { error }) = ErrorBody::from_json(body) {
        return ClientError::from_code(
            &error.code,
            &error.message,
            error.upstream_code.as_deref(),
            retry_after,
        );
    }
    match status {
        // broker-local's bearer check, API Gateway's IAM authorization.
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ClientError::Unauthorized {
            status: status.as_u16(),
        },
        // API Gateway's own throttling.
        StatusCode::TOO_MANY_REQUESTS => {
            ClientError::from_code(ErrorCode::RateLimited.as_str(), "", None, retry_after)
        }
        _ => TransportError::new(format_args!(
            "the broker answered HTTP {status} without an error code"
        ))
        .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_accepted_only_to_a_loopback_broker() {
        for accepted in [
            "https://broker.example",
            "http://127.0.0.1:8787",
            "http://localhost:8787",
            "http://[::1]:8787",
        ] {
            assert!(HttpTransport::new(accepted).is_ok(), "{accepted}");
        }
        for refused in [
            "http://broker.example",
            "http://192.168.1.20:8787",
            "ftp://127.0.0.1",
            "https://user:pass@broker.example",
        ] {
            assert!(HttpTransport::new(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn the_base_url_loses_its_trailing_slash_and_keeps_a_stage() {
        let transport =
            HttpTransport::new("https://abc.execute-api.eu-central-1.amazonaws.com/prod/").unwrap();
        assert_eq!(
            transport.base_url(),
            "https://abc.execute-api.eu-central-1.amazonaws.com/prod"
        );
    }

    #[test]
    fn a_base_url_with_credentials_a_query_or_another_scheme_is_refused() {
        for url in [
            "http://user:pass@127.0.0.1:8787",
            "http://127.0.0.1:8787/?a=b",
            "ftp://127.0.0.1",
            "127.0.0.1:8787",
        ] {
            assert!(HttpTransport::new(url).is_err(), "{url}");
        }
    }

    #[test]
    fn the_debug_names_the_authentication_not_the_bearer_token() {
        let transport = HttpTransport::new("http://127.0.0.1:8787")
            .unwrap()
            .with_bearer_token("a-bearer-token-of-at-least-32-characters");
        let printed = format!("{transport:?}");
        assert!(!printed.contains("a-bearer-token"), "{printed}");
        assert!(printed.contains("bearer"), "{printed}");
    }

    #[test]
    fn an_error_body_maps_to_its_code_and_a_bare_status_to_its_meaning() {
        let body = br#"{"error":{"code":"upstream_rejected","message":"m","upstream_code":"invalid_client"}}"#;
        assert_eq!(
            error_answer(StatusCode::BAD_GATEWAY, body, None),
            ClientError::UpstreamRejected {
                upstream_code: Some("invalid_client".into())
            }
        );
        let body = br#"{"error":{"code":"token_cap_reached","message":"m"}}"#;
        assert_eq!(
            error_answer(
                StatusCode::SERVICE_UNAVAILABLE,
                body,
                Some(Duration::from_secs(42))
            ),
            ClientError::TokenCapReached {
                retry_after: Duration::from_secs(42)
            }
        );
        assert_eq!(
            error_answer(StatusCode::FORBIDDEN, br#"{"message":"Forbidden"}"#, None),
            ClientError::Unauthorized { status: 403 }
        );
        assert!(matches!(
            error_answer(StatusCode::BAD_GATEWAY, b"<html>", None),
            ClientError::Transport(_)
        ));
    }
}
