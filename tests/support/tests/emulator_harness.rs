//! Proves the harness over the real AWS SDK against the emulator: tables with
//! TTL, conditional writes, secrets and their versions, and a store that cannot
//! be reached. Tests run in parallel, each on its own uniquely named resources.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{
    AttributeValue, BillingMode, KeyType, ReturnValuesOnConditionCheckFailure, TableStatus,
    TimeToLiveStatus,
};
use test_support::{
    TOKEN_TABLE_PARTITION_KEY as PK, TOKEN_TABLE_TTL_ATTRIBUTE as TTL, create_token_table,
    emulator_sdk_config, sdk_config_for_endpoint, unique_name, unreachable_endpoint,
};

/// A fresh token table and a client for it.
async fn new_token_table() -> (aws_sdk_dynamodb::Client, String) {
    let config = emulator_sdk_config().await;
    let table = unique_name("harness-tokens");
    create_token_table(&config, &table).await;
    (aws_sdk_dynamodb::Client::new(&config), table)
}

async fn secrets_client() -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&emulator_sdk_config().await)
}

fn token_item(key: &str, token: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PK.to_string(), AttributeValue::S(key.to_string())),
        ("token".to_string(), AttributeValue::S(token.to_string())),
        (TTL.to_string(), AttributeValue::N("4102444800".to_string())),
    ])
}

#[tokio::test]
async fn a_created_token_table_is_active_on_demand_and_keyed_by_pk() {
    let (client, table) = new_token_table().await;

    let described = client
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .expect("describe table");
    let description = described.table().expect("table description");
    assert_eq!(description.table_status(), Some(&TableStatus::Active));
    let keys = description.key_schema();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].attribute_name(), PK);
    assert_eq!(keys[0].key_type(), &KeyType::Hash);
    assert_eq!(
        description
            .billing_mode_summary()
            .and_then(|b| b.billing_mode()),
        Some(&BillingMode::PayPerRequest)
    );
}

#[tokio::test]
async fn a_created_token_table_has_ttl_enabled_on_the_ttl_attribute() {
    let (client, table) = new_token_table().await;

    let ttl = client
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .expect("describe TTL");
    let ttl = ttl.time_to_live_description().expect("TTL description");
    assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));
    assert_eq!(ttl.attribute_name(), Some(TTL));
}

#[tokio::test]
async fn an_item_put_into_the_table_can_be_read_back() {
    let (client, table) = new_token_table().await;

    client
        .put_item()
        .table_name(&table)
        .set_item(Some(token_item("install#1", "first")))
        .send()
        .await
        .expect("put item");

    let got = client
        .get_item()
        .table_name(&table)
        .key(PK, AttributeValue::S("install#1".into()))
        .consistent_read(true)
        .send()
        .await
        .expect("get item");
    assert_eq!(got.item(), Some(&token_item("install#1", "first")));
}

#[tokio::test]
async fn conditional_put_on_a_new_key_succeeds() {
    let (client, table) = new_token_table().await;

    client
        .put_item()
        .table_name(&table)
        .set_item(Some(token_item("install#1", "first")))
        .condition_expression("attribute_not_exists(#pk)")
        .expression_attribute_names("#pk", PK)
        .send()
        .await
        .expect("conditional put on a new key");
}

#[tokio::test]
async fn conditional_put_on_an_existing_key_is_refused() {
    let (client, table) = new_token_table().await;
    client
        .put_item()
        .table_name(&table)
        .set_item(Some(token_item("install#1", "first")))
        .send()
        .await
        .expect("first put");

    let err = client
        .put_item()
        .table_name(&table)
        .set_item(Some(token_item("install#1", "second")))
        .condition_expression("attribute_not_exists(#pk)")
        .expression_attribute_names("#pk", PK)
        .send()
        .await
        .expect_err("a second put on the same key must be refused");
    let err = err.into_service_error();
    assert!(err.is_conditional_check_failed_exception(), "{err:?}");

    let stored = client
        .get_item()
        .table_name(&table)
        .key(PK, AttributeValue::S("install#1".into()))
        .consistent_read(true)
        .send()
        .await
        .expect("get item");
    assert_eq!(stored.item(), Some(&token_item("install#1", "first")));
}

#[tokio::test]
async fn a_refused_conditional_put_returns_the_old_item_when_asked() {
    let (client, table) = new_token_table().await;
    client
        .put_item()
        .table_name(&table)
        .set_item(Some(token_item("install#1", "first")))
        .send()
        .await
        .expect("first put");

    let err = client
        .put_item()
        .table_name(&table)
        .set_item(Some(token_item("install#1", "second")))
        .condition_expression("attribute_not_exists(#pk)")
        .expression_attribute_names("#pk", PK)
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .send()
        .await
        .expect_err("a second put on the same key must be refused");
    match err.into_service_error() {
        aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(
            refused,
        ) => assert_eq!(refused.item(), Some(&token_item("install#1", "first"))),
        other => panic!("expected ConditionalCheckFailedException, got {other:?}"),
    }
}

#[tokio::test]
async fn a_created_secret_can_be_read_back() {
    let client = secrets_client().await;
    let name = format!("broker/test/{}", unique_name("secret"));

    client
        .create_secret()
        .name(&name)
        .secret_string("s3cr3t-value")
        .send()
        .await
        .expect("create secret");

    let got = client
        .get_secret_value()
        .secret_id(&name)
        .send()
        .await
        .expect("get secret value");
    assert_eq!(got.secret_string(), Some("s3cr3t-value"));
    assert!(got.version_stages().iter().any(|s| s == "AWSCURRENT"));
}

#[tokio::test]
async fn a_new_secret_version_becomes_awscurrent_and_the_old_one_awsprevious() {
    let client = secrets_client().await;
    let name = format!("broker/test/{}", unique_name("rotated"));
    let first = client
        .create_secret()
        .name(&name)
        .secret_string("version-one")
        .send()
        .await
        .expect("create secret");

    let second = client
        .put_secret_value()
        .secret_id(&name)
        .secret_string("version-two")
        .send()
        .await
        .expect("put secret value");
    assert_ne!(first.version_id(), second.version_id());

    let current = client
        .get_secret_value()
        .secret_id(&name)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .expect("get AWSCURRENT");
    assert_eq!(current.secret_string(), Some("version-two"));
    assert_eq!(current.version_id(), second.version_id());

    let previous = client
        .get_secret_value()
        .secret_id(&name)
        .version_stage("AWSPREVIOUS")
        .send()
        .await
        .expect("get AWSPREVIOUS");
    assert_eq!(previous.secret_string(), Some("version-one"));
}

#[tokio::test]
async fn creating_a_secret_that_exists_is_refused() {
    let client = secrets_client().await;
    let name = format!("broker/test/{}", unique_name("twice"));
    client
        .create_secret()
        .name(&name)
        .secret_string("one")
        .send()
        .await
        .expect("create secret");

    let err = client
        .create_secret()
        .name(&name)
        .secret_string("two")
        .send()
        .await
        .expect_err("a second create must be refused")
        .into_service_error();
    assert!(err.is_resource_exists_exception(), "{err:?}");
}

#[tokio::test]
async fn reading_a_missing_secret_is_resource_not_found() {
    let client = secrets_client().await;
    let err = client
        .get_secret_value()
        .secret_id(format!("broker/test/{}", unique_name("missing")))
        .send()
        .await
        .expect_err("the secret does not exist")
        .into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");
}

#[tokio::test]
async fn an_unreachable_store_fails_fast_without_a_service_error() {
    let config = sdk_config_for_endpoint(&unreachable_endpoint()).await;
    let client = aws_sdk_dynamodb::Client::new(&config);

    let started = Instant::now();
    let err = client
        .get_item()
        .table_name("nothing-listens-here")
        .key(PK, AttributeValue::S("install#1".into()))
        .send()
        .await
        .expect_err("nothing listens on the endpoint");
    let elapsed = started.elapsed();

    assert!(
        matches!(
            err,
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_)
        ),
        "{err:?}"
    );
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
}
