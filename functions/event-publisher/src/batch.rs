//! The two batches Lambda hands the publisher, as much of them as it reads,
//! and its answer: the registry table's stream records (DynamoDB Streams,
//! `NEW_AND_OLD_IMAGES`) and the queued EventBridge events bound for the
//! add-on's endpoint (SQS). Either answer names the records to retry
//! (`ReportBatchItemFailures`).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use broker_domain::events::{InstallationEvent, from_stored};

/// The registry item's attributes the publisher reads (the DynamoDB
/// adapter writes them: `broker_aws::storage::dynamodb_registry`).
const SEQUENCE: &str = "sequence";
const EVENT: &str = "event";

/// One invocation's records.
#[derive(Debug, Deserialize)]
pub struct Batch {
    #[serde(rename = "Records")]
    pub records: Vec<Record>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "eventSource")]
pub enum Record {
    #[serde(rename = "aws:dynamodb")]
    Change(ChangeRecord),
    #[serde(rename = "aws:sqs")]
    Delivery(QueuedDelivery),
}

/// A change of a registry item.
#[derive(Debug, Deserialize)]
pub struct ChangeRecord {
    pub dynamodb: StreamData,
}

#[derive(Debug, Deserialize)]
pub struct StreamData {
    /// Epoch seconds (Lambda sends a number, fractional at times).
    #[serde(rename = "ApproximateCreationDateTime")]
    pub created: Option<f64>,
    #[serde(rename = "NewImage", default)]
    pub new_image: Option<HashMap<String, Value>>,
    #[serde(rename = "OldImage", default)]
    pub old_image: Option<HashMap<String, Value>>,
    #[serde(rename = "SequenceNumber")]
    pub sequence_number: String,
}

/// What a change record holds for the bus.
#[derive(Debug)]
pub enum Change {
    /// The write committed an event (its `sequence` grew).
    Event(Box<InstallationEvent>),
    /// A write that is no event (a repeat, a re-check claim, a count).
    Quiet,
    /// The write's event does not read back: nothing to publish, ever.
    Unreadable,
}

impl ChangeRecord {
    pub fn change(&self) -> Change {
        let Some(new) = &self.dynamodb.new_image else {
            return Change::Quiet;
        };
        let before = self
            .dynamodb
            .old_image
            .as_ref()
            .and_then(|old| number(old, SEQUENCE))
            .unwrap_or(0);
        let Some(after) = number(new, SEQUENCE) else {
            return Change::Quiet;
        };
        if after <= before {
            return Change::Quiet;
        }
        let stored = new.get(EVENT).and_then(|value| value.get("S")?.as_str());
        match stored.map(from_stored) {
            Some(Ok(event)) if event.sequence == after => Change::Event(Box::new(event)),
            _ => Change::Unreadable,
        }
    }
}

fn number(image: &HashMap<String, Value>, name: &str) -> Option<u64> {
    image.get(name)?.get("N")?.as_str()?.parse().ok()
}

/// An EventBridge event a rule on the bus queued for the endpoint.
#[derive(Debug, Deserialize)]
pub struct QueuedDelivery {
    #[serde(rename = "messageId")]
    pub message_id: String,
    pub body: String,
}

impl QueuedDelivery {
    /// The broker's event inside the queued EventBridge envelope, if it is one.
    pub fn event(&self) -> Option<InstallationEvent> {
        let envelope: Value = serde_json::from_str(&self.body).ok()?;
        serde_json::from_value(envelope.get("detail")?.clone()).ok()
    }
}

/// The records to retry: for a stream, the first one not published (Lambda
/// resumes the shard there); for a queue, each message not delivered.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct BatchResponse {
    #[serde(rename = "batchItemFailures")]
    pub failures: Vec<ItemFailure>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ItemFailure {
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}
