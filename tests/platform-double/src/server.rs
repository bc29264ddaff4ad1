//! The accept loop: one hyper HTTP/1 connection per request (keep-alive off),
//! serving the axum router, able to close a connection without answering.

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{any, get, post};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::{Service, service_fn};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::faults::DropConnection;
use crate::state::Shared;
use crate::{control, shoprenter, shoptet};

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/action/ApiOAuthServer/token", post(shoptet::exchange_code))
        .route(
            "/action/ApiOAuthServer/getAccessToken",
            get(shoptet::get_access_token),
        )
        .route("/api/{*rest}", any(shoptet::api))
        .route("/shoprenter/{shop}/app/token", post(shoprenter::token))
        .route("/shoprenter-api/{shop}/api/{*rest}", any(shoprenter::api))
        .route("/_double/secrets", get(control::secrets))
        .route(
            "/_double/shoptet/{eshop_id}",
            get(control::shoptet_installation),
        )
        .route(
            "/_double/shoptet/{eshop_id}/{action}",
            post(control::shoptet),
        )
        .route(
            "/_double/shoptet/{eshop_id}/api-tokens/expire",
            post(control::expire_shoptet_api_tokens),
        )
        .route(
            "/_double/shoptet/{eshop_id}/webhooks",
            get(control::shoptet_webhooks),
        )
        .route(
            "/_double/shoptet/{eshop_id}/webhooks/{event}",
            post(control::shoptet_webhook),
        )
        .route(
            "/_double/shoptet/{eshop_id}/orders",
            post(control::shoptet_order),
        )
        .route(
            "/_double/shoprenter/{shop}/{action}",
            get(control::shoprenter),
        )
        .route("/_double/calls/{endpoint}/{shop}", get(control::calls))
        .route("/_double/faults/{endpoint}", post(control::inject))
        .with_state(shared)
}

/// Accepts connections until `shutdown` changes or its sender is dropped.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(serve_connection(stream, router.clone()));
                }
                // Out of file descriptors and the like: back off briefly.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            _ = shutdown.changed() => break,
        }
    }
}

/// Returned by the service to make hyper close the connection unanswered.
#[derive(Debug)]
struct ConnectionDropped;

impl fmt::Display for ConnectionDropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection dropped by an injected fault")
    }
}

impl Error for ConnectionDropped {}

async fn serve_connection(stream: TcpStream, router: Router) {
    let inner = TowerToHyperService::new(router);
    let service = service_fn(move |request: hyper::Request<Incoming>| {
        let response = inner.call(request);
        async move {
            let response = match response.await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            if response.extensions().get::<DropConnection>().is_some() {
                Err(ConnectionDropped)
            } else {
                Ok(response)
            }
        }
    });
    // Errors only mean the peer went away or a fault dropped the connection.
    let _ = http1::Builder::new()
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service)
        .await;
}
