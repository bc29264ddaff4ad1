//! Cold vend: the first request of a new instance costs no more round trips
//! to the stores than a warm instance's L2 miss. Every store request is
//! counted at the SDK's HTTP transport (the broker's own, as in `main`).

mod common;

use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use common::{Fleet, request, shoptet, vend};
use token_vendor::{AwsVendHandler, Source, VendRequest};

/// The operations (`X-Amz-Target`) an instance sent to the stores, in order.
#[derive(Debug, Clone, Default)]
struct StoreCalls(Arc<Mutex<Vec<String>>>);

impl StoreCalls {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

#[derive(Debug)]
struct Counting {
    inner: SharedHttpClient,
    calls: StoreCalls,
}

impl HttpClient for Counting {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(CountingConnector {
            inner: self.inner.http_connector(settings, components),
            calls: self.calls.clone(),
        })
    }
}

#[derive(Debug)]
struct CountingConnector {
    inner: SharedHttpConnector,
    calls: StoreCalls,
}

impl HttpConnector for CountingConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let operation = request.headers().get("x-amz-target").unwrap_or("?");
        // `DynamoDB_20120810.GetItem` → `GetItem`.
        let operation = operation.rsplit('.').next().unwrap_or(operation).to_owned();
        self.calls.0.lock().unwrap().push(operation);
        self.inner.call(request)
    }
}

/// A new instance whose store requests are counted.
async fn counted_instance(fleet: &Fleet) -> (AwsVendHandler, StoreCalls) {
    let calls = StoreCalls::default();
    let aws = aws_config::from_env()
        .endpoint_url(fleet.store_aws.endpoint_url().unwrap())
        .region(fleet.store_aws.region().cloned())
        .credentials_provider(fleet.store_aws.credentials_provider().unwrap())
        .http_client(SharedHttpClient::new(Counting {
            inner: broker_shared::aws_http::http_client(),
            calls: calls.clone(),
        }))
        .load()
        .await;
    let instance = token_vendor::build_on_aws(fleet.config(), &aws)
        .await
        .unwrap();
    (instance, calls)
}

#[tokio::test]
async fn a_new_instances_first_vend_costs_no_more_store_requests_than_a_warm_l2_miss() {
    let fleet = Fleet::start().await;
    fleet.install_shoptet(222_701).await;
    let shop = shoptet(222_701);
    let (warm, warm_calls) = counted_instance(&fleet).await;
    let first = vend(&warm, &request(&shop)).await.unwrap();
    let (cold, cold_calls) = counted_instance(&fleet).await;
    // Building the instance sent nothing: no secret is read during init.
    assert_eq!(cold_calls.take(), Vec::<String>::new());

    let cold_vend = vend(&cold, &request(&shop)).await.unwrap();
    let cold_requests = cold_calls.take();
    warm_calls.take();
    // A warm instance's L2 miss: its caller reports the cached token refused.
    let stale = VendRequest {
        stale_token: Some(first.token.access_token.clone()),
        ..request(&shop)
    };
    let warm_miss = vend(&warm, &stale).await.unwrap();
    let warm_requests = warm_calls.take();

    assert_eq!(cold_vend.source, Source::L2);
    assert_eq!(cold_requests, ["GetItem"]);
    assert_eq!(warm_miss.source, Source::Minted);
    assert!(
        cold_requests.len() <= warm_requests.len(),
        "cold {cold_requests:?}, warm L2 miss {warm_requests:?}"
    );
}
