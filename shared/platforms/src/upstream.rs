//! Upstream HTTP: configured base URLs, timeouts, and the response facts both
//! platform clients need (status, `Retry-After`, body).

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode, Url};
use shop_token_protocol::loopback;

/// Upstream responses larger than this are not OAuth answers; refusing them
/// keeps a misbehaving upstream from exhausting a 128 MB Lambda.
const MAX_BODY_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidUpstreamUrl {
    #[error("not an absolute URL")]
    NotAUrl,
    #[error("only https:// is allowed (http:// only for loopback hosts)")]
    InsecureScheme,
    #[error("must not carry credentials, a query or a fragment")]
    UnexpectedParts,
}

/// A base URL for an upstream service. It always comes from configuration,
/// never from a request, and `http://` is accepted only for loopback hosts
/// (tests and the local sandbox).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl(Url);

impl UpstreamUrl {
    pub fn parse(raw: &str) -> Result<Self, InvalidUpstreamUrl> {
        let url = Url::parse(raw.trim()).map_err(|_| InvalidUpstreamUrl::NotAUrl)?;
        match url.scheme() {
            "https" if url.host().is_some() => {}
            "http" if url.host_str().is_some_and(loopback::is_loopback_host) => {}
            _ => return Err(InvalidUpstreamUrl::InsecureScheme),
        }
        if !url.username().is_empty()
            || url.password().is_some()
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(InvalidUpstreamUrl::UnexpectedParts);
        }
        Ok(Self(url))
    }

    /// This base with `segments` appended; each segment is percent-encoded,
    /// so a value can never add path levels.
    pub fn join<'a>(&self, segments: impl IntoIterator<Item = &'a str>) -> Url {
        let mut url = self.0.clone();
        url.path_segments_mut()
            .expect("http(s) URLs always have a path")
            .pop_if_empty()
            .extend(segments);
        url
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// Timeouts for every upstream call. The defaults keep a code exchange well
/// inside Shoptet's 5 s install deadline, with room to store the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpSettings {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_millis(1_000),
            request_timeout: Duration::from_millis(2_500),
        }
    }
}

impl HttpSettings {
    /// One client per process: it pools connections across invocations. Its
    /// TLS is the process's one configuration ([`crate::tls`]).
    pub fn build_client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_backend_preconfigured((*crate::tls::client_config()).clone())
            .connect_timeout(self.connect_timeout)
            .timeout(self.request_timeout)
            // A redirect could carry our bearer token to a host nobody configured.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("shop-token-broker/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a reqwest client with rustls and static settings always builds")
    }
}

/// Why an upstream call produced no HTTP answer. Carries no URL and no
/// message from the HTTP stack, so it cannot leak what was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("did not answer in time")]
    Timeout,
    #[error("could not be reached or closed the connection")]
    Unreachable,
}

/// The ways any platform's HTTP call fails that are not specific to the
/// platform's protocol. Each platform's error wraps it; messages read after
/// the platform's name ("Shoptet is rate limiting the broker") and never
/// hold a token, a code or a secret: only error codes are kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamFailure {
    #[error("rejected the request with {status}: {code}")]
    Rejected { status: u16, code: String },
    #[error("is rate limiting the broker")]
    RateLimited { retry_after: Option<Duration> },
    #[error("answered with server error {status}")]
    ServerError { status: u16 },
    #[error("gave an answer ({status}) that could not be understood")]
    MalformedResponse { status: u16 },
    #[error(transparent)]
    Transport(#[from] TransportError),
}

impl UpstreamFailure {
    /// Worth trying again later (the same request may succeed).
    pub fn is_transient(&self) -> bool {
        !matches!(self, Self::Rejected { .. })
    }

    /// The platform's error code, or our name for a failure without one;
    /// safe to show to callers.
    pub fn upstream_code(&self) -> &str {
        match self {
            Self::Rejected { code, .. } => code,
            Self::RateLimited { .. } => "rate_limited",
            Self::ServerError { .. } => "server_error",
            Self::MalformedResponse { .. } => "malformed_response",
            Self::Transport(TransportError::Timeout) => "timeout",
            Self::Transport(TransportError::Unreachable) => "unreachable",
        }
    }

    /// The failure every platform shares for a status without a
    /// protocol-specific meaning: 429, 5xx, or a rejection with `code`.
    pub(crate) fn from_status(response: &UpstreamResponse, code: Option<&str>) -> Self {
        let status = response.status;
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Self::RateLimited {
                retry_after: response.retry_after,
            };
        }
        if status.is_server_error() {
            return Self::ServerError {
                status: status.as_u16(),
            };
        }
        Self::Rejected {
            status: status.as_u16(),
            code: code.map_or_else(|| "unrecognised".to_owned(), sanitized_code),
        }
    }

    pub(crate) fn malformed(response: &UpstreamResponse) -> Self {
        Self::MalformedResponse {
            status: response.status.as_u16(),
        }
    }
}

impl From<reqwest::Error> for TransportError {
    fn from(error: reqwest::Error) -> Self {
        if error.is_timeout() {
            TransportError::Timeout
        } else {
            TransportError::Unreachable
        }
    }
}

pub(crate) struct UpstreamResponse {
    pub status: StatusCode,
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
}

pub(crate) async fn send(request: RequestBuilder) -> Result<UpstreamResponse, TransportError> {
    let mut response = request.send().await?;
    let status = response.status();
    let retry_after = retry_after(response.headers(), SystemTime::now());
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            // Treated like a garbled answer: the caller sees a malformed body.
            body.clear();
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(UpstreamResponse {
        status,
        retry_after,
        body,
    })
}

/// `Retry-After` as either delay-seconds or an HTTP date (Shoptet's API sends
/// a date-time), read by the protocol's one rule.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    shop_token_protocol::retry_after::parse_bytes(headers.get(RETRY_AFTER)?.as_bytes(), now)
}

/// The longest `expires_in` taken from a platform as it is: a day. No
/// platform documents a longer token life, and the vending core clamps a
/// token's life to its platform's documented one anyway; the bound keeps
/// time arithmetic on an upstream number from overflowing (`u64::MAX`).
pub const MAX_EXPIRES_IN: Duration = Duration::from_secs(86_400);

/// When a token the platform says lives `expires_in` seconds expires,
/// counted from `sent_at` (before the request, so never later than the
/// platform's own idea), with `expires_in` clamped to [`MAX_EXPIRES_IN`].
pub fn expiry_after(sent_at: SystemTime, expires_in: u64) -> SystemTime {
    let lifetime = Duration::from_secs(expires_in).min(MAX_EXPIRES_IN);
    sent_at.checked_add(lifetime).unwrap_or(sent_at)
}

/// An upstream error code is kept only if it looks like one (`invalid_grant`,
/// `expired-token`): letters and `_-.`, no digits. Tokens always carry digits,
/// so nothing an upstream echoes back reaches our logs or bodies.
pub(crate) fn sanitized_code(raw: &str) -> String {
    let looks_like_code = (1..=48).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphabetic() || matches!(b, b'_' | b'-' | b'.'));
    if looks_like_code {
        raw.to_owned()
    } else {
        "unrecognised".to_owned()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_vending_defaults_assume_this_upstream_timeout() {
        assert_eq!(
            super::HttpSettings::default().request_timeout,
            broker_vending::VendTiming::DEFAULT_UPSTREAM_TIMEOUT
        );
    }

    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn an_upstream_lifetime_is_clamped_and_never_overflows() {
        let now = SystemTime::now();
        assert_eq!(expiry_after(now, 1800), now + Duration::from_secs(1800));
        assert_eq!(expiry_after(now, u64::MAX), now + MAX_EXPIRES_IN);
        assert_eq!(expiry_after(now, 0), now);
    }

    #[test]
    fn https_is_accepted_everywhere_and_http_only_on_loopback() {
        assert!(UpstreamUrl::parse("https://12345.myshoptet.com").is_ok());
        assert!(UpstreamUrl::parse("http://127.0.0.1:8080").is_ok());
        assert!(UpstreamUrl::parse("http://localhost:8080/x").is_ok());
        assert!(UpstreamUrl::parse("http://[::1]:8080").is_ok());
        for bad in [
            "http://12345.myshoptet.com",
            "http://127.0.0.1.evil.example",
            "http://10.0.0.1",
            "ftp://localhost",
            "file:///etc/passwd",
            "https://user:pw@example.com",
            "https://example.com/?next=x",
            "not a url",
            "",
        ] {
            assert!(UpstreamUrl::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn joined_segments_cannot_climb_the_path() {
        let base = UpstreamUrl::parse("https://oauth.example/base/").unwrap();
        assert_eq!(
            base.join(["../admin", "app", "token"]).as_str(),
            "https://oauth.example/base/..%2Fadmin/app/token"
        );
    }

    #[test]
    fn only_code_shaped_upstream_errors_are_kept() {
        assert_eq!(sanitized_code("invalid_grant"), "invalid_grant");
        assert_eq!(sanitized_code("expired-token"), "expired-token");
        for token_like in ["222651-a-fltqc2nn5zg8y5h69jx8976ltwi2p1qg", "abc def", ""] {
            assert_eq!(sanitized_code(token_like), "unrecognised");
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("17"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(17)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        headers.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(30)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers, now), None);
    }
}
