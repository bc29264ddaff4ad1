//! The e-shop webhook notifications already forwarded, in the token table:
//! one item per notification keyed [`delivery_key`]
//! (`eshop-webhook#<fingerprint hex>`, never a shop's own key, and the token
//! table is never scanned or listed), holding nothing but its TTL at
//! `keep_until`. The table is the token cache's, as for the accepted signed
//! redirects: it already has TTL.

use std::time::SystemTime;

use aws_sdk_dynamodb::types::AttributeValue;

use super::aws_errors::summary;
use super::dynamo_item::{PARTITION_KEY, TTL_ATTRIBUTE, epoch_seconds, is_conditional_failure};
use super::dynamodb::DynamoTokenCache;
use crate::model::DeliveryFingerprint;
use broker_domain::storage::{DeliveryLog, StoreError, delivery_key};

/// A record is kept until DynamoDB's TTL deletes it, which may be days past
/// `keep_until`: until then it still counts as forwarded (the port lets the
/// backend forget it, not requires it to).
impl DeliveryLog for DynamoTokenCache {
    async fn was_forwarded(&self, delivery: &DeliveryFingerprint) -> Result<bool, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, AttributeValue::S(delivery_key(delivery)))
            // Only the key: the item holds nothing else worth reading.
            .projection_expression("#pk")
            .expression_attribute_names("#pk", PARTITION_KEY)
            // A record written by another instance a moment ago counts.
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| StoreError::Unavailable(summary(&error)))?;
        Ok(output.item.is_some_and(|item| !item.is_empty()))
    }

    /// An unconditional write: recording again only moves the TTL, so the
    /// call is idempotent without a condition. UpdateItem rather than
    /// PutItem (same effect on an item holding only its TTL): the functions
    /// may UpdateItem on the token table, and none may PutItem.
    async fn record_forwarded(
        &self,
        delivery: &DeliveryFingerprint,
        keep_until: SystemTime,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, AttributeValue::S(delivery_key(delivery)))
            .update_expression("SET #ttl = :ttl")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":ttl", epoch_seconds(keep_until))
            .send()
            .await
            .map_err(|error| StoreError::Unavailable(summary(&error)))?;
        Ok(())
    }

    /// The same write, on the condition that no live record exists (TTL
    /// deletes an expired one only eventually, so the condition reads it).
    async fn claim(
        &self,
        delivery: &DeliveryFingerprint,
        keep_until: SystemTime,
    ) -> Result<bool, StoreError> {
        let written = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, AttributeValue::S(delivery_key(delivery)))
            .update_expression("SET #ttl = :ttl")
            .condition_expression("attribute_not_exists(#pk) OR #ttl < :now")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_names("#pk", PARTITION_KEY)
            .expression_attribute_values(":ttl", epoch_seconds(keep_until))
            .expression_attribute_values(":now", epoch_seconds(SystemTime::now()))
            .send()
            .await;
        match written {
            Ok(_) => Ok(true),
            Err(error) if is_conditional_failure(&error) => Ok(false),
            Err(error) => Err(StoreError::Unavailable(summary(&error))),
        }
    }
}
