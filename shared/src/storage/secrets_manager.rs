//! Installations and credentials in AWS Secrets Manager, one JSON secret per
//! shop under the configured prefix.

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::types::Tag;

use super::aws_errors::summary;
use super::{InstallationStore, SaveOutcome, SecretNames, StoreError};
use crate::ids::ShopRef;
use crate::secret::ClientSecret;

#[derive(Clone)]
pub struct SecretsManagerStore {
    client: Client,
    names: SecretNames,
}

impl SecretsManagerStore {
    pub fn new(client: Client, names: SecretNames) -> Self {
        Self { client, names }
    }
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

impl InstallationStore for SecretsManagerStore {
    async fn save_document(&self, shop: &ShopRef, json: String) -> Result<SaveOutcome, StoreError> {
        let name = self.names.installation(shop);
        let created = self
            .client
            .create_secret()
            .name(&name)
            .secret_string(&json)
            .tags(tag("platform", shop.platform().as_str()))
            .tags(tag("shop", &shop.id()))
            .tags(tag("managed-by", "shop-token-broker"))
            .send()
            .await;
        match created {
            Ok(_) => return Ok(SaveOutcome::Created),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_exists_exception()) => {}
            Err(error) => return Err(StoreError::Unavailable(summary(&error))),
        }
        // The shop installed before: a new version, the old one stays as AWSPREVIOUS.
        self.client
            .put_secret_value()
            .secret_id(&name)
            .secret_string(json)
            .send()
            .await
            .map_err(|error| StoreError::Unavailable(summary(&error)))?;
        Ok(SaveOutcome::Replaced)
    }

    async fn load_document(&self, shop: &ShopRef) -> Result<Option<String>, StoreError> {
        let name = self.names.installation(shop);
        match self.client.get_secret_value().secret_id(&name).send().await {
            Ok(output) => Ok(Some(output.secret_string().unwrap_or_default().to_owned())),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(error) => Err(StoreError::Unavailable(summary(&error))),
        }
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
