//! The installation registry in DynamoDB: one item per shop, keyed like the
//! token table, with a `platform` index for listing one platform.
//!
//! A change is decided on the item as read and written with `PutItem` only
//! if the item's `version` is still the one read (optimistic concurrency,
//! retried on a lost race), so a change, the registration it replaced and
//! the lifecycle event it is are one atomic write: the event is the item's
//! `event` attribute, and the table's stream (NEW_AND_OLD_IMAGES) carries
//! it to the publisher, which publishes a record whose `sequence` grew.
//! The re-check claim is a conditional write that also moves `version`.
//! Times are epoch milliseconds (N).

use std::time::SystemTime;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;

use super::aws_errors::summary;
use super::dynamo_item::{Item, consistent_get, is_conditional_failure, millis};
use crate::ids::ShopRef;
use crate::model::{InstallationStatus, Registration, StatusChange};
use broker_domain::events::{InstallationEvent, MintOutcome, apply_change, apply_mint};
use broker_domain::storage::raw::{RawRegistration, corrupt_registration, to_stored};
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
/// The shop's last event's sequence number (N): the publisher publishes a
/// stream record whose new `sequence` is greater than its old one.
pub const SEQUENCE: &str = "sequence";
const MINT_FAILURES: &str = "mint_failures";
/// Moves with every write (N): what a conditional write compares.
const VERSION: &str = "version";
/// The event the write that set [`SEQUENCE`] committed: its JSON (S).
pub const EVENT: &str = "event";

/// Lost races a write retries before giving up as unavailable: each retry
/// means another writer committed, so this many is a storm, not a race.
const WRITE_ATTEMPTS: usize = 8;

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
        let decide = |previous: Option<&Registration>| apply_change(shop, previous, change);
        let (previous, _) = self.write_decided(shop, decide).await?;
        Ok(previous)
    }

    async fn record_mint(
        &self,
        shop: &ShopRef,
        outcome: &MintOutcome,
        at: SystemTime,
    ) -> Result<Option<InstallationEvent>, StoreError> {
        let decide = |previous: Option<&Registration>| {
            previous.and_then(|previous| apply_mint(previous, outcome, at))
        };
        let (_, event) = self.write_decided(shop, decide).await?;
        Ok(event)
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
            .update_expression("SET #recheck = :next ADD #version :one")
            .condition_expression(
                "#status = :suspended AND (attribute_not_exists(#recheck) OR #recheck <= :now)",
            )
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_names("#recheck", RECHECK_AT)
            .expression_attribute_names("#version", VERSION)
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
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

/// A shop's item as read: its registration and the version a write must
/// find unchanged.
struct Read {
    registration: Option<Registration>,
    /// `None`: no item, or an item from before versions.
    version: Option<i64>,
    exists: bool,
}

impl DynamoRegistry {
    /// Reads the shop's item, lets `decide` say what to write (nothing, or
    /// a registration and its event), and writes it if no one wrote the item
    /// since; on a lost race, reads and decides again. The registration
    /// read and the event written.
    async fn write_decided(
        &self,
        shop: &ShopRef,
        decide: impl Fn(Option<&Registration>) -> Option<(Registration, Option<InstallationEvent>)>,
    ) -> Result<(Option<Registration>, Option<InstallationEvent>), StoreError> {
        for _ in 0..WRITE_ATTEMPTS {
            let read = self.read(shop).await?;
            let Some((next, event)) = decide(read.registration.as_ref()) else {
                return Ok((read.registration, None));
            };
            if self.put_if_unchanged(&read, &next, event.as_ref()).await? {
                return Ok((read.registration, event));
            }
        }
        Err(lost_races())
    }

    async fn read(&self, shop: &ShopRef) -> Result<Read, StoreError> {
        let item = consistent_get(&self.client, &self.table, shop).await?;
        let version = match &item {
            Some(item) => number(item, VERSION)?,
            None => None,
        };
        Ok(Read {
            registration: item.as_ref().map(registration_from_item).transpose()?,
            version,
            exists: item.is_some(),
        })
    }

    /// Puts the whole item (and its event) if no one wrote it since `read`;
    /// `false`: someone did, decide again.
    async fn put_if_unchanged(
        &self,
        read: &Read,
        next: &Registration,
        event: Option<&InstallationEvent>,
    ) -> Result<bool, StoreError> {
        let mut item = Item::from([
            (PARTITION_KEY.to_owned(), AttributeValue::S(next.shop.key())),
            (
                PLATFORM.to_owned(),
                AttributeValue::S(next.shop.platform().as_str().to_owned()),
            ),
            (STATUS.to_owned(), status(next.status)),
            (INSTALLED_AT.to_owned(), millis(next.installed_at)),
            (UPDATED_AT.to_owned(), millis(next.updated_at)),
            (
                SEQUENCE.to_owned(),
                AttributeValue::N(next.sequence.to_string()),
            ),
            (
                MINT_FAILURES.to_owned(),
                AttributeValue::N(next.mint_failures.to_string()),
            ),
            (
                VERSION.to_owned(),
                AttributeValue::N((read.version.unwrap_or(0) + 1).to_string()),
            ),
        ]);
        if let Some(recheck_at) = next.recheck_at {
            item.insert(RECHECK_AT.to_owned(), millis(recheck_at));
        }
        if let Some(event) = event {
            item.insert(EVENT.to_owned(), AttributeValue::S(to_stored(event)));
        }
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        // DynamoDB refuses a name the condition does not use.
        let request = match (read.exists, read.version) {
            (false, _) => request
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", PARTITION_KEY),
            (true, None) => request
                .condition_expression("attribute_exists(#pk) AND attribute_not_exists(#version)")
                .expression_attribute_names("#pk", PARTITION_KEY)
                .expression_attribute_names("#version", VERSION),
            (true, Some(version)) => request
                .condition_expression("#version = :version")
                .expression_attribute_names("#version", VERSION)
                .expression_attribute_values(":version", AttributeValue::N(version.to_string())),
        };
        match request.send().await {
            Ok(_) => Ok(true),
            Err(error) if is_conditional_failure(&error) => Ok(false),
            Err(error) => Err(StoreError::Unavailable(summary(&error))),
        }
    }
}

fn lost_races() -> StoreError {
    StoreError::Unavailable(format!(
        "the registration changed under each of {WRITE_ATTEMPTS} writes"
    ))
}

/// A number attribute, if present; the error names the field only.
fn number(item: &Item, name: &str) -> Result<Option<i64>, StoreError> {
    item.get(name)
        .map(|value| {
            value
                .as_n()
                .ok()
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| {
                    let key = item
                        .get(PARTITION_KEY)
                        .and_then(|pk| pk.as_s().ok())
                        .map_or("an unkeyed item", String::as_str);
                    corrupt_registration(key, name)
                })
        })
        .transpose()
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
    let number = |name: &str| number(item, name);
    RawRegistration {
        platform: string(PLATFORM)?,
        status: string(STATUS)?,
        installed_ms: number(INSTALLED_AT)?,
        updated_ms: number(UPDATED_AT)?,
        recheck_ms: number(RECHECK_AT)?,
        sequence: number(SEQUENCE)?,
        mint_failures: number(MINT_FAILURES)?,
        key,
    }
    .into_registration()
}
