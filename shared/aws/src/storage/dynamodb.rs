//! The token cache in DynamoDB: one item per shop, keyed `platform#id`.
//!
//! The lease is taken and released with conditional writes, so exactly one
//! instance refreshes a shop's token at a time. DynamoDB's TTL deletion lags
//! (by up to days), so readers always check expiry themselves.
//!
//! The API token is never stored in plain text: a reader of the table
//! without `kms:Decrypt` on the token key must get nothing usable (the vendor
//! keeps every shop's token valid). Each instance asks KMS for one AES-256
//! data key, on its first write (`GenerateDataKey` under the encryption
//! context [`TOKEN_KEY_CONTEXT`]), and seals every token it writes with it
//! (AES-256-GCM, [`super::envelope`]); the wrapped data key is stored with
//! the item, so any instance can open it. An instance unwraps each data key
//! it meets once (`Decrypt`) and keeps it: KMS is asked about once per
//! instance and writer, not per vend. The additional authenticated data is
//! the shop's key and the token's expiry, so a ciphertext copied to another
//! shop's item (or given another expiry) does not open: that item reads as
//! holding no token, a cache miss, and the vendor mints a new one. So does an
//! item written in plain text before this scheme (its `token` attribute is
//! ignored, and removed by the next write): it would have expired within
//! the hour anyway.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::aws_errors::summary;
use super::dynamo_item::{
    Item, conditional_failure_item, consistent_get, done_unless_unavailable, epoch_seconds,
    is_conditional_failure, millis,
};
use super::envelope::{DataKey, Kms, KmsFailure, KmsKeyId};
use crate::ids::ShopRef;
use crate::model::{CacheEntry, CachedToken};
use crate::secret::ExposeSecret;
use aws_smithy_types::Blob;
use broker_domain::storage::raw::{RawEntry, corrupt};
use broker_domain::storage::{LeaseAttempt, StoreError, TokenCache, entry_expiry};
use zeroize::Zeroizing;

pub use super::dynamo_item::{PARTITION_KEY, TTL_ATTRIBUTE};

/// The token in plain text, as items were written before tokens were sealed:
/// never read, removed by every write.
const PLAINTEXT_TOKEN: &str = "token";
/// How the token is sealed (N); a later scheme gets another number, and an
/// item of an unknown scheme reads as holding no token.
const TOKEN_FORMAT: &str = "token_format";
const TOKEN_FORMAT_AES_256_GCM: &str = "1";
/// The data key the token is sealed with, as KMS wrapped it (B).
const TOKEN_DATA_KEY: &str = "token_data_key";
/// The GCM nonce (B, 12 bytes).
const TOKEN_NONCE: &str = "token_nonce";
/// The sealed token followed by its GCM tag (B).
const TOKEN_SEALED: &str = "token_sealed";
const TOKEN_EXPIRES_AT: &str = "token_expires_at";
const SCOPES: &str = "scopes";
const LEDGER: &str = "ledger";
const LEASE_OWNER: &str = "lease_owner";
const LEASE_UNTIL: &str = "lease_until";

/// The encryption context of every token data key. Fixed, so that the
/// functions' IAM grants can require exactly it (template.yaml).
pub const TOKEN_KEY_CONTEXT: (&str, &str) = ("purpose", "token-cache");

/// How many unwrapped data keys an instance keeps. Each writing instance
/// makes one data key in its life, so a fleet's live items carry about as
/// many keys as instances that wrote in the last hour; past the bound the
/// keys are dropped and unwrapped again when met.
const OPENED_KEYS: usize = 256;

#[derive(Clone)]
pub struct DynamoTokenCache {
    pub(super) client: Client,
    pub(super) table: String,
    keys: Arc<Keyring>,
}

impl DynamoTokenCache {
    /// A cache whose tokens are sealed under data keys that the KMS key
    /// `key` (an id, ARN or alias) wraps. Each value built here is one
    /// instance: its data key is its own; clones share it.
    pub fn new(
        client: Client,
        kms: aws_sdk_kms::Client,
        table: impl Into<String>,
        key: KmsKeyId,
    ) -> Self {
        Self {
            client,
            table: table.into(),
            keys: Arc::new(Keyring {
                kms: Kms::new(kms, key),
                own: tokio::sync::OnceCell::new(),
                opened: Mutex::new(HashMap::new()),
            }),
        }
    }
}

/// This instance's data key and those it has unwrapped, by wrapped bytes.
struct Keyring {
    kms: Kms,
    /// Made on the first write and kept for the instance's life. The nonces
    /// are random (96 bits): an instance seals one token per refresh, far
    /// below the 2^32 messages one GCM key may seal so.
    own: tokio::sync::OnceCell<(Arc<DataKey>, Blob)>,
    opened: Mutex<HashMap<Vec<u8>, Arc<DataKey>>>,
}

impl Keyring {
    fn context() -> [(&'static str, &'static str); 1] {
        [TOKEN_KEY_CONTEXT]
    }

    /// The key this instance seals with, and its wrapped copy.
    async fn sealing_key(&self) -> Result<&(Arc<DataKey>, Blob), StoreError> {
        self.own
            .get_or_try_init(|| async {
                let (key, wrapped) = self
                    .kms
                    .generate_data_key(&Self::context())
                    .await
                    .map_err(unavailable)?;
                let key = Arc::new(key);
                // Reading back what this instance wrote needs no Decrypt.
                self.remember(wrapped.as_ref().to_vec(), key.clone());
                Ok((key, wrapped))
            })
            .await
    }

    /// The data key `wrapped` stands for; `None` when KMS refuses it (not
    /// wrapped by our key under our context: nothing this cache wrote).
    async fn opening_key(&self, wrapped: &Blob) -> Result<Option<Arc<DataKey>>, StoreError> {
        if let Some(key) = self.known(wrapped.as_ref()) {
            return Ok(Some(key));
        }
        match self
            .kms
            .decrypt_data_key(&Self::context(), wrapped.clone())
            .await
        {
            Ok(key) => {
                let key = Arc::new(key);
                self.remember(wrapped.as_ref().to_vec(), key.clone());
                Ok(Some(key))
            }
            Err(KmsFailure::Refused) => Ok(None),
            Err(failure) => Err(unavailable(failure)),
        }
    }

    fn known(&self, wrapped: &[u8]) -> Option<Arc<DataKey>> {
        self.opened
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(wrapped)
            .cloned()
    }

    fn remember(&self, wrapped: Vec<u8>, key: Arc<DataKey>) {
        let mut opened = self
            .opened
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if opened.len() >= OPENED_KEYS {
            opened.clear();
        }
        opened.insert(wrapped, key);
    }
}

fn unavailable(failure: KmsFailure) -> StoreError {
    match failure {
        KmsFailure::Refused => StoreError::Unavailable("kms: the token key was refused".into()),
        KmsFailure::Unavailable(why) => StoreError::Unavailable(why),
    }
}

/// What a sealed token is bound to: the shop's key and the token's expiry
/// (epoch milliseconds), so neither can be changed under it.
fn token_aad(shop: &ShopRef, expires_ms: i64) -> Vec<u8> {
    format!("{}\n{expires_ms}", shop.key()).into_bytes()
}

impl TokenCache for DynamoTokenCache {
    async fn load(&self, shop: &ShopRef) -> Result<Option<CacheEntry>, StoreError> {
        match consistent_get(&self.client, &self.table, shop).await? {
            Some(item) => Ok(Some(self.entry_from_item(shop, &item).await?)),
            None => Ok(None),
        }
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
            Ok(output) => Ok(LeaseAttempt::Acquired(
                self.entry_from_item(shop, output.attributes().unwrap_or(&Item::new()))
                    .await?,
            )),
            Err(error) => match conditional_failure_item(&error) {
                Some(old) => Ok(LeaseAttempt::Busy(self.entry_from_item(shop, &old).await?)),
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
        let (key, wrapped) = self.keys.sealing_key().await?;
        let expires_ms = broker_domain::storage::raw::millis(token.expires_at);
        let sealed = key
            .seal(
                &token_aad(shop, expires_ms),
                token.access_token.expose_secret().as_bytes(),
            )
            .ok_or_else(|| StoreError::Unavailable("sealing the token failed".into()))?;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, AttributeValue::S(shop.key()))
            .update_expression(
                "SET #format = :format, #data_key = :data_key, #nonce = :nonce, \
                 #sealed = :sealed, #expires = :expires, #scopes = :scopes, #ledger = :ledger, \
                 #ttl = :ttl REMOVE #owner, #until, #plaintext",
            )
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#format", TOKEN_FORMAT)
            .expression_attribute_names("#data_key", TOKEN_DATA_KEY)
            .expression_attribute_names("#nonce", TOKEN_NONCE)
            .expression_attribute_names("#sealed", TOKEN_SEALED)
            .expression_attribute_names("#plaintext", PLAINTEXT_TOKEN)
            .expression_attribute_names("#expires", TOKEN_EXPIRES_AT)
            .expression_attribute_names("#scopes", SCOPES)
            .expression_attribute_names("#ledger", LEDGER)
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_names("#owner", LEASE_OWNER)
            .expression_attribute_names("#until", LEASE_UNTIL)
            .expression_attribute_values(
                ":format",
                AttributeValue::N(TOKEN_FORMAT_AES_256_GCM.into()),
            )
            .expression_attribute_values(":data_key", AttributeValue::B(wrapped.clone()))
            .expression_attribute_values(
                ":nonce",
                AttributeValue::B(Blob::new(sealed.nonce.to_vec())),
            )
            .expression_attribute_values(":sealed", AttributeValue::B(Blob::new(sealed.ciphertext)))
            .expression_attribute_values(":expires", AttributeValue::N(expires_ms.to_string()))
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
        // Someone took over an expired lease: nothing of ours to release.
        done_unless_unavailable(result)
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

impl DynamoTokenCache {
    /// Reads the item's attributes, opening the token; what they mean is
    /// decided by [`RawEntry`].
    async fn entry_from_item(&self, shop: &ShopRef, item: &Item) -> Result<CacheEntry, StoreError> {
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
        let token_expires_ms = item
            .get(TOKEN_EXPIRES_AT)
            .map(|value| number(value, TOKEN_EXPIRES_AT))
            .transpose()?;
        let token = match token_expires_ms {
            Some(expires_ms) => self.open_token(shop, item, expires_ms).await?,
            None => None,
        };
        RawEntry {
            // Moved out, not copied: the wiped buffer is left empty.
            token: token.map(|mut token| std::mem::take(&mut *token)),
            token_expires_ms,
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

    /// The item's token in plain text, or `None` when it holds none this cache
    /// can open: none sealed (a plaintext item from before sealing, or a lease
    /// alone), another scheme, a data key KMS refuses, or a ciphertext bound to
    /// another shop or expiry. Each of those is a cache miss; only KMS being
    /// unreachable is an error.
    async fn open_token(
        &self,
        shop: &ShopRef,
        item: &Item,
        expires_ms: i64,
    ) -> Result<Option<Zeroizing<String>>, StoreError> {
        let binary = |name: &str| -> Result<Option<&Blob>, StoreError> {
            item.get(name)
                .map(|value| value.as_b().map_err(|_| corrupt(name)))
                .transpose()
        };
        let Some(sealed) = binary(TOKEN_SEALED)? else {
            return Ok(None);
        };
        let format = item.get(TOKEN_FORMAT).and_then(|value| value.as_n().ok());
        if format.map(String::as_str) != Some(TOKEN_FORMAT_AES_256_GCM) {
            tracing::warn!(shop = %shop.key(), "cached token of an unknown format: a miss");
            return Ok(None);
        }
        let (Some(wrapped), Some(nonce)) = (binary(TOKEN_DATA_KEY)?, binary(TOKEN_NONCE)?) else {
            return Err(corrupt(TOKEN_SEALED));
        };
        let Some(key) = self.keys.opening_key(wrapped).await? else {
            tracing::warn!(shop = %shop.key(), "cached token under a data key KMS refuses: a miss");
            return Ok(None);
        };
        let Some(plaintext) = key.open(
            nonce.as_ref(),
            &token_aad(shop, expires_ms),
            sealed.as_ref().to_vec(),
        ) else {
            tracing::warn!(shop = %shop.key(), "cached token sealed for another shop or expiry: a miss");
            return Ok(None);
        };
        match std::str::from_utf8(&plaintext) {
            Ok(text) => Ok(Some(Zeroizing::new(text.to_owned()))),
            Err(_) => Err(corrupt(TOKEN_SEALED)),
        }
    }
}
