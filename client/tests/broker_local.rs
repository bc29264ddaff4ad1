//! The token client against the real broker (see `common`).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{BEARER, Counting, ESHOP, LocalBroker, Setup, eshop, sleep_until};
use platform_double::{Endpoint, Fault, InstallationState};
use shop_token_client::{ClientError, ExposeSecret, HttpTransport, Shop, ShopToken, TokenClient};
use tokio::task::JoinSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_token_calls_make_one_vend_and_one_mint() {
    let broker = LocalBroker::start(Setup::default()).await;
    broker.install(ESHOP).await;
    // Slow enough that all hundred ask while the one vend is in flight.
    broker.double.set_latency(Duration::from_millis(300));
    let transport = broker.transport();
    let client = TokenClient::new(Arc::clone(&transport));

    let mut tasks = JoinSet::new();
    for _ in 0..100 {
        let client = client.clone();
        tasks.spawn(async move { client.token(&eshop()).await });
    }
    let tokens: Vec<ShopToken> = tasks
        .join_all()
        .await
        .into_iter()
        .map(|result| result.expect("a token"))
        .collect();

    assert_eq!(transport.vends(), 1, "vends through the client");
    assert_eq!(broker.mints(ESHOP), 1, "getAccessToken calls at the double");
    assert!(tokens.iter().all(|token| token.is_same_token(&tokens[0])));
    let token = &tokens[0];
    assert_eq!(token.header_name(), "Shoptet-Access-Token");
    assert_eq!(token.api_base_url(), broker.double.shoptet_api_url());
    assert!(token.scopes().is_empty());
    // Served from the cache from now on.
    client.token(&eshop()).await.unwrap();
    assert_eq!(transport.vends(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cached_token_is_served_until_its_expiry_minus_the_margin_then_replaced() {
    let broker = LocalBroker::start(Setup {
        token_lifetime: Duration::from_secs(8),
        broker_margin_seconds: 1,
        ..Setup::default()
    })
    .await;
    broker.install(ESHOP).await;
    let transport = broker.transport();
    let margin = Duration::from_secs(3);
    let client = TokenClient::builder(Arc::clone(&transport))
        .refresh_margin(margin)
        .build();

    let first = client.token(&eshop()).await.unwrap();
    let life = first.expires_in();
    assert!(
        life > Duration::from_secs(6) && life <= Duration::from_secs(8),
        "the double's 8 s token, counted from the request: {life:?}"
    );
    let refresh_at = first.expires_at() - margin;

    sleep_until(refresh_at - Duration::from_millis(500)).await;
    let cached = client.token(&eshop()).await.unwrap();
    assert!(
        cached.is_same_token(&first),
        "still cached before the margin"
    );
    assert_eq!(transport.vends(), 1);

    sleep_until(refresh_at + Duration::from_millis(100)).await;
    let second = client.token(&eshop()).await.unwrap();
    assert_eq!(transport.vends(), 2, "a vend once within the margin");
    assert_eq!(broker.mints(ESHOP), 2, "the broker minted a replacement");
    assert!(!second.is_same_token(&first));
    assert!(second.expires_at() > first.expires_at());
    assert!(
        client
            .cached_token(&eshop())
            .unwrap()
            .is_same_token(&second)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reporting_a_stale_token_mints_once_and_caches_the_replacement() {
    let broker = LocalBroker::start(Setup::default()).await;
    broker.install(ESHOP).await;
    let transport = broker.transport();
    let client = TokenClient::new(Arc::clone(&transport));
    let stale = client.token(&eshop()).await.unwrap();
    assert_eq!((transport.vends(), broker.mints(ESHOP)), (1, 1));

    // Ten callers saw the platform refuse the same token.
    let mut tasks = JoinSet::new();
    for _ in 0..10 {
        let (client, stale) = (client.clone(), stale.clone());
        tasks.spawn(async move { client.report_stale(&stale).await });
    }
    let replacements: Vec<ShopToken> = tasks
        .join_all()
        .await
        .into_iter()
        .map(|result| result.expect("a replacement"))
        .collect();

    assert_eq!(transport.vends(), 2, "one report reached the broker");
    assert_eq!(broker.mints(ESHOP), 2, "one new mint");
    let fresh = &replacements[0];
    assert!(!fresh.is_same_token(&stale), "the replacement differs");
    assert_ne!(
        fresh.access_token().expose_secret(),
        stale.access_token().expose_secret()
    );
    assert!(replacements.iter().all(|token| token.is_same_token(fresh)));
    assert!(client.cached_token(&eshop()).unwrap().is_same_token(fresh));
    assert!(client.token(&eshop()).await.unwrap().is_same_token(fresh));
    // A late report of the old token gets the replacement without a vend.
    assert!(
        client
            .report_stale(&stale)
            .await
            .unwrap()
            .is_same_token(fresh)
    );
    assert_eq!(transport.vends(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unknown_shop_is_not_installed_for_every_concurrent_caller_after_one_vend() {
    let broker = LocalBroker::start(Setup::default()).await;
    // The broker refuses an unknown shop without an upstream call, at once:
    // the slowed vend keeps it in flight while every caller arrives.
    let transport = Counting::slowed(
        HttpTransport::new(&broker.url).unwrap(),
        Duration::from_millis(500),
    );
    let client = TokenClient::new(Arc::clone(&transport));
    let unknown = Shop::shoptet(999_999).unwrap();

    let callers = 20;
    let together = Arc::new(tokio::sync::Barrier::new(callers));
    let mut tasks = JoinSet::new();
    for _ in 0..callers {
        let (client, shop, together) = (client.clone(), unknown.clone(), Arc::clone(&together));
        tasks.spawn(async move {
            together.wait().await;
            client.token(&shop).await
        });
    }
    for result in tasks.join_all().await {
        assert_eq!(result.unwrap_err(), ClientError::NotInstalled);
    }
    assert_eq!(transport.vends(), 1);
    assert_eq!(broker.double.total_calls(), 0, "no upstream call");
    assert!(client.cached_token(&unknown).is_none());
    // A later call asks again.
    assert_eq!(
        client.token(&unknown).await.unwrap_err(),
        ClientError::NotInstalled
    );
    assert_eq!(transport.vends(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_brokers_refusals_arrive_as_typed_errors() {
    let broker = LocalBroker::start(Setup::default()).await;
    broker.install(ESHOP).await;
    let client = TokenClient::new(broker.transport());

    // invalid_request: no token lives 30 minutes from now.
    let error = client
        .token_with_min_ttl(&eshop(), Duration::from_secs(1800))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ClientError::InvalidRequest(message) if message.contains("min_ttl_seconds")),
        "{error:?}"
    );

    // upstream_unavailable: the platform answers 503.
    broker.double.inject(
        Some(Endpoint::ShoptetGetAccessToken),
        Fault::ServerError(503),
        10,
    );
    assert_eq!(
        client.token(&eshop()).await.unwrap_err(),
        ClientError::UpstreamUnavailable
    );
    broker.double.clear_faults();

    // rate_limited, with the platform's Retry-After.
    broker.double.inject(
        Some(Endpoint::ShoptetGetAccessToken),
        Fault::RateLimited {
            retry_after_secs: 7,
        },
        1,
    );
    assert_eq!(
        client.token(&eshop()).await.unwrap_err(),
        ClientError::RateLimited {
            retry_after: Duration::from_secs(7)
        }
    );

    // token_cap_reached: every report of a refused token costs a mint,
    // and Shoptet allows 5 live tokens.
    let mut token = client.token(&eshop()).await.unwrap();
    let error = loop {
        match client.report_stale(&token).await {
            Ok(fresh) => token = fresh,
            Err(error) => break error,
        }
    };
    assert_eq!(broker.double.live_api_tokens(ESHOP), 5);
    let ClientError::TokenCapReached { retry_after } = error else {
        panic!("expected token_cap_reached, got {error:?}");
    };
    assert!(
        retry_after > Duration::from_secs(1700) && retry_after <= Duration::from_secs(1800),
        "until the oldest of the 5 expires: {retry_after:?}"
    );
    assert!(
        client.cached_token(&eshop()).is_none(),
        "the refused token is no longer cached"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_suspended_add_on_is_a_suspended_error_and_a_refused_token_leaves_the_cache() {
    let broker = LocalBroker::start(Setup::default()).await;
    let other = 222652;
    broker.install(ESHOP).await;
    broker.install(other).await;
    let client = TokenClient::new(broker.transport());

    // Suspended before its first token.
    broker
        .double
        .set_installation_state(other, InstallationState::Suspended);
    let other = Shop::shoptet(other).unwrap();
    assert_eq!(
        client.token(&other).await.unwrap_err(),
        ClientError::Suspended
    );
    assert!(client.cached_token(&other).is_none());

    // Suspended while its token is cached: the platform refuses the token,
    // the report meets the suspension.
    let token = client.token(&eshop()).await.unwrap();
    broker
        .double
        .set_installation_state(ESHOP, InstallationState::Suspended);
    assert_eq!(
        client.report_stale(&token).await.unwrap_err(),
        ClientError::Suspended
    );
    assert!(
        client.cached_token(&eshop()).is_none(),
        "the refused token is not served from the cache"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_broker_gets_an_error_never_the_expiring_cached_token() {
    let mut broker = LocalBroker::start(Setup {
        token_lifetime: Duration::from_secs(6),
        broker_margin_seconds: 1,
        ..Setup::default()
    })
    .await;
    broker.install(ESHOP).await;
    let margin = Duration::from_secs(4);
    let client = TokenClient::builder(broker.transport())
        .refresh_margin(margin)
        .build();
    let token = client.token(&eshop()).await.unwrap();

    sleep_until(token.expires_at() - margin + Duration::from_millis(100)).await;
    broker.double.inject(None, Fault::ServerError(503), 100);
    let error = client.token(&eshop()).await.unwrap_err();
    assert_eq!(error, ClientError::UpstreamUnavailable);
    assert!(
        token.expires_in() > Duration::ZERO,
        "the token is still alive"
    );

    // The broker itself gone: a transport error.
    broker.stop().await;
    let client = TokenClient::new(HttpTransport::new(&broker.url).unwrap());
    let error = client.token(&eshop()).await.unwrap_err();
    assert!(matches!(error, ClientError::Transport(_)), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_behind_a_bearer_token_serves_only_callers_presenting_it() {
    let broker = LocalBroker::start(Setup {
        bearer_token: Some(BEARER),
        ..Setup::default()
    })
    .await;
    broker.install(ESHOP).await;

    let anonymous = TokenClient::new(HttpTransport::new(&broker.url).unwrap());
    assert_eq!(
        anonymous.token(&eshop()).await.unwrap_err(),
        ClientError::Unauthorized { status: 401 }
    );
    let wrong = HttpTransport::new(&broker.url)
        .unwrap()
        .with_bearer_token("not-the-bearer-token-of-32-characters");
    assert_eq!(
        TokenClient::new(wrong).token(&eshop()).await.unwrap_err(),
        ClientError::Unauthorized { status: 401 }
    );
    let presenting = HttpTransport::new(&broker.url)
        .unwrap()
        .with_bearer_token(BEARER);
    let token = TokenClient::new(presenting).token(&eshop()).await.unwrap();
    assert_eq!(broker.mints(ESHOP), 1);
    assert!(!token.access_token().expose_secret().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_debug_output_or_error_message_shows_a_token() {
    let mut broker = LocalBroker::start(Setup::default()).await;
    broker.install(ESHOP).await;
    let transport = HttpTransport::new(&broker.url)
        .unwrap()
        .with_bearer_token(BEARER);
    let client = TokenClient::new(transport);
    let token = client.token(&eshop()).await.unwrap();
    let secret = token.access_token().expose_secret().to_owned();
    assert!(secret.len() >= 16, "a real token to look for");

    let mut printed = vec![
        format!("{token:?}"),
        format!("{token:#?}"),
        format!("{client:?}"),
        format!("{:?}", client.cached_token(&eshop())),
    ];
    // Errors of calls that carried the token as `stale_token`: refused by
    // the platform, and sent to a broker that is gone.
    broker
        .double
        .set_installation_state(ESHOP, InstallationState::Suspended);
    let refused = client.report_stale(&token).await.unwrap_err();
    broker.stop().await;
    let unreachable = TokenClient::new(HttpTransport::new(&broker.url).unwrap());
    let gone = unreachable.report_stale(&token).await.unwrap_err();
    for error in [&refused, &gone] {
        printed.push(format!("{error}"));
        printed.push(format!("{error:?}"));
    }
    for text in &printed {
        assert!(!text.contains(&secret), "a token in {text}");
        assert!(!text.contains(BEARER), "the bearer token in {text}");
    }
    assert!(printed[0].contains("[redacted]"), "{}", printed[0]);
}

#[cfg(feature = "http")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sigv4_signed_request_reaches_the_vendor() {
    use aws_credential_types::Credentials;
    use shop_token_client::SigV4Signer;

    let broker = LocalBroker::start(Setup::default()).await;
    broker.install(ESHOP).await;
    let credentials = Credentials::new("AKIDEXAMPLE", "secret-key-example", None, None, "test");
    let transport = HttpTransport::new(&broker.url)
        .unwrap()
        .with_sigv4(SigV4Signer::new(credentials, "eu-central-1"));
    let token = TokenClient::new(transport).token(&eshop()).await.unwrap();
    assert_eq!(token.shop(), &eshop());
    assert_eq!(broker.mints(ESHOP), 1);
}

/// The Lambda Invoke API in front of a vendor instance over the broker's
/// store, answering as AWS does (200; a function error as
/// `X-Amz-Function-Error: Unhandled` and `{"errorType","errorMessage"}`) or
/// as `cargo lambda watch` does (a function error as HTTP 500).
#[cfg(feature = "lambda")]
mod direct_invocation {
    use super::*;
    use crate::common::Counting;
    use aws_credential_types::Credentials;
    use axum::Router;
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};
    use axum::routing::post;
    use broker_domain::http::HttpError;
    use broker_domain::storage::Stores;
    use broker_sqlite::SqliteStore;
    use lambda_http::request::RequestContext;
    use lambda_http::{Body, RequestExt};
    use shop_token_client::LambdaTransport;
    use token_vendor::VendHandler;
    use tokio::net::TcpListener;

    type Vendor = VendHandler<SqliteStore, SqliteStore, SqliteStore>;

    struct LambdaApi {
        vendor: Vendor,
        watch_style: bool,
    }

    async fn invoke(State(api): State<Arc<LambdaApi>>, payload: Bytes) -> Response {
        let request = lambda_http::Request::new(Body::from(payload.to_vec()))
            .with_request_context(RequestContext::PassThrough);
        match api.vendor.handle(request).await {
            Ok(response) => (StatusCode::OK, response.body().to_vec()).into_response(),
            Err(error) => {
                let body = serde_json::json!({
                    "errorType": error.code(),
                    "errorMessage": token_vendor::diagnostic(error).error_message,
                })
                .to_string();
                if api.watch_style {
                    (StatusCode::INTERNAL_SERVER_ERROR, body).into_response()
                } else {
                    (
                        StatusCode::OK,
                        [("x-amz-function-error", "Unhandled")],
                        body,
                    )
                        .into_response()
                }
            }
        }
    }

    async fn lambda_api(broker: &LocalBroker, watch_style: bool) -> String {
        let api = Arc::new(LambdaApi {
            vendor: VendHandler::new(
                broker.vendor_config.clone(),
                None,
                Stores::all(broker.store.clone()),
            ),
            watch_style,
        });
        let app = Router::new()
            .route("/2015-03-31/functions/{name}/invocations", post(invoke))
            .with_state(api);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    }

    /// `cargo lambda watch`'s 500s are retried by the SDK like AWS's own
    /// 5xx: a client for it turns retries off.
    fn transport(endpoint: &str, watch_style: bool) -> Arc<Counting<LambdaTransport>> {
        use aws_sdk_lambda::config::retry::RetryConfig;
        let retry = if watch_style {
            RetryConfig::disabled()
        } else {
            RetryConfig::standard()
        };
        let config = aws_sdk_lambda::Config::builder()
            .behavior_version(aws_sdk_lambda::config::BehaviorVersion::latest())
            .retry_config(retry)
            .endpoint_url(endpoint)
            .region(aws_sdk_lambda::config::Region::new("eu-central-1"))
            .credentials_provider(Credentials::new(
                "AKIDEXAMPLE",
                "secret",
                None,
                None,
                "test",
            ))
            .build();
        let client = aws_sdk_lambda::Client::from_conf(config);
        Counting::new(LambdaTransport::new(client, "token-vendor"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_direct_invocation_vends_caches_and_replaces_a_stale_token() {
        let broker = LocalBroker::start(Setup::default()).await;
        broker.install(ESHOP).await;
        let transport = transport(&lambda_api(&broker, false).await, false);
        let client = TokenClient::new(Arc::clone(&transport));

        let token = client.token(&eshop()).await.unwrap();
        assert!(client.token(&eshop()).await.unwrap().is_same_token(&token));
        let fresh = client.report_stale(&token).await.unwrap();
        assert!(!fresh.is_same_token(&token));
        assert_eq!((transport.vends(), broker.mints(ESHOP)), (2, 2));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_function_error_is_the_typed_error_of_its_error_type_on_aws_and_under_watch() {
        let broker = LocalBroker::start(Setup::default()).await;
        broker.install(ESHOP).await;
        for watch_style in [false, true] {
            let transport = transport(&lambda_api(&broker, watch_style).await, watch_style);
            let client = TokenClient::new(Arc::clone(&transport));
            assert_eq!(
                client
                    .token(&Shop::shoptet(999_999).unwrap())
                    .await
                    .unwrap_err(),
                ClientError::NotInstalled,
                "watch style: {watch_style}"
            );
            broker.double.inject(
                Some(Endpoint::ShoptetGetAccessToken),
                Fault::RateLimited {
                    retry_after_secs: 9,
                },
                1,
            );
            assert_eq!(
                client.token(&eshop()).await.unwrap_err(),
                ClientError::RateLimited {
                    retry_after: Duration::from_secs(9)
                },
                "watch style: {watch_style}"
            );
            assert_eq!(transport.vends(), 2, "one invocation per vend");
        }
    }
}
