//! The lifecycle events' path in the emulator: the registry table's stream
//! read as Lambda's event source mapping reads it ([`RegistryStream`]: the
//! real stream records, in order, handed to the publisher's real handler as
//! the JSON Lambda sends, resumed from the first record it reports failed),
//! and a bus with a rule feeding a queue ([`BusTap`]), where the tests read
//! what a subscriber would receive.
//!
//! moto runs no Lambda functions (that needs Docker), so the one part
//! played here is the mapping's polling loop; every record, image, bus,
//! rule and queue is moto's own.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_config::SdkConfig;
use aws_sdk_dynamodbstreams::types::{AttributeValue, ShardIteratorType};
use serde_json::{Map, Value, json};

use crate::unique_name;

/// The broker's EventBridge `source` (the publisher's, `shop-token-protocol`).
pub const SOURCE: &str = "shop-token-broker";

/// A registry table's stream, read from its start, with a checkpoint.
pub struct RegistryStream {
    client: aws_sdk_dynamodbstreams::Client,
    arn: String,
    /// The last record handled; the next read starts after it.
    checkpoint: Option<(String, String)>,
}

/// What one pump did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pumped {
    /// Stream records handed over and not reported failed.
    pub handled: usize,
    /// Whether the handler reported a failure (the rest waits for the next pump).
    pub stuck: bool,
}

impl RegistryStream {
    pub async fn open(aws: &SdkConfig, table: &str) -> Self {
        let described = aws_sdk_dynamodb::Client::new(aws)
            .describe_table()
            .table_name(table)
            .send()
            .await
            .expect("describing the registry table");
        let arn = described
            .table()
            .and_then(|t| t.latest_stream_arn())
            .expect("the registry table has a stream")
            .to_owned();
        Self {
            client: aws_sdk_dynamodbstreams::Client::new(aws),
            arn,
            checkpoint: None,
        }
    }

    /// The records after the checkpoint, oldest first (every shard).
    async fn pending(&self) -> Vec<(String, aws_sdk_dynamodbstreams::types::Record)> {
        let stream = self
            .client
            .describe_stream()
            .stream_arn(&self.arn)
            .send()
            .await
            .expect("describing the stream");
        let shards = stream
            .stream_description()
            .map(|d| d.shards().to_vec())
            .unwrap_or_default();
        let mut records = Vec::new();
        for shard in shards {
            let shard_id = shard.shard_id().unwrap_or_default().to_owned();
            let mut request = self
                .client
                .get_shard_iterator()
                .stream_arn(&self.arn)
                .shard_id(&shard_id);
            request = match &self.checkpoint {
                Some((shard, sequence)) if *shard == shard_id => request
                    .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                    .sequence_number(sequence),
                _ => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
            };
            let mut iterator = request
                .send()
                .await
                .expect("a shard iterator")
                .shard_iterator
                .map(|i| i.to_owned());
            while let Some(current) = iterator.take() {
                let page = self
                    .client
                    .get_records()
                    .shard_iterator(current)
                    .send()
                    .await
                    .expect("reading the stream");
                if page.records().is_empty() {
                    break;
                }
                records.extend(
                    page.records()
                        .iter()
                        .cloned()
                        .map(|r| (shard_id.clone(), r)),
                );
                iterator = page.next_shard_iterator().map(str::to_owned);
            }
        }
        records
    }

    /// Hands every pending record to `handle` in batches of `batch_size`,
    /// as Lambda's `{"Records": [...]}`; stops at the first batch whose
    /// answer names a failed record, with the checkpoint just before it.
    pub async fn pump<F, Fut>(&mut self, batch_size: usize, mut handle: F) -> Pumped
    where
        F: FnMut(Value) -> Fut,
        Fut: std::future::Future<Output = Value>,
    {
        let mut pumped = Pumped::default();
        let pending = self.pending().await;
        for batch in pending.chunks(batch_size) {
            let records: Vec<Value> = batch
                .iter()
                .map(|(_, record)| lambda_record(&self.arn, record))
                .collect();
            let answer = handle(json!({ "Records": records })).await;
            let failed = answer["batchItemFailures"]
                .as_array()
                .and_then(|failures| failures.first())
                .and_then(|failure| failure["itemIdentifier"].as_str())
                .map(str::to_owned);
            for (shard, record) in batch {
                let sequence = record
                    .dynamodb()
                    .and_then(|d| d.sequence_number())
                    .unwrap_or_default()
                    .to_owned();
                if failed.as_deref() == Some(sequence.as_str()) {
                    pumped.stuck = true;
                    return pumped;
                }
                self.checkpoint = Some((shard.clone(), sequence));
                pumped.handled += 1;
            }
        }
        pumped
    }
}

/// A stream record as Lambda's DynamoDB event source sends it.
fn lambda_record(arn: &str, record: &aws_sdk_dynamodbstreams::types::Record) -> Value {
    let data = record.dynamodb().expect("a stream record has its change");
    let image = |image: Option<&std::collections::HashMap<String, AttributeValue>>| {
        image.map(|image| {
            Value::Object(
                image
                    .iter()
                    .map(|(name, value)| (name.clone(), attribute_json(value)))
                    .collect::<Map<_, _>>(),
            )
        })
    };
    let created = data
        .approximate_creation_date_time()
        .map(|at| at.as_secs_f64())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs_f64()
        });
    let mut change = json!({
        "ApproximateCreationDateTime": created,
        "SequenceNumber": data.sequence_number().unwrap_or_default(),
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    });
    if let Some(new) = image(data.new_image.as_ref()) {
        change["NewImage"] = new;
    }
    if let Some(old) = image(data.old_image.as_ref()) {
        change["OldImage"] = old;
    }
    json!({
        "eventID": record.event_id().unwrap_or_default(),
        "eventName": record.event_name().map(|n| n.as_str()).unwrap_or_default(),
        "eventSource": "aws:dynamodb",
        "eventSourceARN": arn,
        "dynamodb": change,
    })
}

/// DynamoDB's JSON of one attribute value.
fn attribute_json(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(_) => json!({ "NULL": true }),
        AttributeValue::Ss(list) => json!({ "SS": list }),
        AttributeValue::Ns(list) => json!({ "NS": list }),
        AttributeValue::L(list) => {
            json!({ "L": list.iter().map(attribute_json).collect::<Vec<_>>() })
        }
        AttributeValue::M(map) => json!({
            "M": map.iter().map(|(k, v)| (k.clone(), attribute_json(v))).collect::<Map<_, _>>()
        }),
        other => panic!("a registry item holds no {other:?}"),
    }
}

/// A bus of the test's own, with a rule on the broker's source feeding a
/// queue: what a subscriber of the bus receives.
pub struct BusTap {
    pub bus: String,
    pub queue_url: String,
    sqs: aws_sdk_sqs::Client,
}

impl BusTap {
    pub async fn create(aws: &SdkConfig) -> Self {
        let bus = unique_name("events");
        aws_sdk_eventbridge::Client::new(aws)
            .create_event_bus()
            .name(&bus)
            .send()
            .await
            .expect("creating the bus");
        Self::on(aws, &bus).await
    }

    /// A rule and a queue of the test's own on an existing bus.
    pub async fn on(aws: &SdkConfig, bus: &str) -> Self {
        let events = aws_sdk_eventbridge::Client::new(aws);
        let sqs = aws_sdk_sqs::Client::new(aws);
        let bus = bus.to_owned();
        let queue_url = sqs
            .create_queue()
            .queue_name(unique_name("subscriber"))
            .send()
            .await
            .expect("creating the queue")
            .queue_url
            .expect("a queue URL");
        let queue_arn = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("the queue's ARN")
            .attributes
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                    .cloned()
            })
            .expect("a queue ARN");
        let rule = unique_name("all-lifecycle");
        events
            .put_rule()
            .name(&rule)
            .event_bus_name(&bus)
            .event_pattern(json!({ "source": [SOURCE] }).to_string())
            .send()
            .await
            .expect("creating the rule");
        events
            .put_targets()
            .rule(&rule)
            .event_bus_name(&bus)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("queue")
                    .arn(queue_arn)
                    .build()
                    .expect("a complete target"),
            )
            .send()
            .await
            .expect("targeting the queue");
        Self {
            bus,
            queue_url,
            sqs,
        }
    }

    /// Every envelope queued so far (and removes them from the queue).
    pub async fn drain(&self) -> Vec<Value> {
        let mut envelopes = Vec::new();
        loop {
            let page = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("receiving from the queue");
            let messages = page.messages();
            if messages.is_empty() {
                return envelopes;
            }
            for message in messages {
                envelopes.push(
                    serde_json::from_str(message.body().unwrap_or_default())
                        .expect("an EventBridge envelope"),
                );
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(message.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .expect("deleting a message");
            }
        }
    }
}

/// The repository's Python (the `.venv` scripts/test.sh sets up).
pub fn python() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python")
}

/// The repository's root.
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Validates event details against `docs/events/schemas` (the documented
/// check, `docs/events/validate.py`); panics with its report otherwise.
pub fn assert_valid_against_schemas(details: &[Value]) {
    let file = tempfile_path("events.json");
    std::fs::write(&file, serde_json::to_vec(details).unwrap()).unwrap();
    let output = std::process::Command::new(python())
        .arg(repo_root().join("docs/events/validate.py"))
        .arg(&file)
        .output()
        .expect(
            "running docs/events/validate.py (run through scripts/test.sh, which sets up .venv)",
        );
    let _ = std::fs::remove_file(&file);
    assert!(
        output.status.success(),
        "events do not match their schemas:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A path in the temporary directory no other test uses.
pub fn tempfile_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("{}-{name}", unique_name("t")))
}

/// `http://127.0.0.1:PORT` of a server that answers every request with
/// `status` and an empty body: an AWS endpoint that refuses (5xx).
pub async fn endpoint_answering(status: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("binding a loopback port");
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 64 * 1024];
                // One read holds the SDK's small request; answer and close.
                let _ = socket.read(&mut buffer).await;
                let answer = format!(
                    "HTTP/1.1 {status} Refused\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    url
}

/// `http://127.0.0.1:PORT` of a server that accepts connections and never
/// answers: an AWS endpoint that hangs.
pub async fn endpoint_never_answering() -> String {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("binding a loopback port");
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    url
}

/// One request an [`EventReceiver`] took.
#[derive(Debug, Clone)]
pub struct Received {
    /// Header names in lowercase.
    pub headers: std::collections::HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }
}

/// An add-on's endpoint on loopback: records every request, answers
/// `status` with an empty body. Plain threads, so sync tests can use it.
pub struct EventReceiver {
    pub url: String,
    received: std::sync::Arc<std::sync::Mutex<Vec<Received>>>,
}

impl EventReceiver {
    pub fn start(status: u16) -> Self {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let url = format!("http://{}/broker-events", listener.local_addr().unwrap());
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("a socket"));
                let mut headers = std::collections::HashMap::new();
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                loop {
                    line.clear();
                    if reader.read_line(&mut line).is_err() {
                        break;
                    }
                    let Some((name, value)) = line.trim_end().split_once(':') else {
                        break;
                    };
                    headers.insert(name.to_ascii_lowercase(), value.trim().to_owned());
                }
                let length = headers
                    .get("content-length")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                kept.lock().unwrap().push(Received { headers, body });
                let answer = format!(
                    "HTTP/1.1 {status} Status\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        Self { url, received }
    }

    /// What arrived so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits (up to `limit`) until `count` requests arrived; what arrived.
    pub fn wait_for(&self, count: usize, limit: std::time::Duration) -> Vec<Received> {
        let deadline = std::time::Instant::now() + limit;
        while self.received.lock().unwrap().len() < count && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        self.received()
    }
}
