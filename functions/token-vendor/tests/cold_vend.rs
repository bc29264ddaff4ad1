//! Cold vend: the first request of a new instance costs no more round trips
//! to the stores than a warm instance's L2 miss, and unwraps the writer's
//! data key (KMS) once for every later vend. Every store request is counted
//! at the SDK's HTTP transport (the broker's own, as in `main`).

mod common;

use common::{Fleet, request, shoptet, vend};
use test_support::request_counting::{RequestCounter, TableRoles, counting};
use token_vendor::{AwsVendHandler, Source, VendRequest};

/// A new instance whose store requests are counted.
async fn counted_instance(fleet: &Fleet) -> (AwsVendHandler, RequestCounter) {
    let roles = TableRoles::default()
        .with(&fleet.table, "tokens")
        .with(&fleet.registry_table, "registry");
    let (aws, calls) = counting(&fleet.store_aws, broker_aws::sdk_http::http_client(), roles);
    let instance = token_vendor::build_on_aws(fleet.config(), &aws);
    (instance, calls)
}

#[tokio::test]
async fn a_new_instances_first_vend_costs_no_more_store_requests_than_a_warm_l2_miss() {
    let fleet = Fleet::start().await;
    fleet.install_shoptet(222_701).await;
    fleet.install_shoptet(222_702).await;
    let (shop, other_shop) = (shoptet(222_701), shoptet(222_702));
    let (warm, warm_calls) = counted_instance(&fleet).await;
    let first = vend(&warm, &request(&shop)).await.unwrap();
    vend(&warm, &request(&other_shop)).await.unwrap();
    let (cold, cold_calls) = counted_instance(&fleet).await;
    // Building the instance sent nothing: no secret is read during init.
    assert_eq!(cold_calls.take(), Vec::<String>::new());

    let cold_vend = vend(&cold, &request(&shop)).await.unwrap();
    let cold_requests = cold_calls.take();
    let next_cold_vend = vend(&cold, &request(&other_shop)).await.unwrap();
    let next_cold_requests = cold_calls.take();
    warm_calls.take();
    // A warm instance's L2 miss: its caller reports the cached token refused.
    let stale = VendRequest {
        stale_token: Some(first.token.access_token.clone()),
        ..request(&shop)
    };
    let warm_miss = vend(&warm, &stale).await.unwrap();
    let warm_requests = warm_calls.take();

    assert_eq!(cold_vend.source, Source::L2);
    // The token is sealed: the new instance unwraps the writer's data key.
    assert_eq!(cold_requests, ["dynamodb:GetItem(tokens)", "kms:Decrypt"]);
    // Once: a token the same instance sealed opens with the kept key.
    assert_eq!(next_cold_vend.source, Source::L2);
    assert_eq!(next_cold_requests, ["dynamodb:GetItem(tokens)"]);
    assert_eq!(warm_miss.source, Source::Minted);
    assert!(
        cold_requests.len() <= warm_requests.len(),
        "cold {cold_requests:?}, warm L2 miss {warm_requests:?}"
    );
}
