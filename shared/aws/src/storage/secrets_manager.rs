//! Installations and credentials in AWS Secrets Manager, one JSON secret per
//! shop under the configured prefix.
//!
//! An uninstalled shop's secret is scheduled for deletion with a recovery
//! window, never deleted at once. While it is scheduled, AWS refuses to read
//! it (`GetSecretValue`: InvalidRequest), to create it again (`CreateSecret`:
//! InvalidRequest) and to add a version (`PutSecretValue`: InvalidRequest),
//! so a reinstall restores it first. moto is kinder than AWS here (it answers
//! `CreateSecret` with ResourceExists and accepts the new version while
//! keeping the deletion scheduled): the code follows AWS.
//!
//! A Shoptet installation's e-shop webhook signature key is a secret of its
//! own beside the installation's, named
//! `<installation secret>/webhook-signature-key`
//! ([`SecretNames::signature_key`]); uninstalling schedules both.

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType, Tag};

use super::aws_errors::summary;
use crate::ids::{ShopRef, ShoptetEshopId};
use crate::secret::{ClientSecret, EshopSignatureKey, ExposeSecret};
use broker_domain::storage::{
    InstallationInventory, InstallationStore, InventoryCursor, InventoryPage, InventoryQuery,
    RecoveryWindow, SIGNATURE_KEY_SUFFIX, SaveOutcome, StoreError, foreign_cursor, page_limit,
};

#[derive(Clone)]
pub struct SecretsManagerStore {
    client: Client,
    names: SecretNames,
}

impl SecretsManagerStore {
    pub fn new(client: Client, names: SecretNames) -> Self {
        Self { client, names }
    }

    /// Whether the secret exists and is scheduled for deletion: what tells
    /// DeleteSecret's InvalidRequest about an already scheduled secret from
    /// its other refusals. Needs `secretsmanager:DescribeSecret` (the
    /// install callback, which schedules deletions, has it).
    async fn scheduled_for_deletion(&self, name: &str) -> Result<bool, StoreError> {
        match self.client.describe_secret().secret_id(name).send().await {
            Ok(output) => Ok(output.deleted_date().is_some()),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Ok(false)
            }
            Err(error) => Err(StoreError::Unavailable(summary(&error))),
        }
    }
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

/// What a secret of the broker's is tagged with.
struct SecretTags<'a> {
    shop: &'a ShopRef,
    /// What the secret holds beside the shop (none: the installation's
    /// document).
    holds: Option<&'a str>,
}

impl SecretsManagerStore {
    /// Creates the secret `name`, or adds a new version if it exists,
    /// restoring it first if it was scheduled for deletion (a reinstall).
    /// Never deletes; the old version stays as AWSPREVIOUS.
    async fn put_secret(
        &self,
        name: &str,
        value: &str,
        tags: SecretTags<'_>,
    ) -> Result<SaveOutcome, StoreError> {
        let mut create = self
            .client
            .create_secret()
            .name(name)
            .secret_string(value)
            .tags(tag("platform", tags.shop.platform().as_str()))
            .tags(tag("shop", &tags.shop.id()))
            .tags(tag("managed-by", "shop-token-broker"));
        if let Some(holds) = tags.holds {
            create = create.tags(tag("holds", holds));
        }
        match create.send().await {
            Ok(_) => return Ok(SaveOutcome::Created),
            // The secret existed before; AWS answers InvalidRequest when it
            // is scheduled for deletion (moto: ResourceExists).
            Err(error)
                if error.as_service_error().is_some_and(|e| {
                    e.is_resource_exists_exception() || e.is_invalid_request_exception()
                }) => {}
            Err(error) => return Err(StoreError::Unavailable(summary(&error))),
        }
        // A reinstall cancels a scheduled deletion first: AWS refuses a new
        // version of a scheduled secret. Restoring a live secret changes
        // nothing; should a service answer it with InvalidRequest, the put
        // below still decides (it fails only if the secret stays scheduled).
        match self.client.restore_secret().secret_id(name).send().await {
            Ok(_) => {}
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_invalid_request_exception()) => {}
            Err(error) => return Err(StoreError::Unavailable(summary(&error))),
        }
        // A new version; the old one stays as AWSPREVIOUS.
        self.client
            .put_secret_value()
            .secret_id(name)
            .secret_string(value)
            .send()
            .await
            .map_err(|error| StoreError::Unavailable(summary(&error)))?;
        Ok(SaveOutcome::Replaced)
    }

    /// The secret's current value; `None` when it is absent or scheduled
    /// for deletion.
    async fn get_secret(&self, name: &str) -> Result<Option<String>, StoreError> {
        match self.client.get_secret_value().secret_id(name).send().await {
            Ok(output) => Ok(Some(output.secret_string().unwrap_or_default().to_owned())),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            // AWS and moto both refuse to read a secret scheduled for
            // deletion with InvalidRequest (GetSecretValue has no other
            // reason for it): it is gone for the broker. Not confirmed with
            // DescribeSecret: the token vendor may only GetSecretValue.
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_invalid_request_exception()) =>
            {
                Ok(None)
            }
            Err(error) => Err(StoreError::Unavailable(summary(&error))),
        }
    }

    /// Schedules the secret's deletion after `recovery`. Idempotent: an
    /// absent or already scheduled secret is `Ok`.
    async fn schedule_secret_deletion(
        &self,
        name: &str,
        recovery: RecoveryWindow,
    ) -> Result<(), StoreError> {
        // Never `force_delete_without_recovery`: a reinstall within the
        // window gets the secret back.
        let deleted = self
            .client
            .delete_secret()
            .secret_id(name)
            .recovery_window_in_days(recovery.in_days())
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(()),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Ok(())
            }
            // Already scheduled: AWS and moto answer InvalidRequest (which
            // also covers refusals that are not ours to ignore).
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_invalid_request_exception())
                    && self.scheduled_for_deletion(name).await? =>
            {
                Ok(())
            }
            Err(error) => Err(StoreError::Unavailable(summary(&error))),
        }
    }
}

impl InstallationStore for SecretsManagerStore {
    async fn save_document(&self, shop: &ShopRef, json: String) -> Result<SaveOutcome, StoreError> {
        let name = self.names.installation(shop);
        let tags = SecretTags { shop, holds: None };
        self.put_secret(&name, &json, tags).await
    }

    async fn load_document(&self, shop: &ShopRef) -> Result<Option<String>, StoreError> {
        self.get_secret(&self.names.installation(shop)).await
    }

    /// Schedules the installation's secret and, for a Shoptet shop, its
    /// signature key's (with the same recovery window), so neither outlives
    /// the other by more than a failed call: the document goes first, and a
    /// retried uninstall schedules what is left.
    async fn schedule_deletion(
        &self,
        shop: &ShopRef,
        recovery: RecoveryWindow,
    ) -> Result<(), StoreError> {
        self.schedule_secret_deletion(&self.names.installation(shop), recovery)
            .await?;
        if let ShopRef::Shoptet(eshop_id) = shop {
            self.schedule_secret_deletion(&self.names.signature_key(*eshop_id), recovery)
                .await?;
        }
        Ok(())
    }

    /// A secret of its own, not a member of the installation's document: a
    /// key registration that read the document, then raced a reinstall,
    /// would write the old OAuth token back with it. The key's secret is
    /// written by nothing but this call.
    async fn save_signature_key(
        &self,
        eshop_id: ShoptetEshopId,
        key: &EshopSignatureKey,
    ) -> Result<(), StoreError> {
        let shop = ShopRef::Shoptet(eshop_id);
        let tags = SecretTags {
            shop: &shop,
            holds: Some(SIGNATURE_KEY_SUFFIX),
        };
        self.put_secret(
            &self.names.signature_key(eshop_id),
            key.expose_secret(),
            tags,
        )
        .await
        .map(drop)
    }

    async fn load_signature_key(
        &self,
        eshop_id: ShoptetEshopId,
    ) -> Result<Option<EshopSignatureKey>, StoreError> {
        Ok(self
            .get_secret(&self.names.signature_key(eshop_id))
            .await?
            .map(EshopSignatureKey::new))
    }
}

/// The secrets under the prefix whose names are installations' (needs
/// `secretsmanager:ListSecrets`, which IAM cannot scope to a prefix: only
/// the migration command's operator has it, never a function). The cursor
/// is Secrets Manager's `NextToken`.
impl InstallationInventory for SecretsManagerStore {
    async fn list_installations(
        &self,
        query: &InventoryQuery,
    ) -> Result<InventoryPage, StoreError> {
        let mut request = self
            .client
            .list_secrets()
            .max_results(i32::try_from(page_limit(query)).unwrap_or(i32::MAX))
            // Secrets scheduled for deletion are gone for the broker (the
            // default, said aloud).
            .include_planned_deletion(false)
            .set_next_token(query.after.as_ref().map(|after| after.as_str().to_owned()));
        // The name filter is a prefix match (case-insensitive on AWS, so
        // every name is checked again below); an empty prefix filters nothing.
        if !self.names.prefix().is_empty() {
            request = request.filters(
                Filter::builder()
                    .key(FilterNameStringType::Name)
                    .values(self.names.prefix())
                    .build(),
            );
        }
        let output = match request.send().await {
            Ok(output) => output,
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_invalid_next_token_exception()) =>
            {
                return Err(query
                    .after
                    .as_ref()
                    .map_or_else(|| StoreError::Unavailable(summary(&error)), foreign_cursor));
            }
            Err(error) => return Err(StoreError::Unavailable(summary(&error))),
        };
        let shops = output
            .secret_list()
            .iter()
            .filter(|entry| entry.deleted_date().is_none())
            // Other secrets may share the prefix (an add-on's client secret):
            // only names of the installation form are shops.
            .filter_map(|entry| self.names.shop(entry.name()?))
            .collect();
        Ok(InventoryPage {
            shops,
            next: output
                .next_token()
                .filter(|token| !token.is_empty())
                .map(InventoryCursor::new),
        })
    }
}

/// Reads an add-on's client secret once at start-up. The secret may hold the
/// bare value or a JSON object with a `client_secret` member.
pub async fn read_client_secret(
    client: &Client,
    secret_id: &str,
) -> Result<ClientSecret, StoreError> {
    let output = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|error| StoreError::Unavailable(summary(&error)))?;
    let text = output
        .secret_string()
        .ok_or_else(|| StoreError::Corrupt(format!("secret {secret_id} has no string value")))?;
    let from_json = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.get("client_secret")?.as_str().map(ClientSecret::new));
    let secret = from_json.unwrap_or_else(|| ClientSecret::new(text.trim()));
    if secret.is_empty() {
        return Err(StoreError::Corrupt(format!("secret {secret_id} is empty")));
    }
    Ok(secret)
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
    /// It must end in `/`: the functions' grants are `<prefix>shoptet/*` and
    /// `<prefix>shoprenter/*`, and a prefix such as `shop` would otherwise
    /// share its names with any secret starting `shop…` (the template's
    /// `SecretPrefix` has the same rule).
    pub fn new(prefix: &str) -> Result<Self, &'static str> {
        let valid = prefix.len() <= 256
            && prefix.ends_with('/')
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b));
        if valid {
            Ok(Self {
                prefix: prefix.to_owned(),
            })
        } else {
            Err("letters, digits and /_+=.@- only, ending in /, at most 256 characters")
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn installation(&self, shop: &ShopRef) -> String {
        format!("{}{}/{}", self.prefix, shop.platform(), shop.id())
    }

    /// The secret holding a Shoptet installation's e-shop webhook signature
    /// key: below the installation's name (so the functions' grants on
    /// `<prefix>shoptet/*` cover it), and never a shop's name itself
    /// ([`SecretNames::shop`] answers `None` for it).
    pub fn signature_key(&self, eshop_id: ShoptetEshopId) -> String {
        format!(
            "{}/{SIGNATURE_KEY_SUFFIX}",
            self.installation(&ShopRef::Shoptet(eshop_id))
        )
    }

    /// The shop whose installation secret `name` is: the inverse of
    /// [`SecretNames::installation`]. `None` for any other name under the
    /// prefix (an add-on's client secret, say, or an installation's
    /// signature key: its `/` makes no shop id) or outside it.
    pub fn shop(&self, name: &str) -> Option<ShopRef> {
        let (platform, id) = name.strip_prefix(&self.prefix)?.split_once('/')?;
        let shop = ShopRef::parse(platform, id).ok()?;
        // Only the canonical spelling is the shop's secret.
        (self.installation(&shop) == name).then_some(shop)
    }
}

impl Default for SecretNames {
    fn default() -> Self {
        Self {
            prefix: DEFAULT_SECRET_PREFIX.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key's secret is named below the installation's, and that name is
    /// no shop's: the inventory (which keeps only names `shop` answers for)
    /// never lists it, and it is never taken for e-shop 222651's document.
    #[test]
    fn a_signature_keys_secret_names_no_shop() {
        let names = SecretNames::default();
        let eshop_id = ShoptetEshopId::new(222651).unwrap();
        let name = names.signature_key(eshop_id);
        assert_eq!(
            name,
            "shop-token-broker/shoptet/222651/webhook-signature-key"
        );
        assert_eq!(names.shop(&name), None);
        assert_eq!(
            names.shop("shop-token-broker/shoptet/222651"),
            Some(ShopRef::Shoptet(eshop_id))
        );
    }
}
