//! The installation registry in DynamoDB: one item per shop, keyed like the
//! token table, with a `platform` index for listing one platform.
//!
//! Every write is one `UpdateItem`, so a change and the registration it
//! replaced are decided atomically; the re-check claim is a conditional
//! write. Times are epoch milliseconds (N).

use std::time::SystemTime;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use super::aws_errors::summary;
use super::dynamo_item::{Item, consistent_get, is_conditional_failure, millis};
use crate::ids::ShopRef;
use crate::model::{InstallationStatus, Registration, StatusChange};
use broker_domain::storage::raw::{RawRegistration, corrupt_registration};
use broker_domain::storage::{InstallationRegistry, RegistryPage, RegistryQuery, StoreError};

pub use super::dynamo_item::PARTITION_KEY;
/// The global secondary index listing one platform: partition key
/// [`PLATFORM`] (S), sort key [`PARTITION_KEY`] (S), every attribute projected.
pub const PLATFORM_INDEX: &str = "by-platform";
/// [`crate::ids::Platform::as_str`] (S); the index's partition key.
pub const PLATFORM: &str = "platform";

const STATUS: &str = "status";
const INSTALLED_AT: &str = "installed_at";
const UPDATED_AT: &str = "updated_at";
const RECHECK_AT: &str = "recheck_at";

#[derive(Debug, Clone)]
pub struct DynamoRegistry {
    client: Client,
    table: String,
}

impl DynamoRegistry {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

impl InstallationRegistry for DynamoRegistry {
    async fn registration(&self, shop: &ShopRef) -> Result<Option<Registration>, StoreError> {
        consistent_get(&self.client, &self.table, shop)
            .await?
            .as_ref()
            .map(registration_from_item)
            .transpose()
    }

    async fn record(
        &self,
        shop: &ShopRef,
        change: &StatusChange,
    ) -> Result<Option<Registration>, StoreError> {
        // A (re)install starts now; otherwise the known install time stays
        // (a shop not known yet starts now).
        let installed = if change.installed {
            "#installed = :at"
        } else {
            "#installed = if_not_exists(#installed, :at)"
        };
        let (recheck_set, recheck_remove) = match change.recheck_at {
            Some(_) => (", #recheck = :recheck", ""),
            None => ("", " REMOVE #recheck"),
        };
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, AttributeValue::S(shop.key()))
            .update_expression(format!(
                "SET #platform = :platform, #status = :status, #updated = :at, \
                 {installed}{recheck_set}{recheck_remove}"
            ))
            .expression_attribute_names("#platform", PLATFORM)
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_names("#updated", UPDATED_AT)
            .expression_attribute_names("#installed", INSTALLED_AT)
            .expression_attribute_names("#recheck", RECHECK_AT)
            .expression_attribute_values(
                ":platform",
                AttributeValue::S(shop.platform().as_str().to_owned()),
            )
            .expression_attribute_values(":status", status(change.status))
            .expression_attribute_values(":at", millis(change.at))
            .return_values(ReturnValue::AllOld);
        if let Some(recheck_at) = change.recheck_at {
            update = update.expression_attribute_values(":recheck", millis(recheck_at));
        }
        let output = update
            .send()
            .await
            .map_err(|error| StoreError::Unavailable(summary(&error)))?;
        // A new item has no old attributes.
        match output.attributes() {
            Some(old) if !old.is_empty() => registration_from_item(old).map(Some),
            _ => Ok(None),
        }
    }

    async fn claim_recheck(
        &self,
        shop: &ShopRef,
        now: SystemTime,
        next: SystemTime,
    ) -> Result<bool, StoreError> {
        // An unknown shop has no status: the condition fails and nothing is
        // created.
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, AttributeValue::S(shop.key()))
            .update_expression("SET #recheck = :next")
            .condition_expression(
                "#status = :suspended AND (attribute_not_exists(#recheck) OR #recheck <= :now)",
            )
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_names("#recheck", RECHECK_AT)
            .expression_attribute_values(":suspended", status(InstallationStatus::Suspended))
            .expression_attribute_values(":now", millis(now))
            .expression_attribute_values(":next", millis(next))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) if is_conditional_failure(&error) => Ok(false),
            Err(error) => Err(StoreError::Unavailable(summary(&error))),
        }
    }

    /// One platform: a Query of the platform index (in key order); every
    /// platform: a Scan (in DynamoDB's order). `Limit` bounds the items read
    /// before the status filter, so a page may hold fewer.
    async fn list(&self, query: &RegistryQuery) -> Result<RegistryPage, StoreError> {
        let limit = i32::try_from(query.limit.get()).unwrap_or(i32::MAX);
        let filter = query.status.map(|wanted| {
            (
                "#status = :status",
                ("#status", STATUS),
                (":status", status(wanted)),
            )
        });
        let after = |platform_too: bool| {
            query.after.as_ref().map(|after| {
                let mut key =
                    Item::from([(PARTITION_KEY.to_owned(), AttributeValue::S(after.key()))]);
                if platform_too {
                    key.insert(
                        PLATFORM.to_owned(),
                        AttributeValue::S(after.platform().as_str().to_owned()),
                    );
                }
                key
            })
        };
        let (items, last_key) = match query.platform {
            Some(platform) => {
                let mut request = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(PLATFORM_INDEX)
                    .key_condition_expression("#platform = :platform")
                    .expression_attribute_names("#platform", PLATFORM)
                    .expression_attribute_values(
                        ":platform",
                        AttributeValue::S(platform.as_str().to_owned()),
                    )
                    .limit(limit)
                    .set_exclusive_start_key(after(true));
                if let Some((expression, (name, attribute), (placeholder, value))) = filter {
                    request = request
                        .filter_expression(expression)
                        .expression_attribute_names(name, attribute)
                        .expression_attribute_values(placeholder, value);
                }
                let output = request
                    .send()
                    .await
                    .map_err(|error| StoreError::Unavailable(summary(&error)))?;
                (output.items, output.last_evaluated_key)
            }
            None => {
                let mut request = self
                    .client
                    .scan()
                    .table_name(&self.table)
                    .limit(limit)
                    .set_exclusive_start_key(after(false));
                if let Some((expression, (name, attribute), (placeholder, value))) = filter {
                    request = request
                        .filter_expression(expression)
                        .expression_attribute_names(name, attribute)
                        .expression_attribute_values(placeholder, value);
                }
                let output = request
                    .send()
                    .await
                    .map_err(|error| StoreError::Unavailable(summary(&error)))?;
                (output.items, output.last_evaluated_key)
            }
        };
        let registrations = items
            .unwrap_or_default()
            .iter()
            .map(registration_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        let next_after = last_key
            .as_ref()
            .map(|key| {
                key.get(PARTITION_KEY)
                    .and_then(|pk| pk.as_s().ok())
                    .and_then(|pk| ShopRef::from_key(pk).ok())
                    .ok_or_else(|| {
                        StoreError::Corrupt(
                            "the registry's last evaluated key is unreadable".into(),
                        )
                    })
            })
            .transpose()?;
        Ok(RegistryPage {
            registrations,
            next_after,
        })
    }
}

fn status(status: InstallationStatus) -> AttributeValue {
    AttributeValue::S(status.as_str().to_owned())
}

/// Reads the item's attributes; what they mean is decided by
/// [`RawRegistration`]. Errors name the shop's key and the field only.
fn registration_from_item(item: &Item) -> Result<Registration, StoreError> {
    let key = item
        .get(PARTITION_KEY)
        .map(|pk| {
            pk.as_s()
                .cloned()
                .map_err(|_| StoreError::Corrupt("a registration's shop key is unreadable".into()))
        })
        .transpose()?;
    let label = key.as_deref().unwrap_or("an unkeyed item");
    let string = |name: &str| -> Result<Option<String>, StoreError> {
        item.get(name)
            .map(|value| {
                value
                    .as_s()
                    .cloned()
                    .map_err(|_| corrupt_registration(label, name))
            })
            .transpose()
    };
    let number = |name: &str| -> Result<Option<i64>, StoreError> {
        item.get(name)
            .map(|value| {
                value
                    .as_n()
                    .ok()
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| corrupt_registration(label, name))
            })
            .transpose()
    };
    RawRegistration {
        platform: string(PLATFORM)?,
        status: string(STATUS)?,
        installed_ms: number(INSTALLED_AT)?,
        updated_ms: number(UPDATED_AT)?,
        recheck_ms: number(RECHECK_AT)?,
        key,
    }
    .into_registration()
}
