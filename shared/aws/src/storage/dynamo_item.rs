//! What the DynamoDB adapters (token cache, registry, installations) share:
//! the item shape, the partition key, the TTL attribute, time attributes,
//! the consistent read of one shop's item and the test for a failed
//! condition.

use std::collections::HashMap;
use std::time::SystemTime;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::AttributeValue;

use super::aws_errors::summary;
use crate::ids::ShopRef;
use broker_domain::storage::StoreError;
use broker_domain::storage::raw;

/// Both tables' partition key (S): [`ShopRef::key`]. `template.yaml`
/// declares the same name.
pub const PARTITION_KEY: &str = "pk";

/// The TTL attribute (epoch seconds) of the tables that expire items;
/// `template.yaml` enables TTL on it.
pub const TTL_ATTRIBUTE: &str = "ttl";

pub(super) type Item = HashMap<String, AttributeValue>;

/// Epoch milliseconds, as both tables store times.
pub(super) fn millis(at: SystemTime) -> AttributeValue {
    AttributeValue::N(raw::millis(at).to_string())
}

/// Epoch seconds, as DynamoDB's TTL reads them.
pub(super) fn epoch_seconds(at: SystemTime) -> AttributeValue {
    AttributeValue::N(raw::epoch_seconds(at).to_string())
}

/// A strongly consistent read of the shop's item in `table`.
pub(super) async fn consistent_get(
    client: &Client,
    table: &str,
    shop: &ShopRef,
) -> Result<Option<Item>, StoreError> {
    let output = client
        .get_item()
        .table_name(table)
        .key(PARTITION_KEY, AttributeValue::S(shop.key()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|error| StoreError::Unavailable(summary(&error)))?;
    Ok(output.item)
}

/// Whether a conditional write (update, put or delete) failed its condition.
pub(super) fn is_conditional_failure<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> bool {
    error
        .as_service_error()
        .is_some_and(|error| error.code() == Some("ConditionalCheckFailedException"))
}

/// A conditional write that, when its condition fails, leaves nothing to do
/// (the item is no longer ours to change): done either way; any other
/// failure is the store's.
pub(super) fn done_unless_unavailable<T, E: ProvideErrorMetadata, R>(
    result: Result<T, SdkError<E, R>>,
) -> Result<(), StoreError> {
    match result {
        Ok(_) => Ok(()),
        Err(error) if is_conditional_failure(&error) => Ok(()),
        Err(error) => Err(StoreError::Unavailable(summary(&error))),
    }
}

/// The item as it was when a condition failed (`ReturnValuesOnConditionCheckFailure`).
pub(super) fn conditional_failure_item<R>(error: &SdkError<UpdateItemError, R>) -> Option<Item> {
    match error.as_service_error()? {
        UpdateItemError::ConditionalCheckFailedException(failure) => {
            Some(failure.item().cloned().unwrap_or_default())
        }
        _ => None,
    }
}
