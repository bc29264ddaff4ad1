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
//! A Shoptet installation's e-shop webhook signature key is no secret of its
//! own (each secret is billed per month: a second one per installation would
//! double the bill) but a version of the installation's secret labelled
//! [`SIGNATURE_KEY_STAGE`], beside the document's `AWSCURRENT` version,
//! which saving a key never touches. See [`SecretsManagerStore`]'s
//! `save_signature_key`.
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType, Tag};

use super::aws_errors::summary;
use crate::ids::{ShopRef, ShoptetEshopId};
use crate::secret::{ClientSecret, EshopSignatureKey, ExposeSecret};
use broker_domain::storage::{
    InstallationInventory, InstallationStore, InventoryCursor, InventoryPage, InventoryQuery,
    RecoveryWindow, SaveOutcome, StoreError, foreign_cursor, page_limit,
};

/// The staging label of the installation secret's version that holds the
/// e-shop webhook signature key (a custom label: Secrets Manager moves it to
/// each new version put with it and leaves `AWSCURRENT`, the document, where
/// it is).
pub const SIGNATURE_KEY_STAGE: &str = "webhook-signature-key";

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

impl SecretsManagerStore {
    /// Creates the secret `name`, or adds a new version if it exists,
    /// restoring it first if it was scheduled for deletion (a reinstall).
    /// Never deletes; the old version stays as AWSPREVIOUS.
    async fn put_secret(
        &self,
        name: &str,
        value: &str,
        shop: &ShopRef,
    ) -> Result<SaveOutcome, StoreError> {
        let create = self
            .client
            .create_secret()
            .name(name)
            .secret_string(value)
            .tags(tag("platform", shop.platform().as_str()))
            .tags(tag("shop", &shop.id()))
            .tags(tag("managed-by", "shop-token-broker"));
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

    /// The value of the secret's version labelled `stage` (`None`: the
    /// current one, `AWSCURRENT`); `None` when the secret is absent or
    /// scheduled for deletion, or no version has the label.
    async fn get_secret(
        &self,
        name: &str,
        stage: Option<&str>,
    ) -> Result<Option<String>, StoreError> {
        let request = self
            .client
            .get_secret_value()
            .secret_id(name)
            .set_version_stage(stage.map(str::to_owned));
        match request.send().await {
            Ok(output) => Ok(Some(output.secret_string().unwrap_or_default().to_owned())),
            // An absent secret, or (AWS and moto alike) no version with the
            // label asked for.
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
        self.put_secret(&self.names.installation(shop), &json, shop)
            .await
    }

    async fn load_document(&self, shop: &ShopRef) -> Result<Option<String>, StoreError> {
        self.get_secret(&self.names.installation(shop), None).await
    }

    /// Schedules the installation's secret, which takes every version with
    /// it: a Shoptet installation's signature key too.
    async fn schedule_deletion(
        &self,
        shop: &ShopRef,
        recovery: RecoveryWindow,
    ) -> Result<(), StoreError> {
        self.schedule_secret_deletion(&self.names.installation(shop), recovery)
            .await
    }

    /// A new version of the installation's secret labelled
    /// [`SIGNATURE_KEY_STAGE`]: Secrets Manager moves that label from the
    /// previous key's version and leaves `AWSCURRENT` (the document) alone.
    /// Never a read-modify-write of the document: a registration that read
    /// it, then raced a reinstall, would write the old OAuth token back.
    ///
    /// Refused (never creating or restoring the secret) when the
    /// installation has no live secret: absent, or scheduled for deletion
    /// (AWS would refuse the version then; moto would accept it, hence the
    /// `DescribeSecret` first). A registration runs for installed shops
    /// only, so this is an uninstall racing it, or damage.
    ///
    /// Each renewal leaves the previous key's version without a label;
    /// Secrets Manager keeps about 100 versions of a secret and removes
    /// unlabelled old ones itself, and a key is renewed once per install
    /// (or on an operator's re-registration), far below its advice of at
    /// most one `PutSecretValue` every 10 minutes. Nothing here counts them.
    async fn save_signature_key(
        &self,
        eshop_id: ShoptetEshopId,
        key: &EshopSignatureKey,
    ) -> Result<(), StoreError> {
        let shop = ShopRef::Shoptet(eshop_id);
        let name = self.names.installation(&shop);
        let no_installation = || {
            StoreError::Corrupt(format!(
                "{} has no live installation secret to keep a signature key in",
                shop.key()
            ))
        };
        match self.client.describe_secret().secret_id(&name).send().await {
            Ok(output) if output.deleted_date().is_some() => return Err(no_installation()),
            Ok(_) => {}
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                return Err(no_installation());
            }
            Err(error) => return Err(StoreError::Unavailable(summary(&error))),
        }
        let put = self
            .client
            .put_secret_value()
            .secret_id(&name)
            .secret_string(key.expose_secret())
            .version_stages(SIGNATURE_KEY_STAGE)
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            // Deleted since, or (AWS: InvalidRequest) scheduled since.
            Err(error)
                if error.as_service_error().is_some_and(|e| {
                    e.is_resource_not_found_exception() || e.is_invalid_request_exception()
                }) =>
            {
                Err(no_installation())
            }
            Err(error) => Err(StoreError::Unavailable(summary(&error))),
        }
    }

    /// The version labelled [`SIGNATURE_KEY_STAGE`]; `None` when the
    /// installation's secret is absent or scheduled for deletion, or holds
    /// no key yet.
    ///
    /// A reinstall within the recovery window restores the secret with all
    /// its versions, the old installation's labelled key among them, so
    /// this may answer that key until the reinstall's registration renews
    /// it. Correctness does not rest on this answer after a restore: every
    /// install event renews the key (`KeyRenewal::Always`, claimed once per
    /// event and retried until it succeeds), replacing the label.
    async fn load_signature_key(
        &self,
        eshop_id: ShoptetEshopId,
    ) -> Result<Option<EshopSignatureKey>, StoreError> {
        let name = self.names.installation(&ShopRef::Shoptet(eshop_id));
        Ok(self
            .get_secret(&name, Some(SIGNATURE_KEY_STAGE))
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

    /// The shop whose installation secret `name` is: the inverse of
    /// [`SecretNames::installation`]. `None` for any other name under the
    /// prefix (an add-on's client secret, say, or a name below an
    /// installation's, such as the separate signature key secrets
    /// `<installation>/webhook-signature-key` earlier builds created: a `/`
    /// makes no shop id) or outside it.
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

    /// Only an installation's own name is a shop's: not a name below it
    /// (a signature key secret left by an earlier build, say), not another
    /// spelling of the id, not a name outside the prefix. The inventory
    /// keeps only names `shop` answers for.
    #[test]
    fn only_an_installations_canonical_name_is_a_shop() {
        let names = SecretNames::default();
        let eshop_id = ShoptetEshopId::new(222651).unwrap();
        let name = names.installation(&ShopRef::Shoptet(eshop_id));
        assert_eq!(name, "shop-token-broker/shoptet/222651");
        assert_eq!(names.shop(&name), Some(ShopRef::Shoptet(eshop_id)));
        for other in [
            "shop-token-broker/shoptet/222651/webhook-signature-key",
            "shop-token-broker/shoptet/0222651",
            "shop-token-broker/shoptet/",
            "shop-token-broker/shoptet",
            "other-prefix/shoptet/222651",
            "shoptet/222651",
        ] {
            assert_eq!(names.shop(other), None, "{other}");
        }
    }
}
