//! The token cache in DynamoDB: one item per shop, keyed `platform#id`.
//!
//! The lease is taken and released with conditional writes, so exactly one
//! instance refreshes a shop's token at a time. DynamoDB's TTL deletion lags
//! (by up to days), so readers always check expiry themselves.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::aws_errors::summary;
use super::{CacheEntry, CachedToken, Lease, LeaseAttempt, StoreError, TokenCache, entry_expiry};
use crate::ids::ShopRef;
use crate::secret::{ApiAccessToken, ExposeSecret};

/// The table's partition key; `template.yaml` declares the same name.
pub const PARTITION_KEY: &str = "pk";
/// The TTL attribute (epoch seconds); `template.yaml` enables TTL on it.
pub const TTL_ATTRIBUTE: &str = "ttl";

const TOKEN: &str = "token";
const TOKEN_EXPIRES_AT: &str = "token_expires_at";
const SCOPES: &str = "scopes";
const LEDGER: &str = "ledger";
const LEASE_OWNER: &str = "lease_owner";
const LEASE_UNTIL: &str = "lease_until";

type Item = HashMap<String, AttributeValue>;

#[derive(Clone)]
pub struct DynamoTokenCache {
    client: Client,
    table: String,
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
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, AttributeValue::S(shop.key()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| StoreError::Unavailable(summary(&error)))?;
        output.item().map(entry_from_item).transpose()
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
            .expression_attribute_values(":ttl", epoch_seconds(until + super::EXPIRY_GRACE))
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

fn is_conditional_failure<R>(error: &SdkError<UpdateItemError, R>) -> bool {
    error
        .as_service_error()
        .is_some_and(UpdateItemError::is_conditional_check_failed_exception)
}

/// The item as it was when a condition failed (`ReturnValuesOnConditionCheckFailure`).
fn conditional_failure_item<R>(error: &SdkError<UpdateItemError, R>) -> Option<Item> {
    match error.as_service_error()? {
        UpdateItemError::ConditionalCheckFailedException(failure) => {
            Some(failure.item().cloned().unwrap_or_default())
        }
        _ => None,
    }
}

fn millis(at: SystemTime) -> AttributeValue {
    let ms = at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    AttributeValue::N(ms.to_string())
}

fn epoch_seconds(at: SystemTime) -> AttributeValue {
    let secs = at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    AttributeValue::N(secs.to_string())
}

fn entry_from_item(item: &Item) -> Result<CacheEntry, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("token cache item: bad {what}"));
    let time = |value: &AttributeValue| -> Option<SystemTime> {
        let ms: u64 = value.as_n().ok()?.parse().ok()?;
        Some(UNIX_EPOCH + Duration::from_millis(ms))
    };
    let token = match item.get(TOKEN) {
        None => None,
        Some(value) => Some(CachedToken {
            access_token: ApiAccessToken::new(value.as_s().map_err(|_| corrupt(TOKEN))?.clone()),
            expires_at: item
                .get(TOKEN_EXPIRES_AT)
                .and_then(time)
                .ok_or_else(|| corrupt(TOKEN_EXPIRES_AT))?,
            scopes: match item.get(SCOPES) {
                None => Vec::new(),
                Some(list) => list
                    .as_l()
                    .map_err(|_| corrupt(SCOPES))?
                    .iter()
                    .filter_map(|scope| scope.as_s().ok().cloned())
                    .collect(),
            },
        }),
    };
    let lease = match (item.get(LEASE_OWNER), item.get(LEASE_UNTIL)) {
        (Some(owner), Some(until)) => Some(Lease {
            owner: owner.as_s().map_err(|_| corrupt(LEASE_OWNER))?.clone(),
            expires_at: time(until).ok_or_else(|| corrupt(LEASE_UNTIL))?,
        }),
        _ => None,
    };
    let ledger = match item.get(LEDGER) {
        None => Vec::new(),
        Some(list) => list
            .as_l()
            .map_err(|_| corrupt(LEDGER))?
            .iter()
            .map(|at| time(at).ok_or_else(|| corrupt(LEDGER)))
            .collect::<Result<_, _>>()?,
    };
    Ok(CacheEntry {
        token,
        lease,
        ledger,
    })
}
