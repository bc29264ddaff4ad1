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
//!
//! A Shoptet installation's e-shop webhook signature key is an item of its
//! own beside the document's, keyed `shoptet#<id>#webhook-signature-key`
//! ([`signature_key_item`]) and sealed the same way; uninstalling marks
//! both, and the inventory's scan skips the key items.

use std::time::SystemTime;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_smithy_types::Blob;
use zeroize::Zeroizing;

use super::aws_errors::summary;
use super::dynamo_item::{Item, PARTITION_KEY, done_unless_unavailable, epoch_seconds, millis};
use super::envelope::{DataKey, Kms, KmsFailure};
use crate::ids::{ShopRef, ShoptetEshopId};
use crate::secret::{EshopSignatureKey, ExposeSecret};
use broker_domain::storage::{
    InstallationInventory, InstallationStore, InventoryCursor, InventoryPage, InventoryQuery,
    RecoveryWindow, SIGNATURE_KEY_SUFFIX, SaveOutcome, StoreError, foreign_cursor, key_after,
    page_limit, raw, shop_of_key,
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

/// The key of the item holding a Shoptet installation's signature key:
/// the shop's key and [`SIGNATURE_KEY_SUFFIX`], beside (never equal to) any
/// [`ShopRef::key`].
pub fn signature_key_item(eshop_id: ShoptetEshopId) -> String {
    format!(
        "{}#{SIGNATURE_KEY_SUFFIX}",
        ShopRef::Shoptet(eshop_id).key()
    )
}

/// Whether `key` is exactly the key of some installation's signature key
/// item (the inventory skips those; any other key that names no shop is
/// still damage).
fn is_signature_key_item(key: &str) -> bool {
    key.strip_suffix(SIGNATURE_KEY_SUFFIX)
        .and_then(|rest| rest.strip_suffix('#'))
        .and_then(|shop| ShopRef::from_key(shop).ok())
        .is_some_and(|shop| match shop {
            ShopRef::Shoptet(eshop_id) => signature_key_item(eshop_id) == key,
            ShopRef::Shoprenter(_) => false,
        })
}

/// One sealed item: the shop it belongs to (the KMS encryption context,
/// which the functions' key grants require to be exactly `platform` and
/// `shop`) and its own key in the table (the GCM AAD). The document and the
/// signature key of one shop share the context and differ in the AAD, so
/// neither opens in the other's place.
struct Sealing<'a> {
    shop: &'a ShopRef,
    item_key: String,
}

impl<'a> Sealing<'a> {
    fn document(shop: &'a ShopRef) -> Self {
        Self {
            shop,
            item_key: shop.key(),
        }
    }

    fn signature_key(shop: &'a ShopRef, eshop_id: ShoptetEshopId) -> Self {
        Self {
            shop,
            item_key: signature_key_item(eshop_id),
        }
    }
}

impl DynamoInstallationStore {
    /// Seals `plaintext` under a fresh data key and puts the item whole,
    /// replacing any earlier one (and with it a scheduled deletion and its
    /// TTL). Whether an earlier item was still live (not past its recovery
    /// window): `Replaced`.
    async fn put_sealed(
        &self,
        at: &Sealing<'_>,
        plaintext: Zeroizing<Vec<u8>>,
    ) -> Result<SaveOutcome, StoreError> {
        let shop = at.shop;
        let (data_key, encrypted_key) = self.generate_data_key(shop).await?;
        let sealed = data_key
            .seal(at.item_key.as_bytes(), &plaintext)
            .ok_or_else(|| StoreError::Unavailable("sealing the record failed".into()))?;
        // Wiped before the write goes out.
        drop(plaintext);
        let (nonce, sealed) = (sealed.nonce, sealed.ciphertext);

        let now = SystemTime::now();
        let put = self
            .dynamo
            .put_item()
            .table_name(&self.table)
            .item(PARTITION_KEY, AttributeValue::S(at.item_key.clone()))
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

    /// The item's plaintext (wiped on drop), or `None` when it is absent or
    /// scheduled for deletion.
    async fn open_sealed(
        &self,
        at: &Sealing<'_>,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let shop = at.shop;
        let output = self
            .dynamo
            .get_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, AttributeValue::S(at.item_key.clone()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| StoreError::Unavailable(summary(&error)))?;
        let Some(item) = output.item else {
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
        // The AAD is this item's key: a value sealed for another shop, or
        // for the other item of this shop, fails here even with the right
        // data key.
        data_key
            .open(nonce.as_ref(), at.item_key.as_bytes(), sealed)
            .map(Some)
            .ok_or_else(|| undecryptable(shop))
    }

    /// Marks a live item for deletion after `recovery`; an absent one stays
    /// absent, and a second call keeps the first schedule (as Secrets
    /// Manager does).
    async fn mark_for_deletion(
        &self,
        item_key: String,
        recovery: RecoveryWindow,
    ) -> Result<(), StoreError> {
        let delete_at = SystemTime::now() + recovery.duration();
        let result = self
            .dynamo
            .update_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, AttributeValue::S(item_key))
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

/// UTF-8 or corrupt; invalid bytes are plaintext, wiped before they go.
fn utf8(shop: &ShopRef, mut opened: Zeroizing<Vec<u8>>) -> Result<String, StoreError> {
    String::from_utf8(std::mem::take(&mut *opened)).map_err(|error| {
        zeroize::Zeroize::zeroize(&mut error.into_bytes());
        malformed(shop, SEALED)
    })
}

impl InstallationStore for DynamoInstallationStore {
    async fn save_document(&self, shop: &ShopRef, json: String) -> Result<SaveOutcome, StoreError> {
        // The caller's copy, wiped once sealed.
        let json = Zeroizing::new(json.into_bytes());
        self.put_sealed(&Sealing::document(shop), json).await
    }

    async fn load_document(&self, shop: &ShopRef) -> Result<Option<String>, StoreError> {
        self.open_sealed(&Sealing::document(shop))
            .await?
            .map(|opened| utf8(shop, opened))
            .transpose()
    }

    /// Marks the document's item and, for a Shoptet shop, its signature
    /// key's, each with the same recovery window.
    async fn schedule_deletion(
        &self,
        shop: &ShopRef,
        recovery: RecoveryWindow,
    ) -> Result<(), StoreError> {
        self.mark_for_deletion(shop.key(), recovery).await?;
        if let ShopRef::Shoptet(eshop_id) = shop {
            self.mark_for_deletion(signature_key_item(*eshop_id), recovery)
                .await?;
        }
        Ok(())
    }

    /// An item of its own, not a member of the document: a key
    /// registration that read the document, then raced a reinstall, would
    /// write the old OAuth token back with it.
    async fn save_signature_key(
        &self,
        eshop_id: ShoptetEshopId,
        key: &EshopSignatureKey,
    ) -> Result<(), StoreError> {
        let shop = ShopRef::Shoptet(eshop_id);
        let plaintext = Zeroizing::new(key.expose_secret().as_bytes().to_vec());
        self.put_sealed(&Sealing::signature_key(&shop, eshop_id), plaintext)
            .await
            .map(drop)
    }

    async fn load_signature_key(
        &self,
        eshop_id: ShoptetEshopId,
    ) -> Result<Option<EshopSignatureKey>, StoreError> {
        let shop = ShopRef::Shoptet(eshop_id);
        let Some(opened) = self
            .open_sealed(&Sealing::signature_key(&shop, eshop_id))
            .await?
        else {
            return Ok(None);
        };
        // The key is built from the opened text; the String is moved into
        // the secret's own (zeroized) storage.
        Ok(Some(EshopSignatureKey::new(utf8(&shop, opened)?)))
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
                resume_key(after)
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
            })
            // A signature key's item is no shop (its shop has an item of
            // its own, or none if the document is scheduled for deletion).
            .filter(|key| !key.as_ref().is_ok_and(|key| is_signature_key_item(key)))
            .map(|key| key.and_then(|key| shop_of_key(key)))
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

/// Where a scan resumes: a shop's key, or a signature key item's (a page
/// may end on one, and its cursor then names it).
fn resume_key(cursor: &InventoryCursor) -> Result<String, StoreError> {
    if is_signature_key_item(cursor.as_str()) {
        return Ok(cursor.as_str().to_owned());
    }
    key_after(cursor).map_err(|_| foreign_cursor(cursor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_shoptet_installations_signature_key_item_is_one() {
        let eshop_id = ShoptetEshopId::new(222651).unwrap();
        assert_eq!(
            signature_key_item(eshop_id),
            "shoptet#222651#webhook-signature-key"
        );
        assert!(is_signature_key_item(
            "shoptet#222651#webhook-signature-key"
        ));
        for other in [
            "shoptet#222651",
            "shoptet#0222651#webhook-signature-key",
            "shoptet#222651#webhook-signature-keys",
            "shoptet#222651webhook-signature-key",
            "shoprenter#demo#webhook-signature-key",
            "#webhook-signature-key",
            "webhook-signature-key",
        ] {
            assert!(!is_signature_key_item(other), "{other}");
        }
    }

    #[test]
    fn a_listing_resumes_after_a_signature_key_item_or_a_shop() {
        let key = "shoptet#222651#webhook-signature-key";
        assert_eq!(resume_key(&InventoryCursor::new(key)), Ok(key.to_owned()));
        assert_eq!(
            resume_key(&InventoryCursor::new("shoptet#7")),
            Ok("shoptet#7".to_owned())
        );
        assert!(matches!(
            resume_key(&InventoryCursor::new("shoptet#7#other")),
            Err(StoreError::ForeignCursor(_))
        ));
    }
}
