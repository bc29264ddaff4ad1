//! Hosts the two Lambda handlers behind one HTTP/1 listener, routing like the
//! API Gateway stack does.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body as AxumBody, to_bytes};
use axum::extract::State;
use broker_domain::http::HttpError;
use broker_domain::storage::{
    DeliveryLog, InstallationRegistry, InstallationStore, SignedRedirects, TokenCache,
};
use broker_runtime::metrics::{DEFAULT_NAMESPACE, Metrics, Service};
use install_callback::{InstallCallback, OperatorGate};
use lambda_http::Body;
use lambda_http::http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use subtle::{Choice, ConstantTimeEq};
use token_vendor::VendHandler;
use tokio::net::TcpListener;

/// The routes the platforms call, public as in the stack. Exact paths: the
/// handler also matches their tails under a prefix (an API stage), so any
/// other path (`/installations/shoprenter/install` too) demands the bearer.
const PUBLIC_PATHS: [&str; 5] = [
    "/shoptet/install",
    "/shoptet/webhook",
    "/shoptet/eshop-webhook",
    "/shoprenter/install",
    "/shoprenter/uninstall",
];

/// The API's description (`openapi.yaml` at the repository's top level),
/// served by this server only (not a route of the stack). It holds no
/// secret, so it is served without the bearer.
pub const OPENAPI_PATH: &str = "/openapi.yaml";
const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");

pub struct Broker<S1, C1, R1, S2, C2, R2> {
    pub install: InstallCallback<S1, C1, R1>,
    pub vendor: VendHandler<S2, C2, R2>,
    /// Demanded on every route but [`PUBLIC_PATHS`] (the token and operator
    /// routes, IAM-protected on AWS) when the server is reachable remotely.
    pub bearer_token: Option<String>,
}

impl<S1, C1, R1, S2, C2, R2> Broker<S1, C1, R1, S2, C2, R2>
where
    S1: InstallationStore + 'static,
    C1: TokenCache + SignedRedirects + DeliveryLog + 'static,
    R1: InstallationRegistry + 'static,
    S2: InstallationStore + 'static,
    C2: TokenCache + 'static,
    R2: InstallationRegistry + 'static,
{
    /// Both handlers' metric lines are dropped: CloudWatch reads them from a
    /// Lambda's stdout, and here stdout is the operator's terminal.
    pub fn without_metrics(self) -> Self {
        let discard = |service| Arc::new(Metrics::new(service, DEFAULT_NAMESPACE, std::io::sink()));
        Self {
            install: self.install.with_metrics(discard(Service::InstallCallback)),
            vendor: self.vendor.with_metrics(discard(Service::TokenVendor)),
            bearer_token: self.bearer_token,
        }
    }

    pub async fn serve(self, listener: TcpListener) -> std::io::Result<()> {
        // This server decides who reaches the operator routes (`route`: a
        // loopback Host or the bearer), as API Gateway's IAM does on AWS;
        // its requests carry no IAM identity for the handler to check.
        let broker = Self {
            install: self.install.with_operator_gate(OperatorGate::DecidedByHost),
            ..self
        };
        // One fallback: the routing is the handlers' own, as behind API Gateway.
        let app = Router::new()
            .fallback(Self::route)
            .with_state(Arc::new(broker));
        axum::serve(listener, app).await
    }

    async fn route(
        State(broker): State<Arc<Self>>,
        request: Request<AxumBody>,
    ) -> Response<AxumBody> {
        let (parts, body) = request.into_parts();
        // Decided before any body is read: who may ask, and from where.
        if broker.bearer_token.is_none() && !loopback_host(&parts.headers) {
            // Without a bearer the server answers loopback only; a page in a
            // browser that rebinds its own name to 127.0.0.1 still sends its
            // own Host.
            return plain(StatusCode::MISDIRECTED_REQUEST);
        }
        let path = parts.uri.path();
        if path == OPENAPI_PATH {
            return openapi(&parts.method);
        }
        if !is_public(path) && !broker.authorized(&parts.headers) {
            return plain(StatusCode::UNAUTHORIZED);
        }
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|length| length > MAX_BODY as u64) {
            return plain(StatusCode::PAYLOAD_TOO_LARGE);
        }
        // A chunked body is cut off at the same size while it is read.
        let body = match to_bytes(body, MAX_BODY).await {
            Ok(bytes) => bytes,
            Err(_) => return plain(StatusCode::PAYLOAD_TOO_LARGE),
        };
        let to_vendor = path.starts_with("/tokens/");
        let request = Request::from_parts(parts, Body::from(body.to_vec()));
        let response = if to_vendor {
            match broker.vendor.handle(request).await {
                Ok(response) => response,
                Err(error) => error.to_response().map(Body::from),
            }
        } else {
            broker.install.handle(request).await
        };
        response.map(|body| AxumBody::from(body.to_vec()))
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(expected) = &self.bearer_token else {
            return true;
        };
        let presented = headers
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or_default();
        bearer_matches(presented, expected)
    }
}

/// The most a request body may hold: every route's body is a small JSON
/// document or an event of at most 4 KiB.
const MAX_BODY: usize = 64 * 1024;

/// Whether the request names a loopback host (`localhost`, `127.0.0.1`,
/// `[::1]`, any port) in `Host`.
fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let name = match host.rsplit_once(':') {
        // `[::1]:8787`, `127.0.0.1:8787`, `localhost:8787`; a bare `[::1]`.
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.is_empty() => name,
        _ => host,
    };
    shop_token_protocol::loopback::is_loopback_host(name)
}

fn is_public(path: &str) -> bool {
    PUBLIC_PATHS.contains(&path)
}

/// Compares a presented bearer token with the expected one without a
/// data-dependent early exit: every byte position up to the longer of the two
/// is compared, and the length check is folded into the same result. (The
/// loop's length can reveal the longer length, never the content.)
fn bearer_matches(presented: &str, expected: &str) -> bool {
    let (presented, expected) = (presented.as_bytes(), expected.as_bytes());
    let mut equal: Choice = (presented.len() as u64).ct_eq(&(expected.len() as u64));
    for i in 0..presented.len().max(expected.len()) {
        let a = presented.get(i).copied().unwrap_or(0);
        let b = expected.get(i).copied().unwrap_or(0);
        equal &= a.ct_eq(&b);
    }
    equal.into()
}

/// `GET /openapi.yaml` (and `HEAD`); any other method is 405.
fn openapi(method: &Method) -> Response<AxumBody> {
    let body = match *method {
        Method::GET => AxumBody::from(OPENAPI_YAML),
        Method::HEAD => AxumBody::empty(),
        _ => {
            let mut response = plain(StatusCode::METHOD_NOT_ALLOWED);
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
    };
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/yaml"),
    );
    response
}

fn plain(status: StatusCode) -> Response<AxumBody> {
    let mut response = Response::new(AxumBody::empty());
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::{bearer_matches, is_public};

    #[test]
    fn only_the_platform_routes_are_public() {
        for path in [
            "/shoptet/install",
            "/shoptet/webhook",
            "/shoptet/eshop-webhook",
            "/shoprenter/install",
            "/shoprenter/uninstall",
        ] {
            assert!(is_public(path), "{path}");
        }
        for path in [
            "/tokens/shoptet/222651",
            "/shoptet/222651/installation",
            "/shoprenter/demo-shop/installation",
            "/shoprenter/demo-shop/credentials",
            "/installations",
            "/installations/shoptet/222651",
            // Operator routes whose tail looks like a platform route.
            "/installations/shoprenter/install",
            "/installations/shoprenter/uninstall",
            "/stage/shoptet/install",
            "/shoptet/install/",
        ] {
            assert!(!is_public(path), "{path}");
        }
    }

    const TOKEN: &str = "a-bearer-token-of-at-least-32-characters";

    #[test]
    fn the_exact_token_is_accepted() {
        assert!(bearer_matches(TOKEN, TOKEN));
    }

    #[test]
    fn a_prefix_is_refused() {
        assert!(!bearer_matches(&TOKEN[..TOKEN.len() - 1], TOKEN));
        assert!(!bearer_matches(&TOKEN[..1], TOKEN));
    }

    #[test]
    fn a_longer_string_is_refused() {
        assert!(!bearer_matches(&format!("{TOKEN}x"), TOKEN));
        // Trailing zero bytes must not pass for the padding.
        assert!(!bearer_matches(&format!("{TOKEN}\0"), TOKEN));
    }

    #[test]
    fn an_empty_string_is_refused() {
        assert!(!bearer_matches("", TOKEN));
    }

    #[test]
    fn a_one_byte_change_is_refused() {
        for i in 0..TOKEN.len() {
            let mut changed = TOKEN.as_bytes().to_vec();
            changed[i] ^= 0x01;
            let changed = String::from_utf8(changed).unwrap();
            assert!(!bearer_matches(&changed, TOKEN), "byte {i} changed");
        }
    }
}
