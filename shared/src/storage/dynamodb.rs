//! The token cache in DynamoDB: one item per shop, keyed `platform#id`.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;

use super::aws_errors::summary;
use super::{StoreError, TokenCache};
use crate::ids::ShopRef;

/// The table's partition key; `template.yaml` declares the same name.
pub const PARTITION_KEY: &str = "pk";
/// The TTL attribute (epoch seconds); `template.yaml` enables TTL on it.
pub const TTL_ATTRIBUTE: &str = "ttl";

#[derive(Clone)]
pub struct DynamoTokenCache {
    client: Client,
    table: String,
}

impl DynamoTokenCache {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

impl TokenCache for DynamoTokenCache {
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
