//! The token cache in DynamoDB: one item per shop, keyed `platform#id`.
//!
//! The lease is taken and released with conditional writes, so exactly one
//! instance refreshes a shop's token at a time. DynamoDB's TTL deletion lags
//! (by up to days), so readers always check expiry themselves.

use std::time::SystemTime;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::aws_errors::summary;
use super::dynamo_item::{
    Item, conditional_failure_item, consistent_get, epoch_seconds, is_conditional_failure, millis,
};
use crate::ids::ShopRef;
use crate::model::{CacheEntry, CachedToken};
use crate::secret::ExposeSecret;
use broker_domain::storage::raw::{RawEntry, corrupt};
use broker_domain::storage::{LeaseAttempt, StoreError, TokenCache, entry_expiry};

pub use super::dynamo_item::{PARTITION_KEY, TTL_ATTRIBUTE};

const TOKEN: &str = "token";
const TOKEN_EXPIRES_AT: &str = "token_expires_at";
const SCOPES: &str = "scopes";
const LEDGER: &str = "ledger";
const LEASE_OWNER: &str = "lease_owner";
const LEASE_UNTIL: &str = "lease_until";

#[derive(Clone)]
pub struct DynamoTokenCache {
    pub(super) client: Client,
    pub(super) table: String,
}

impl DynamoTokenCache {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

impl TokenCache for DynamoTokenCache {
    async fn load(&self, shop: &ShopRef) -> Result<Option<CacheEntry>, StoreError> {
        consistent_get(&self.client, &self.table, shop)
            .await?
            .as_ref()
            .map(entry_from_item)
            .transpose()
    }

    async fn try_lease(
        &self,
        shop: &ShopRef,
        owner: &str,
        now: SystemTime,
        until: SystemTime,
    ) -> Result<LeaseAttempt, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, AttributeValue::S(shop.key()))
            .update_expression(
                "SET #owner = :owner, #until = :until, #ttl = if_not_exists(#ttl, :ttl)",
            )
            .condition_expression("attribute_not_exists(#owner) OR #until < :now")
            .expression_attribute_names("#owner", LEASE_OWNER)
            .expression_attribute_names("#until", LEASE_UNTIL)
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":owner", AttributeValue::S(owner.to_owned()))
            .expression_attribute_values(":until", millis(until))
            .expression_attribute_values(":now", millis(now))
            .expression_attribute_values(
                ":ttl",
                epoch_seconds(until + broker_domain::storage::EXPIRY_GRACE),
            )
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => Ok(LeaseAttempt::Acquired(entry_from_item(
                output.attributes().unwrap_or(&Item::new()),
            )?)),
            Err(error) => match conditional_failure_item(&error) {
                Some(old) => Ok(LeaseAttempt::Busy(entry_from_item(&old)?)),
                None => Err(StoreError::Unavailable(summary(&error))),
            },
        }
    }

    async fn store_and_release(
        &self,
        shop: &ShopRef,
        owner: &str,
        token: &CachedToken,
        ledger: &[SystemTime],
    ) -> Result<bool, StoreError> {
        let scopes = token
            .scopes
            .iter()
            .map(|scope| AttributeValue::S(scope.clone()))
            .collect();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, AttributeValue::S(shop.key()))
            .update_expression(
                "SET #token = :token, #expires = :expires, #scopes = :scopes, #ledger = :ledger, \
                 #ttl = :ttl REMOVE #owner, #until",
            )
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#token", TOKEN)
            .expression_attribute_names("#expires", TOKEN_EXPIRES_AT)
            .expression_attribute_names("#scopes", SCOPES)
            .expression_attribute_names("#ledger", LEDGER)
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_names("#owner", LEASE_OWNER)
            .expression_attribute_names("#until", LEASE_UNTIL)
            .expression_attribute_values(
                ":token",
                AttributeValue::S(token.access_token.expose_secret().to_owned()),
            )
            .expression_attribute_values(":expires", millis(token.expires_at))
            .expression_attribute_values(":scopes", AttributeValue::L(scopes))
            .expression_attribute_values(
                ":ledger",
                AttributeValue::L(ledger.iter().map(|at| millis(*at)).collect()),
            )
            .expression_attribute_values(":ttl", epoch_seconds(entry_expiry(token, ledger)))
            .expression_attribute_values(":owner", AttributeValue::S(owner.to_owned()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) if is_conditional_failure(&error) => Ok(false),
            Err(error) => Err(StoreError::Unavailable(summary(&error))),
        }
    }

    async fn release(&self, shop: &ShopRef, owner: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, AttributeValue::S(shop.key()))
            .update_expression("REMOVE #owner, #until")
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", LEASE_OWNER)
            .expression_attribute_names("#until", LEASE_UNTIL)
            .expression_attribute_values(":owner", AttributeValue::S(owner.to_owned()))
            .send()
            .await;
        match result {
            // Someone took over an expired lease: nothing of ours to release.
            Ok(_) => Ok(()),
            Err(error) if is_conditional_failure(&error) => Ok(()),
            Err(error) => Err(StoreError::Unavailable(summary(&error))),
        }
    }

    async fn forget(&self, shop: &ShopRef) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, AttributeValue::S(shop.key()))
            .send()
            .await
            .map_err(|error| StoreError::Unavailable(summary(&error)))?;
        Ok(())
    }
}

/// Reads the item's attributes; what they mean is decided by [`RawEntry`].
fn entry_from_item(item: &Item) -> Result<CacheEntry, StoreError> {
    let string = |name: &str| -> Result<Option<String>, StoreError> {
        item.get(name)
            .map(|value| value.as_s().cloned().map_err(|_| corrupt(name)))
            .transpose()
    };
    let number = |value: &AttributeValue, name: &str| -> Result<i64, StoreError> {
        value
            .as_n()
            .ok()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| corrupt(name))
    };
    let list = |name: &str| -> Result<Option<&Vec<AttributeValue>>, StoreError> {
        item.get(name)
            .map(|value| value.as_l().map_err(|_| corrupt(name)))
            .transpose()
    };
    RawEntry {
        token: string(TOKEN)?,
        token_expires_ms: item
            .get(TOKEN_EXPIRES_AT)
            .map(|value| number(value, TOKEN_EXPIRES_AT))
            .transpose()?,
        scopes: list(SCOPES)?.map(|scopes| {
            scopes
                .iter()
                .filter_map(|scope| scope.as_s().ok().cloned())
                .collect()
        }),
        ledger_ms: list(LEDGER)?
            .map(|ledger| ledger.iter().map(|at| number(at, LEDGER)).collect())
            .transpose()?,
        lease_owner: string(LEASE_OWNER)?,
        lease_until_ms: item
            .get(LEASE_UNTIL)
            .map(|value| number(value, LEASE_UNTIL))
            .transpose()?,
    }
    .into_entry()
}
