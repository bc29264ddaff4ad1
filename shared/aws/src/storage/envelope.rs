//! Envelope encryption under a KMS key, shared by the stores that keep
//! secrets in DynamoDB (the installation store and the token cache): KMS
//! makes and unwraps AES-256 data keys under an encryption context, and the
//! data key seals with AES-256-GCM (aws-lc-rs, a random 96-bit nonce, the
//! caller's additional authenticated data).
//!
//! A reader of the tables without `kms:Decrypt` on the key (under the same
//! encryption context) holds only ciphertext and a wrapped data key.

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_sdk_kms::types::DataKeySpec;
use aws_smithy_types::Blob;
use zeroize::Zeroizing;

use super::aws_errors::summary;

/// The KMS key that wraps the data keys: a key id, ARN or alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsKeyId(String);

impl KmsKeyId {
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What KMS binds a data key to: pairs of (key, value). KMS refuses to
/// unwrap under any other context.
pub(super) type EncryptionContext<'a> = &'a [(&'a str, &'a str)];

/// Why a data key did not come back.
#[derive(Debug)]
pub(super) enum KmsFailure {
    /// KMS refused this wrapped key: another context (InvalidCiphertext) or
    /// another KMS key (IncorrectKey). The item is not what it claims to be;
    /// the store is not down.
    Refused,
    /// KMS did not answer usefully (throttled, unreachable, denied): says
    /// why, without any key material.
    Unavailable(String),
}

/// The KMS client and the one key the store uses.
#[derive(Debug, Clone)]
pub(super) struct Kms {
    client: aws_sdk_kms::Client,
    key: KmsKeyId,
}

impl Kms {
    pub(super) fn new(client: aws_sdk_kms::Client, key: KmsKeyId) -> Self {
        Self { client, key }
    }

    /// A fresh data key: the key to seal with and the KMS-wrapped copy to
    /// store beside the ciphertext.
    pub(super) async fn generate_data_key(
        &self,
        context: EncryptionContext<'_>,
    ) -> Result<(DataKey, Blob), KmsFailure> {
        let mut request = self
            .client
            .generate_data_key()
            .key_id(self.key.as_str())
            .key_spec(DataKeySpec::Aes256);
        for (name, value) in context {
            request = request.encryption_context(*name, *value);
        }
        let mut output = request
            .send()
            .await
            .map_err(|error| KmsFailure::Unavailable(format!("kms: {}", summary(&error))))?;
        let plaintext = output
            .plaintext
            .take()
            .map(|key| Zeroizing::new(key.into_inner()));
        match (plaintext, output.ciphertext_blob.take()) {
            (Some(plaintext), Some(wrapped)) => Ok((DataKey::new(&plaintext)?, wrapped)),
            _ => Err(KmsFailure::Unavailable(
                "kms: GenerateDataKey answered without a key".into(),
            )),
        }
    }

    /// Unwraps a stored data key, under the context it must have been made
    /// with.
    pub(super) async fn decrypt_data_key(
        &self,
        context: EncryptionContext<'_>,
        wrapped: Blob,
    ) -> Result<DataKey, KmsFailure> {
        let mut request = self
            .client
            .decrypt()
            // Only our key may open it, whatever an item claims.
            .key_id(self.key.as_str())
            .ciphertext_blob(wrapped);
        for (name, value) in context {
            request = request.encryption_context(*name, *value);
        }
        let mut output = match request.send().await {
            Ok(output) => output,
            Err(error)
                if error.as_service_error().is_some_and(|e| {
                    e.is_invalid_ciphertext_exception() || e.is_incorrect_key_exception()
                }) =>
            {
                return Err(KmsFailure::Refused);
            }
            Err(error) => {
                return Err(KmsFailure::Unavailable(format!("kms: {}", summary(&error))));
            }
        };
        let plaintext = output
            .plaintext
            .take()
            .map(|key| Zeroizing::new(key.into_inner()))
            .ok_or_else(|| KmsFailure::Unavailable("kms: Decrypt answered without a key".into()))?;
        DataKey::new(&plaintext)
    }
}

/// An unwrapped AES-256-GCM data key. The key bytes live inside aws-lc
/// only (the plaintext KMS returned is wiped as soon as the key is built),
/// and nothing here prints them.
pub(super) struct DataKey(RandomizedNonceKey);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

/// A sealed value: the random nonce and the ciphertext followed by its tag.
pub(super) struct Sealed {
    pub nonce: [u8; NONCE_LEN],
    pub ciphertext: Vec<u8>,
}

impl DataKey {
    fn new(plaintext: &Zeroizing<Vec<u8>>) -> Result<Self, KmsFailure> {
        RandomizedNonceKey::new(&AES_256_GCM, plaintext)
            .map(Self)
            .map_err(|_| KmsFailure::Unavailable("kms: the data key is not AES-256".into()))
    }

    /// Seals `plaintext` bound to `aad`. Sealed in place in a buffer with
    /// room for the tag (growing it would leave a copy of the plaintext
    /// behind).
    pub(super) fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Option<Sealed> {
        let mut buffer =
            Zeroizing::new(Vec::with_capacity(plaintext.len() + AES_256_GCM.tag_len()));
        buffer.extend_from_slice(plaintext);
        let nonce = self
            .0
            .seal_in_place_append_tag(Aad::from(aad), &mut *buffer)
            .ok()?;
        let nonce = *nonce.as_ref();
        // Ciphertext from here on: nothing left to wipe.
        Some(Sealed {
            nonce,
            ciphertext: std::mem::take(&mut *buffer),
        })
    }

    /// Opens what [`DataKey::seal`] sealed with the same `aad`; `None` when
    /// the nonce is malformed, or the ciphertext, its tag or the AAD differ.
    /// The plaintext is wiped on drop.
    pub(super) fn open(
        &self,
        nonce: &[u8],
        aad: &[u8],
        ciphertext: Vec<u8>,
    ) -> Option<Zeroizing<Vec<u8>>> {
        let nonce = <[u8; NONCE_LEN]>::try_from(nonce)
            .map(Nonce::assume_unique_for_key)
            .ok()?;
        // Wiped on drop: a failed open may leave part of the plaintext here.
        let mut buffer = Zeroizing::new(ciphertext);
        let len = self
            .0
            .open_in_place(nonce, Aad::from(aad), &mut buffer)
            .ok()?
            .len();
        buffer.truncate(len);
        Some(buffer)
    }
}
