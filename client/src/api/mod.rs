//! Calling the platform's API with the broker's tokens: the right header to
//! the right base URL, one retry with a new token when the platform refuses
//! one, waits on rate limits and write locks, and the platforms' request
//! limits kept on this side.

mod limits;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Client, Method, StatusCode, Url};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use shop_token_protocol::loopback;
use tokio::time::Instant;

use self::limits::Gates;
use crate::client::TokenClient;
use crate::error::{ClientError, TransportError};
use crate::shop::{Platform, Shop};
use crate::token::ShopToken;
use crate::transport::Transport;

/// How long one call may spend waiting on the platform's rate limits and
/// write locks, unless [`ApiClientBuilder::max_wait`] says otherwise.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(10);
/// How long to wait for a connection to the platform.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one request to the platform may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The wait after a 429 that does not say how long (Shoprenter documents
/// none; Shoptet's connection limit sends none): Shoprenter's window.
const UNSAID_RETRY_AFTER: Duration = Duration::from_secs(1);
/// The shortest wait before a retry, so a `Retry-After` already past (a
/// clock ahead of the platform's) does not make a busy loop.
const MIN_WAIT: Duration = Duration::from_millis(100);
/// The first back-off after Shoptet's 423 (the same write twice in quick
/// succession; the lock is held up to 5 s): doubled on each 423.
const FIRST_LOCK_BACKOFF: Duration = Duration::from_millis(250);
const MAX_LOCK_BACKOFF: Duration = Duration::from_secs(2);

/// A client of the platforms' APIs for your shops, on top of a
/// [`TokenClient`].
///
/// [`send`](Self::send) takes a shop and a path relative to the shop's API
/// base URL (`/eshop` → `https://api.myshoptet.com/api/eshop`), and
/// - sends the token the broker vends, in the header the platform reads,
///   and to Shoprenter `Accept: application/json` (it answers XML without);
/// - when the platform refuses the token (Shoptet: 401 `expired-token` or
///   `invalid-token`; Shoprenter: any 401), reports it to the broker as
///   stale and retries once with the new one. Shoptet's 403
///   `invalid-token-no-rights` is returned as it is: a new token has the
///   same rights;
/// - on 429 waits `Retry-After` (an HTTP-date, as Shoptet sends it, or
///   seconds) and retries; on 423 (Shoptet's lock on the same write) backs
///   off briefly and retries; both only while the call's waits stay
///   within [`max_wait`](ApiClientBuilder::max_wait) (default 10 s), and
///   otherwise return [`ApiError::RateLimited`] / [`ApiError::Locked`];
/// - keeps at most 3 requests in flight per Shoptet shop (its token) and
///   starts at most 3 requests per second per Shoprenter shop, queueing
///   the rest in order. These are the platforms' limits per token or app
///   and shop, kept within this process: other processes using the same
///   token count against them too, and their excess comes back as 429s,
///   which are waited out as above.
///
/// Every other answer, success or not, is returned as an [`ApiResponse`]
/// ([`ApiResponse::error_for_status`] turns a non-2xx into an error). No
/// token ever appears in an error or a `Debug` output, and the client logs
/// nothing.
///
/// Cheap to clone: clones share the token cache and the limits. Keep one
/// per process.
///
/// ```no_run
/// use shop_token_client::{ApiClient, HttpTransport, Shop, TokenClient};
///
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let tokens = TokenClient::new(HttpTransport::new("http://127.0.0.1:8787")?);
/// let api = ApiClient::new(tokens);
/// let eshop = api.get(&Shop::shoptet(222651)?, "/eshop").await?.error_for_status()?;
/// let info: serde_json::Value = eshop.json()?;
/// # let _ = info;
/// # Ok(()) }
/// ```
pub struct ApiClient<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Clone for ApiClient<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<T> {
    tokens: TokenClient<T>,
    http: Client,
    max_wait: Duration,
    gates: Gates,
}

/// Builds an [`ApiClient`] with other settings than the defaults.
pub struct ApiClientBuilder<T> {
    tokens: TokenClient<T>,
    http: Option<Client>,
    max_wait: Duration,
}

impl<T: Transport> ApiClientBuilder<T> {
    /// The longest one call may spend waiting on 429s and 423s before it
    /// gives up (default [`DEFAULT_MAX_WAIT`], 10 s). Zero never waits.
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// Sends the requests with `client` (its timeouts, proxies, TLS roots).
    /// Build it with `.redirect(reqwest::redirect::Policy::none())`: the
    /// default client follows no redirect, so a token never reaches a host
    /// the platform's answer names.
    pub fn http_client(mut self, client: Client) -> Self {
        self.http = Some(client);
        self
    }

    /// The client.
    pub fn build(self) -> Result<ApiClient<T>, ApiError> {
        let http = match self.http {
            Some(client) => client,
            None => Client::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(REQUEST_TIMEOUT)
                // The token travels in a header reqwest does not drop on a
                // redirect to another host (`Shoptet-Access-Token`): follow
                // none, and answer the redirect as it came.
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|error| {
                    TransportError::with_cause("cannot build the HTTP client", &error.without_url())
                })?,
        };
        Ok(ApiClient {
            inner: Arc::new(Inner {
                tokens: self.tokens,
                http,
                max_wait: self.max_wait,
                gates: Gates::default(),
            }),
        })
    }
}

impl<T: Transport> ApiClient<T> {
    /// A client with the default settings, getting its tokens from `tokens`.
    ///
    /// # Panics
    ///
    /// When the TLS backend cannot be initialised (as
    /// [`reqwest::Client::new`] does); [`builder`](Self::builder) returns
    /// that as an error instead.
    pub fn new(tokens: TokenClient<T>) -> Self {
        Self::builder(tokens)
            .build()
            .expect("the default HTTP client builds")
    }

    /// A builder, for other settings than the defaults.
    pub fn builder(tokens: TokenClient<T>) -> ApiClientBuilder<T> {
        ApiClientBuilder {
            tokens,
            http: None,
            max_wait: DEFAULT_MAX_WAIT,
        }
    }

    /// The token client underneath.
    pub fn tokens(&self) -> &TokenClient<T> {
        &self.inner.tokens
    }

    /// `GET path` on `shop`'s API.
    pub async fn get(&self, shop: &Shop, path: &str) -> Result<ApiResponse, ApiError> {
        self.send(shop, ApiRequest::new(Method::GET, path)).await
    }

    /// Sends `request` to `shop`'s API by the rules above.
    pub async fn send(&self, shop: &Shop, request: ApiRequest) -> Result<ApiResponse, ApiError> {
        let gate = self.inner.gates.of(shop);
        let deadline = Instant::now() + self.inner.max_wait;
        let mut lock_backoff = FIRST_LOCK_BACKOFF;
        let mut reported: Option<ShopToken> = None;
        loop {
            let token = match &reported {
                // The replacement of the refused token, as the report got it.
                Some(replacement) => replacement.clone(),
                None => self.inner.tokens.token(shop).await?,
            };
            let url = request_url(&token, &request.path)?;
            let pass = gate.pass().await;
            let response = self.attempt(&token, &url, &request).await?;
            drop(pass);

            let wait = match response.status {
                StatusCode::UNAUTHORIZED
                    if reported.is_none() && refuses_token(shop.platform(), &response) =>
                {
                    reported = Some(self.inner.tokens.report_stale(&token).await?);
                    continue;
                }
                StatusCode::TOO_MANY_REQUESTS => {
                    let wait = retry_after(&response.headers, SystemTime::now())
                        .unwrap_or(UNSAID_RETRY_AFTER);
                    Waited::RateLimited(wait)
                }
                StatusCode::LOCKED => {
                    let wait = lock_backoff;
                    lock_backoff = (lock_backoff * 2).min(MAX_LOCK_BACKOFF);
                    Waited::Locked(wait)
                }
                _ => return Ok(response),
            };
            let pause = wait.duration().max(MIN_WAIT);
            // A Retry-After beyond any clock (`u64::MAX` seconds) is past the bound too.
            if Instant::now()
                .checked_add(pause)
                .is_none_or(|at| at > deadline)
            {
                return Err(wait.into_error());
            }
            tokio::time::sleep(pause).await;
        }
    }

    async fn attempt(
        &self,
        token: &ShopToken,
        url: &Url,
        request: &ApiRequest,
    ) -> Result<ApiResponse, ApiError> {
        let failed = |what: &str, error: reqwest::Error| {
            ApiError::Transport(TransportError::with_cause(
                format_args!("{} {}: {what}", request.method, url.path()),
                &error.without_url(),
            ))
        };
        let mut value = HeaderValue::try_from(token.header_value().expose_secret())
            .map_err(|_| TransportError::new("the token is not a valid header value"))?;
        value.set_sensitive(true);
        let mut builder = self
            .inner
            .http
            .request(request.method.clone(), url.clone())
            .header(token.header_name(), value);
        if token.platform() == Platform::Shoprenter {
            // Shoprenter answers XML unless the request asks for JSON.
            builder = builder.header(ACCEPT, HeaderValue::from_static("application/json"));
        }
        if let Some((body, content_type)) = &request.body {
            builder = builder
                .header(CONTENT_TYPE, content_type.clone())
                .body(body.clone());
        }
        let response = builder
            .send()
            .await
            .map_err(|error| failed("no answer", error))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|error| failed("reading the answer", error))?;
        Ok(ApiResponse {
            status,
            headers,
            body,
        })
    }
}

impl<T: fmt::Debug> fmt::Debug for ApiClient<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiClient")
            .field("tokens", &self.inner.tokens)
            .field("max_wait", &self.inner.max_wait)
            .finish_non_exhaustive()
    }
}

/// Why a call waited.
enum Waited {
    RateLimited(Duration),
    Locked(Duration),
}

impl Waited {
    fn duration(&self) -> Duration {
        match self {
            Waited::RateLimited(wait) | Waited::Locked(wait) => *wait,
        }
    }

    fn into_error(self) -> ApiError {
        match self {
            Waited::RateLimited(retry_after) => ApiError::RateLimited { retry_after },
            Waited::Locked(_) => ApiError::Locked,
        }
    }
}

/// One request to a shop's API: a method, a path relative to the shop's
/// API base URL (with a query string if any), and an optional body.
///
/// ```
/// use shop_token_client::{ApiRequest, Method};
///
/// let create = ApiRequest::new(Method::POST, "/products")
///     .json(&serde_json::json!({"data": {"name": "Mug"}}));
/// # let _ = create;
/// ```
#[derive(Debug, Clone)]
pub struct ApiRequest {
    method: Method,
    path: String,
    body: Option<(bytes::Bytes, HeaderValue)>,
}

impl ApiRequest {
    /// `method path`, without a body.
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            body: None,
        }
    }

    /// With `value` as a JSON body.
    pub fn json(self, value: &serde_json::Value) -> Self {
        let body = serde_json::to_vec(value).expect("a JSON value always serializes");
        self.body(body, HeaderValue::from_static("application/json"))
    }

    /// With `body` of `content_type`.
    pub fn body(mut self, body: impl Into<bytes::Bytes>, content_type: HeaderValue) -> Self {
        self.body = Some((body.into(), content_type));
        self
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The path, as given.
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// The platform's answer, read whole.
#[derive(Clone)]
pub struct ApiResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: bytes::Bytes,
}

impl ApiResponse {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers (e.g. Shoptet's `X-RateLimit-Bucket-Filling`).
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body as JSON.
    pub fn json<D: DeserializeOwned>(&self) -> Result<D, ApiError> {
        serde_json::from_slice(&self.body).map_err(|error| {
            ApiError::Transport(TransportError::new(format_args!(
                "the platform's answer is not the JSON expected ({:?} error at line {}, column {})",
                error.classify(),
                error.line(),
                error.column()
            )))
        })
    }

    /// The `errorCode`s of Shoptet's error envelope
    /// (`{"errors":[{"errorCode","message"}]}`), or Shoprenter's `error`;
    /// empty when the body has none.
    pub fn error_codes(&self) -> Vec<String> {
        #[derive(Deserialize)]
        struct Envelope {
            #[serde(default)]
            errors: Option<Vec<Entry>>,
            #[serde(default)]
            error: Option<String>,
        }
        #[derive(Deserialize)]
        struct Entry {
            #[serde(rename = "errorCode")]
            error_code: Option<String>,
        }
        let Ok(envelope) = serde_json::from_slice::<Envelope>(&self.body) else {
            return Vec::new();
        };
        let mut codes: Vec<String> = envelope
            .errors
            .unwrap_or_default()
            .into_iter()
            .filter_map(|entry| entry.error_code)
            .collect();
        codes.extend(envelope.error);
        codes
    }

    /// The response itself on a 2xx, [`ApiError::Status`] otherwise.
    pub fn error_for_status(self) -> Result<Self, ApiError> {
        if self.status.is_success() {
            Ok(self)
        } else {
            Err(ApiError::Status {
                status: self.status,
                error_codes: self.error_codes(),
            })
        }
    }
}

impl fmt::Debug for ApiResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiResponse")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// Why a call to the platform's API returned no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// No token: the broker's refusal or failure.
    #[error("no token: {0}")]
    Token(#[from] ClientError),
    /// Still 429 when the call's waits reached
    /// [`max_wait`](ApiClientBuilder::max_wait).
    #[error(
        "the platform is rate limiting this shop; retry after {} s",
        .retry_after.as_secs_f64().ceil()
    )]
    RateLimited {
        /// What the platform said to wait (1 s when it did not say).
        retry_after: Duration,
    },
    /// Still 423 (Shoptet's lock on the same write) when the call's waits
    /// reached [`max_wait`](ApiClientBuilder::max_wait).
    #[error("the platform still holds the lock on this write")]
    Locked,
    /// The path would leave the shop's API, or the API's base URL is not
    /// one the client sends a token to (`https`, or `http` on loopback).
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// A non-2xx answer, from [`ApiResponse::error_for_status`].
    #[error("the platform answered {status}{}", ErrorCodes(.error_codes))]
    Status {
        /// The HTTP status.
        status: StatusCode,
        /// The platform's error codes, as [`ApiResponse::error_codes`].
        error_codes: Vec<String>,
    },
    /// The platform could not be reached, or its answer could not be read.
    #[error("cannot call the platform: {0}")]
    Transport(#[from] TransportError),
}

/// ` (code, code)`, or nothing.
struct ErrorCodes<'a>(&'a [String]);

impl fmt::Display for ErrorCodes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, " ({})", self.0.join(", "))
        }
    }
}

/// Where a request for `path` goes: under the token's API base URL, never
/// elsewhere.
fn request_url(token: &ShopToken, path: &str) -> Result<Url, ApiError> {
    let base = Url::parse(token.api_base_url())
        .map_err(|_| ApiError::InvalidUrl("the API base URL is not a URL".to_owned()))?;
    if !loopback::scheme_allowed(base.scheme(), base.host_str().unwrap_or_default()) {
        return Err(ApiError::InvalidUrl(
            "the API base URL must be https (http only on loopback)".to_owned(),
        ));
    }
    let relative = path.trim_start_matches('/');
    if relative.contains('#') || relative.split(['/', '?']).any(|segment| segment == "..") {
        return Err(ApiError::InvalidUrl(
            "the path must stay under the API base URL (no `..`, no fragment)".to_owned(),
        ));
    }
    let url = Url::parse(&format!("{}/{relative}", token.api_base_url()))
        .map_err(|_| ApiError::InvalidUrl("the path does not make a URL".to_owned()))?;
    let same_origin = url.scheme() == base.scheme()
        && url.host_str() == base.host_str()
        && url.port_or_known_default() == base.port_or_known_default()
        && url
            .path()
            .starts_with(&format!("{}/", base.path().trim_end_matches('/')));
    if !same_origin {
        return Err(ApiError::InvalidUrl(
            "the path must stay under the API base URL".to_owned(),
        ));
    }
    Ok(url)
}

/// Whether a 401 says the token itself is refused (and a new one may do).
fn refuses_token(platform: Platform, response: &ApiResponse) -> bool {
    match platform {
        Platform::Shoptet => response
            .error_codes()
            .iter()
            .any(|code| code == "expired-token" || code == "invalid-token"),
        // Shoprenter's 401 is the token's refusal; its body is not documented.
        Platform::Shoprenter => true,
    }
}

/// `Retry-After` as seconds or an HTTP-date (what Shoptet sends), as a wait
/// from `now`; `None` without a readable one.
fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    shop_token_protocol::retry_after::parse_bytes(headers.get(RETRY_AFTER)?.as_bytes(), now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::VendAnswer;

    fn token(api_base_url: &str) -> ShopToken {
        let body = format!(
            r#"{{"platform":"shoptet","shop":"1","access_token":"t","expires_at":"2026-11-23T10:30:00Z",
            "expires_in":1800,"header_name":"Shoptet-Access-Token","header_value":"t","api_base_url":"{api_base_url}"}}"#
        );
        let answer = VendAnswer::from_json(body.as_bytes()).unwrap();
        ShopToken::from_answer(&Shop::shoptet(1).unwrap(), answer, SystemTime::now()).unwrap()
    }

    #[test]
    fn a_path_goes_under_the_api_base_url_with_or_without_a_leading_slash() {
        let token = token("https://api.myshoptet.com/api");
        for path in ["/eshop", "eshop"] {
            assert_eq!(
                request_url(&token, path).unwrap().as_str(),
                "https://api.myshoptet.com/api/eshop"
            );
        }
        assert_eq!(
            request_url(&token, "/orders?page=2&itemsPerPage=50")
                .unwrap()
                .as_str(),
            "https://api.myshoptet.com/api/orders?page=2&itemsPerPage=50"
        );
    }

    #[test]
    fn a_path_that_would_leave_the_api_is_refused() {
        let token = token("https://api.myshoptet.com/api");
        for path in [
            "/../admin",
            "/eshop/../../x",
            "/a/%2e%2e/b#frag",
            "/eshop#x",
            "..",
        ] {
            assert!(
                matches!(request_url(&token, path), Err(ApiError::InvalidUrl(_))),
                "{path}"
            );
        }
        // URLs read percent-encoded dots as dots: caught all the same.
        assert!(matches!(
            request_url(&token, "/%2e%2e/x"),
            Err(ApiError::InvalidUrl(_))
        ));
    }

    #[test]
    fn a_token_goes_only_to_https_or_loopback_http() {
        assert!(request_url(&token("http://127.0.0.1:9/api"), "/eshop").is_ok());
        assert!(request_url(&token("http://localhost:9/api"), "/eshop").is_ok());
        assert!(matches!(
            request_url(&token("http://api.myshoptet.com/api"), "/eshop"),
            Err(ApiError::InvalidUrl(_))
        ));
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_an_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_719_835_261);
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(7)));
        // Shoptet's form: Mon, 01 Jul 2024 12:01:11 GMT is 10 s after `now`.
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Mon, 01 Jul 2024 12:01:11 GMT"),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(10)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Mon, 01 Jul 2024 12:00:00 GMT"),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::ZERO));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers, now), None);
    }

    #[test]
    fn error_codes_come_from_either_platforms_envelope() {
        let response = |body: &'static str| ApiResponse {
            status: StatusCode::UNAUTHORIZED,
            headers: HeaderMap::new(),
            body: bytes::Bytes::from_static(body.as_bytes()),
        };
        let shoptet = response(
            r#"{"data":null,"errors":[{"errorCode":"expired-token","message":"m","instance":"i"}]}"#,
        );
        assert_eq!(shoptet.error_codes(), ["expired-token"]);
        assert!(refuses_token(Platform::Shoptet, &shoptet));
        let no_rights = response(r#"{"errors":[{"errorCode":"invalid-token-no-rights"}]}"#);
        assert!(!refuses_token(Platform::Shoptet, &no_rights));
        assert_eq!(
            response(r#"{"error":"invalid_token"}"#).error_codes(),
            ["invalid_token"]
        );
        assert!(response("<html>").error_codes().is_empty());
        assert!(refuses_token(Platform::Shoprenter, &response("")));
    }
}
