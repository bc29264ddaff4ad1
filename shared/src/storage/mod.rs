//! Storage ports: what the functions need from storage, one small trait per
//! capability, and the records they exchange. Adapters live beside this file,
//! one per backend.

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::ids::{ShopRef, ShoprenterShopName, ShoptetEshopId};
use crate::shoprenter::ShoprenterCredentials;
use crate::shoptet::ShoptetInstallation;

mod aws_errors;
pub mod dynamodb;
pub mod memory;
pub mod secrets_manager;

/// Why a store call failed. The detail is for logs and never holds secret
/// material (adapters keep only error codes from their backend).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    #[error("a stored record is unreadable: {0}")]
    Corrupt(String),
}

/// Whether a save created the record or replaced an earlier one (a reinstall).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveOutcome {
    Created,
    Replaced,
}

/// A Shoptet installation as stored, with when it was installed (RFC 3339).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShoptetInstallationRecord {
    #[serde(flatten)]
    pub installation: ShoptetInstallation,
    pub installed_at: String,
}

/// Installations and credentials: secrets that live as long as the install.
pub trait InstallationStore: Send + Sync {
    /// Creates the installation's secret, or adds a new version if the shop
    /// installed before. Never deletes.
    fn save_shoptet_installation(
        &self,
        record: &ShoptetInstallationRecord,
    ) -> impl Future<Output = Result<SaveOutcome, StoreError>> + Send;

    fn load_shoptet_installation(
        &self,
        eshop_id: ShoptetEshopId,
    ) -> impl Future<Output = Result<Option<ShoptetInstallationRecord>, StoreError>> + Send;

    fn save_shoprenter_credentials(
        &self,
        shop: &ShoprenterShopName,
        credentials: &ShoprenterCredentials,
    ) -> impl Future<Output = Result<SaveOutcome, StoreError>> + Send;

    fn load_shoprenter_credentials(
        &self,
        shop: &ShoprenterShopName,
    ) -> impl Future<Output = Result<Option<ShoprenterCredentials>, StoreError>> + Send;
}

/// The per-shop API token cache shared by every instance.
pub trait TokenCache: Send + Sync {
    /// Drops whatever is cached for the shop (its credentials changed).
    fn forget(&self, shop: &ShopRef) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Names of the secrets the broker owns, all under one configurable prefix
/// (IAM policies are scoped to `<prefix>*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretNames {
    prefix: String,
}

pub const DEFAULT_SECRET_PREFIX: &str = "shop-token-broker/";

impl SecretNames {
    /// Secrets Manager allows letters, digits and `/_+=.@-` in names.
    pub fn new(prefix: &str) -> Result<Self, &'static str> {
        let valid = prefix.len() <= 256
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b));
        if valid {
            Ok(Self {
                prefix: prefix.to_owned(),
            })
        } else {
            Err("letters, digits and /_+=.@- only, at most 256 characters")
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn installation(&self, shop: &ShopRef) -> String {
        format!("{}{}/{}", self.prefix, shop.platform(), shop.id())
    }
}

impl Default for SecretNames {
    fn default() -> Self {
        Self {
            prefix: DEFAULT_SECRET_PREFIX.to_owned(),
        }
    }
}
