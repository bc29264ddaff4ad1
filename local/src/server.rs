//! Hosts the two Lambda handlers behind one HTTP/1 listener, routing like the
//! API Gateway stack does.

use std::convert::Infallible;
use std::sync::Arc;

use broker_shared::storage::{InstallationStore, TokenCache};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use install_callback::InstallCallback;
use lambda_http::Body;
use lambda_http::http::{Request, Response, StatusCode};
use token_vendor::VendHandler;
use tokio::net::TcpListener;

pub struct Broker<S1, C1, S2, C2> {
    pub install: InstallCallback<S1, C1>,
    pub vendor: VendHandler<S2, C2>,
    /// Demanded on the token routes when the server is reachable remotely.
    pub bearer_token: Option<String>,
}

impl<S1, C1, S2, C2> Broker<S1, C1, S2, C2>
where
    S1: InstallationStore + 'static,
    C1: TokenCache + 'static,
    S2: InstallationStore + 'static,
    C2: TokenCache + 'static,
{
    pub async fn serve(self, listener: TcpListener) -> std::io::Result<()> {
        let broker = Arc::new(self);
        loop {
            let (stream, _) = listener.accept().await?;
            let broker = broker.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let broker = broker.clone();
                    async move { Ok::<_, Infallible>(broker.route(request).await) }
                });
                if let Err(error) = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(%error, "connection ended with an error");
                }
            });
        }
    }

    async fn route(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return plain(StatusCode::BAD_REQUEST),
        };
        let request = Request::from_parts(parts, Body::from(body.to_vec()));
        let response = if request.uri().path().starts_with("/tokens/") {
            if !self.authorized(&request) {
                return plain(StatusCode::UNAUTHORIZED);
            }
            match self.vendor.handle(request).await {
                Ok(response) => response,
                Err(error) => error.to_response().map(Body::from),
            }
        } else {
            self.install.handle(request).await
        };
        response.map(|body| Full::new(Bytes::from(body.to_vec())))
    }

    fn authorized(&self, request: &Request<Body>) -> bool {
        let Some(expected) = &self.bearer_token else {
            return true;
        };
        let presented = request
            .headers()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or_default();
        // Length-independent comparison: no early exit on the first mismatch.
        presented.len() == expected.len()
            && presented
                .bytes()
                .zip(expected.bytes())
                .fold(0u8, |diff, (a, b)| diff | (a ^ b))
                == 0
    }
}

fn plain(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}
