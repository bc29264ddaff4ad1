//! The installation registry in DynamoDB: one item per shop, keyed like the
//! token table, with a `platform` index for listing one platform.

use aws_sdk_dynamodb::Client;

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
