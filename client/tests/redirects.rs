//! Tokens never follow a redirect: a broker or a platform API answering
//! 302/307 towards another host gets the redirect answered as it came, and
//! the other host receives nothing (no token, no `stale_token`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, Uri, header};
use axum::response::IntoResponse;
use shop_token_client::{
    ApiClient, ClientError, HttpTransport, SecretString, Shop, TokenClient, Transport, VendAnswer,
};
use tokio::net::TcpListener;

/// Serves `router` on a loopback port; its base URL.
async fn serve(router: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

/// Another host that counts every request it gets.
async fn elsewhere() -> (String, Arc<AtomicUsize>) {
    let reached = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&reached);
    let router = Router::new().fallback(move || {
        let counter = Arc::clone(&counter);
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            "{}"
        }
    });
    (serve(router).await, reached)
}

/// A server that redirects every request to `target` with `status`.
async fn redirecting(status: StatusCode, target: String) -> String {
    let router = Router::new().fallback(move |uri: Uri| {
        let location = format!("{target}{uri}");
        async move { (status, [(header::LOCATION, location)]).into_response() }
    });
    serve(router).await
}

#[tokio::test]
async fn a_broker_redirect_is_not_followed_with_the_stale_token() {
    for status in [
        StatusCode::FOUND,
        StatusCode::TEMPORARY_REDIRECT,
        StatusCode::PERMANENT_REDIRECT,
    ] {
        let (other, reached) = elsewhere().await;
        let broker = redirecting(status, other).await;
        let transport = HttpTransport::new(&broker).unwrap();
        let stale = SecretString::from("stale-token-0123456789");

        let answer = transport
            .vend(&Shop::shoptet(222651).unwrap(), None, Some(&stale))
            .await;

        assert!(answer.is_err(), "{status}: a redirect is no token");
        assert_eq!(reached.load(Ordering::SeqCst), 0, "{status}: followed");
    }
}

/// Vends one fixed token whose API base is `api_base_url`.
struct FixedToken {
    api_base_url: String,
}

impl Transport for FixedToken {
    async fn vend(
        &self,
        shop: &Shop,
        _min_ttl: Option<Duration>,
        _stale_token: Option<&SecretString>,
    ) -> Result<VendAnswer, ClientError> {
        let answer = serde_json::json!({
            "platform": shop.platform().as_str(),
            "shop": shop.id(),
            "access_token": "api-token-0123456789",
            "expires_at": "2099-01-01T00:00:00Z",
            "expires_in": 1800,
            "header_name": "Shoptet-Access-Token",
            "header_value": "api-token-0123456789",
            "api_base_url": self.api_base_url,
        });
        VendAnswer::from_json(answer.to_string().as_bytes())
    }
}

#[tokio::test]
async fn a_platform_redirect_to_another_host_never_receives_the_token() {
    for status in [StatusCode::FOUND, StatusCode::TEMPORARY_REDIRECT] {
        let (other, reached) = elsewhere().await;
        let api_base_url = redirecting(status, other).await;
        let api = ApiClient::new(TokenClient::new(FixedToken { api_base_url }));

        let answered = api.get(&Shop::shoptet(222651).unwrap(), "/eshop").await;

        if let Ok(response) = &answered {
            assert_eq!(
                response.status(),
                status,
                "the redirect is answered as it came"
            );
        }
        assert_eq!(
            reached.load(Ordering::SeqCst),
            0,
            "{status}: the token followed"
        );
    }
}
