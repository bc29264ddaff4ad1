//! The two batches Lambda hands the publisher, as much of them as it reads,
//! and its answer: the registry table's stream records (DynamoDB Streams,
//! `NEW_AND_OLD_IMAGES`) and the queued EventBridge events bound for the
//! add-on's endpoint (SQS). Either answer names the records to retry
//! (`ReportBatchItemFailures`).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use broker_domain::bus::body_of;
use broker_domain::events::{
    ESHOP_WEBHOOK_DETAIL_TYPE, EshopWebhookEvent, InstallationEvent,
    WEBHOOK_REGISTRATION_FAILED_DETAIL_TYPE, WEBHOOKS_REGISTERED_DETAIL_TYPE,
    WebhookRegistrationEvent,
};
use broker_domain::storage::raw::from_stored;

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

/// A broker event bound for the endpoint: its id and the body to send,
/// serialized from its type (EventBridge may reorder a detail's keys, so
/// the body is written as the broker writes it, not as it came).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub id: String,
    /// The `detail-type`, for logs.
    pub detail_type: String,
    pub body: String,
}

impl QueuedDelivery {
    /// The broker's event inside the queued EventBridge envelope, if it is
    /// one: a lifecycle event, a forwarded e-shop webhook, or a webhook
    /// registration's outcome.
    pub fn event(&self) -> Option<Outgoing> {
        let envelope: Value = serde_json::from_str(&self.body).ok()?;
        let detail_type = envelope.get("detail-type")?.as_str()?.to_owned();
        let detail = envelope.get("detail")?.clone();
        let (id, body) = match detail_type.as_str() {
            ESHOP_WEBHOOK_DETAIL_TYPE => {
                let event: EshopWebhookEvent = serde_json::from_value(detail).ok()?;
                (event.id.clone(), serde_json::to_string(&event).ok()?)
            }
            WEBHOOKS_REGISTERED_DETAIL_TYPE | WEBHOOK_REGISTRATION_FAILED_DETAIL_TYPE => {
                let event: WebhookRegistrationEvent = serde_json::from_value(detail).ok()?;
                (event.id.clone(), serde_json::to_string(&event).ok()?)
            }
            _ => {
                let event: InstallationEvent = serde_json::from_value(detail).ok()?;
                (event.id.clone(), body_of(&event))
            }
        };
        Some(Outgoing {
            id,
            detail_type,
            body,
        })
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event_json(sequence: u64) -> String {
        json!({
            "schema_version": 1, "id": "0c3d7a52-5b8f-4a59-9a43-2f0f3c1f9a10",
            "kind": "suspended", "platform": "shoptet", "shop": "222651",
            "sequence": sequence, "occurred_at": "2026-12-06T13:00:00.123Z",
            "cause": "platform_webhook", "platform_event": "addon:suspend"
        })
        .to_string()
    }

    /// A stream record as Lambda sends it, with extra fields it carries.
    fn record(old: Option<u64>, new: Option<(u64, String)>) -> Value {
        let mut change = json!({
            "ApproximateCreationDateTime": 1_796_560_000.5,
            "Keys": {"pk": {"S": "shoptet#222651"}},
            "SequenceNumber": "4100000000017454423010",
            "SizeBytes": 276,
            "StreamViewType": "NEW_AND_OLD_IMAGES"
        });
        if let Some(old) = old {
            change["OldImage"] =
                json!({"pk": {"S": "shoptet#222651"}, "sequence": {"N": old.to_string()}});
        }
        if let Some((sequence, event)) = new {
            change["NewImage"] = json!({
                "pk": {"S": "shoptet#222651"},
                "sequence": {"N": sequence.to_string()},
                "event": {"S": event}
            });
        }
        json!({
            "eventID": "1", "eventName": "MODIFY", "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": "eu-central-1",
            "eventSourceARN": "arn:aws:dynamodb:eu-central-1:1:table/r/stream/x",
            "dynamodb": change
        })
    }

    fn change_of(record: Value) -> Change {
        let batch: Batch = serde_json::from_value(json!({ "Records": [record] })).unwrap();
        match batch.records.into_iter().next().unwrap() {
            Record::Change(change) => change.change(),
            Record::Delivery(_) => panic!("a stream record"),
        }
    }

    #[test]
    fn a_record_whose_sequence_grew_is_its_event_and_any_other_is_quiet() {
        let Change::Event(event) = change_of(record(Some(1), Some((2, event_json(2))))) else {
            panic!("an event");
        };
        assert_eq!((event.sequence, event.kind.as_str()), (2, "suspended"));
        // A first write (no old image) that numbered an event.
        assert!(matches!(
            change_of(record(None, Some((1, event_json(1))))),
            Change::Event(_)
        ));
        // A write that numbered nothing (a re-check claim, a counted mint).
        assert!(matches!(
            change_of(record(Some(2), Some((2, event_json(2))))),
            Change::Quiet
        ));
        // An item removed.
        assert!(matches!(change_of(record(Some(2), None)), Change::Quiet));
    }

    #[test]
    fn an_event_that_does_not_read_back_or_names_another_sequence_is_unreadable() {
        assert!(matches!(
            change_of(record(Some(1), Some((2, "{not json".into())))),
            Change::Unreadable
        ));
        assert!(matches!(
            change_of(record(Some(1), Some((2, event_json(7))))),
            Change::Unreadable
        ));
    }

    #[test]
    fn a_queued_message_carries_the_event_as_its_envelopes_detail() {
        let envelope = json!({
            "version": "0", "id": "eb-1", "detail-type": "Installation Suspended",
            "source": "shop-token-broker", "detail": serde_json::from_str::<Value>(&event_json(2)).unwrap()
        });
        let batch: Batch = serde_json::from_value(json!({"Records": [{
            "messageId": "m-1", "receiptHandle": "r", "eventSource": "aws:sqs",
            "body": envelope.to_string(), "attributes": {}
        }]}))
        .unwrap();
        let Record::Delivery(delivery) = &batch.records[0] else {
            panic!("a queued delivery");
        };
        let outgoing = delivery.event().unwrap();
        assert_eq!(outgoing.detail_type, "Installation Suspended");
        let as_json = |text: &str| serde_json::from_str::<Value>(text).unwrap();
        assert_eq!(as_json(&outgoing.body), as_json(&event_json(2)));
        let foreign = QueuedDelivery {
            message_id: "m-2".into(),
            body: r#"{"detail-type":"Installation Suspended","detail":{"hello":1}}"#.into(),
        };
        assert_eq!(foreign.event(), None);
    }

    #[test]
    fn the_answer_names_the_records_to_retry_as_lambda_reads_them() {
        let answer = BatchResponse {
            failures: vec![ItemFailure {
                item_identifier: "4100000000017454423010".into(),
            }],
        };
        assert_eq!(
            serde_json::to_value(answer).unwrap(),
            json!({"batchItemFailures": [{"itemIdentifier": "4100000000017454423010"}]})
        );
    }
}
