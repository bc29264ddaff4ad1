//! Installations and credentials in DynamoDB, one item per shop keyed like
//! the other tables, the document envelope-encrypted: an alternative to
//! Secrets Manager (USD 0.40 per secret and month) for large fleets.
//!
//! Each save asks KMS for a fresh AES-256 data key (`GenerateDataKey`) under
//! an encryption context naming the platform and the shop, seals the
//! document with AES-256-GCM (aws-lc-rs, a random 96-bit nonce, the shop's
//! key as additional authenticated data) and stores the KMS-encrypted data
//! key beside the ciphertext. Reading needs `kms:Decrypt` with that context,
//! so an item copied under another shop's key does not open: KMS refuses the
//! data key (the context names the other shop) and, were the data key
//! re-wrapped, GCM refuses the ciphertext (the AAD names the other shop).
//!
//! Deletion follows Secrets Manager's recovery window: the item is kept,
//! marked with the time it goes and a TTL attribute at that time; a marked
//! item reads as absent, and a save (a reinstall) replaces it whole. DynamoDB
//! deletes expired items late (up to days), so the code checks the time
//! itself.

use std::time::SystemTime;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_smithy_types::Blob;
use zeroize::Zeroizing;

use super::aws_errors::summary;
use super::dynamo_item::{
    Item, PARTITION_KEY, consistent_get, done_unless_unavailable, epoch_seconds, millis,
};
use super::envelope::{DataKey, Kms, KmsFailure};
use crate::ids::ShopRef;
use broker_domain::storage::{
    InstallationInventory, InstallationStore, InventoryCursor, InventoryPage, InventoryQuery,
    RecoveryWindow, SaveOutcome, StoreError, key_after, page_limit, raw, shop_of_key,
};

/// The TTL attribute (epoch seconds), set only on an item scheduled for
/// deletion.
pub use super::dynamo_item::TTL_ATTRIBUTE;
/// [`crate::ids::Platform::as_str`] (S), for listing and migrating by platform
/// without decrypting anything.
pub const PLATFORM: &str = "platform";

/// How the item is sealed (N); a later scheme (another algorithm, another
/// layout) gets another number and the reader tells them apart.
const FORMAT: &str = "format";
const FORMAT_AES_256_GCM: &str = "1";
/// The data key as KMS encrypted it (B).
const DATA_KEY: &str = "data_key";
/// The GCM nonce (B, 12 bytes).
const NONCE: &str = "nonce";
/// The sealed document followed by its GCM tag (B).
const SEALED: &str = "sealed";
const SAVED_AT: &str = "saved_at";
/// When a scheduled deletion takes effect (N, epoch milliseconds).
const DELETE_AT: &str = "delete_at";

/// The KMS key that wraps the data keys: a key id, ARN or alias.
pub use super::envelope::KmsKeyId;

#[derive(Debug, Clone)]
pub struct DynamoInstallationStore {
    dynamo: aws_sdk_dynamodb::Client,
    kms: Kms,
    table: String,
}

impl DynamoInstallationStore {
    pub fn new(
        dynamo: aws_sdk_dynamodb::Client,
        kms: aws_sdk_kms::Client,
        table: impl Into<String>,
        key: KmsKeyId,
    ) -> Self {
        Self {
            dynamo,
            kms: Kms::new(kms, key),
            table: table.into(),
        }
    }

    /// A fresh data key for `shop` and the KMS-wrapped copy to store.
    async fn generate_data_key(&self, shop: &ShopRef) -> Result<(DataKey, Blob), StoreError> {
        let (platform, id) = encryption_context(shop);
        self.kms
            .generate_data_key(&[("platform", platform), ("shop", &id)])
            .await
            .map_err(|failure| kms_error(shop, failure))
    }

    /// The data key of `shop`'s item. KMS checks the encryption context: a
    /// key generated for another shop is refused (InvalidCiphertext), and so
    /// is one wrapped by another KMS key (IncorrectKey): both mean the item
    /// is not this shop's, never that the store is down.
    async fn decrypt_data_key(&self, shop: &ShopRef, wrapped: Blob) -> Result<DataKey, StoreError> {
        let (platform, id) = encryption_context(shop);
        self.kms
            .decrypt_data_key(&[("platform", platform), ("shop", &id)], wrapped)
            .await
            .map_err(|failure| kms_error(shop, failure))
    }
}

fn kms_error(shop: &ShopRef, failure: KmsFailure) -> StoreError {
    match failure {
        KmsFailure::Refused => undecryptable(shop),
        KmsFailure::Unavailable(why) => StoreError::Unavailable(why),
    }
}

/// What KMS binds each data key to, in this order: the platform and the
/// shop's id (e.g. `shoptet`, `222651`).
fn encryption_context(shop: &ShopRef) -> (&'static str, String) {
    (shop.platform().as_str(), shop.id())
}

/// Names only the shop: nothing of the item is quoted.
fn undecryptable(shop: &ShopRef) -> StoreError {
    StoreError::Corrupt(format!("the record of {} does not decrypt", shop.key()))
}

fn malformed(shop: &ShopRef, attribute: &str) -> StoreError {
    StoreError::Corrupt(format!("the record of {}: bad {attribute}", shop.key()))
}

/// Whether the item was scheduled for deletion, and if so when it goes.
fn deletion_time(shop: &ShopRef, item: &Item) -> Result<Option<SystemTime>, StoreError> {
    item.get(DELETE_AT)
        .map(|value| {
            value
                .as_n()
                .ok()
                .and_then(|n| n.parse().ok())
                .and_then(raw::from_millis)
                .ok_or_else(|| malformed(shop, DELETE_AT))
        })
        .transpose()
}

fn binary(shop: &ShopRef, item: &Item, attribute: &str) -> Result<Blob, StoreError> {
    item.get(attribute)
        .and_then(|value| value.as_b().ok())
        .cloned()
        .ok_or_else(|| malformed(shop, attribute))
}

impl InstallationStore for DynamoInstallationStore {
    async fn save_document(&self, shop: &ShopRef, json: String) -> Result<SaveOutcome, StoreError> {
        let (data_key, encrypted_key) = self.generate_data_key(shop).await?;
        // The caller's copy is wiped on drop.
        let json = Zeroizing::new(json);
        let sealed = data_key
            .seal(shop.key().as_bytes(), json.as_bytes())
            .ok_or_else(|| StoreError::Unavailable("sealing the record failed".into()))?;
        drop(json);
        let (nonce, sealed) = (sealed.nonce, sealed.ciphertext);

        let now = SystemTime::now();
        // One put replaces the whole item: a reinstall drops any scheduled
        // deletion (and its TTL) with the old document.
        let put = self
            .dynamo
            .put_item()
            .table_name(&self.table)
            .item(PARTITION_KEY, AttributeValue::S(shop.key()))
            .item(PLATFORM, AttributeValue::S(shop.platform().as_str().into()))
            .item(FORMAT, AttributeValue::N(FORMAT_AES_256_GCM.into()))
            .item(DATA_KEY, AttributeValue::B(encrypted_key))
            .item(NONCE, AttributeValue::B(Blob::new(nonce.to_vec())))
            .item(SEALED, AttributeValue::B(Blob::new(sealed)))
            .item(SAVED_AT, millis(now))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|error| StoreError::Unavailable(summary(&error)))?;
        // Like Secrets Manager: a secret within its recovery window is
        // restored (Replaced); one whose window has passed is gone, even if
        // DynamoDB's TTL has not removed the item yet (Created).
        let replaced = match put.attributes() {
            None => false,
            Some(old) if old.is_empty() => false,
            Some(old) => deletion_time(shop, old)?.is_none_or(|at| at > now),
        };
        Ok(if replaced {
            SaveOutcome::Replaced
        } else {
            SaveOutcome::Created
        })
    }

    async fn load_document(&self, shop: &ShopRef) -> Result<Option<String>, StoreError> {
        let Some(item) = consistent_get(&self.dynamo, &self.table, shop).await? else {
            return Ok(None);
        };
        // Scheduled for deletion: gone for the broker, as in Secrets Manager.
        if deletion_time(shop, &item)?.is_some() {
            return Ok(None);
        }
        match item.get(FORMAT).and_then(|value| value.as_n().ok()) {
            Some(format) if format == FORMAT_AES_256_GCM => {}
            _ => return Err(malformed(shop, FORMAT)),
        }
        let nonce = binary(shop, &item, NONCE)?;
        if nonce.as_ref().len() != aws_lc_rs::aead::NONCE_LEN {
            return Err(malformed(shop, NONCE));
        }
        let sealed = binary(shop, &item, SEALED)?.into_inner();
        let data_key = self
            .decrypt_data_key(shop, binary(shop, &item, DATA_KEY)?)
            .await?;
        // The AAD is this shop's key: a document sealed for another shop
        // fails here even with the right data key.
        let mut opened = data_key
            .open(nonce.as_ref(), shop.key().as_bytes(), sealed)
            .ok_or_else(|| undecryptable(shop))?;
        String::from_utf8(std::mem::take(&mut *opened))
            .map(Some)
            .map_err(|error| {
                // The bytes are plaintext: wipe them before they are dropped.
                zeroize::Zeroize::zeroize(&mut error.into_bytes());
                malformed(shop, SEALED)
            })
    }

    async fn schedule_deletion(
        &self,
        shop: &ShopRef,
        recovery: RecoveryWindow,
    ) -> Result<(), StoreError> {
        let delete_at = SystemTime::now() + recovery.duration();
        // Only a live item is marked: an absent one stays absent, and a
        // second call keeps the first schedule (as Secrets Manager does).
        let result = self
            .dynamo
            .update_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, AttributeValue::S(shop.key()))
            .update_expression("SET #delete_at = :delete_at, #ttl = :ttl")
            .condition_expression("attribute_exists(#pk) AND attribute_not_exists(#delete_at)")
            .expression_attribute_names("#pk", PARTITION_KEY)
            .expression_attribute_names("#delete_at", DELETE_AT)
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":delete_at", millis(delete_at))
            .expression_attribute_values(":ttl", epoch_seconds(delete_at))
            .send()
            .await;
        done_unless_unavailable(result)
    }
}

/// A scan of the keys alone (nothing sealed is read, nothing decrypted),
/// leaving out items scheduled for deletion. `Limit` counts the items read
/// before that filter, so a page may come back short or empty. The cursor is
/// the key of the last item read (`LastEvaluatedKey`).
impl InstallationInventory for DynamoInstallationStore {
    async fn list_installations(
        &self,
        query: &InventoryQuery,
    ) -> Result<InventoryPage, StoreError> {
        let start = query
            .after
            .as_ref()
            .map(|after| {
                key_after(after)
                    .map(|key| Item::from([(PARTITION_KEY.to_owned(), AttributeValue::S(key))]))
            })
            .transpose()?;
        let output = self
            .dynamo
            .scan()
            .table_name(&self.table)
            .limit(i32::try_from(page_limit(query)).unwrap_or(i32::MAX))
            .consistent_read(true)
            .projection_expression("#pk")
            .filter_expression("attribute_not_exists(#delete_at)")
            .expression_attribute_names("#pk", PARTITION_KEY)
            .expression_attribute_names("#delete_at", DELETE_AT)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|error| StoreError::Unavailable(summary(&error)))?;
        let shops = output
            .items()
            .iter()
            .map(|item| {
                item.get(PARTITION_KEY)
                    .and_then(|key| key.as_s().ok())
                    .ok_or_else(|| StoreError::Corrupt("an installation item has no key".into()))
                    .and_then(|key| shop_of_key(key))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let next = output
            .last_evaluated_key()
            .map(|last| {
                last.get(PARTITION_KEY)
                    .and_then(|key| key.as_s().ok())
                    .map(|key| InventoryCursor::new(key.clone()))
                    .ok_or_else(|| {
                        StoreError::Corrupt("a scan ended on an item without a key".into())
                    })
            })
            .transpose()?;
        Ok(InventoryPage { shops, next })
    }
}
