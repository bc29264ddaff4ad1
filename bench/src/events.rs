//! `broker-bench events`: the latency from a committed state change to its
//! event at a queue subscribed to the bus, through the real parts: the
//! DynamoDB registry adapter writes the change (moto, stream on), the
//! stream is read as Lambda's event source mapping reads it
//! (`test_support::events::RegistryStream`, polled back to back), the real
//! publisher handler puts the event on a bus of moto's, a rule delivers it
//! to an SQS queue, and the sample ends when the queue hands it over.
//!
//! What this cannot show: in AWS the mapping polls each shard about four
//! times a second, and EventBridge's own delivery to targets adds its
//! latency (typically tens of milliseconds); BENCHMARKS.md says so beside
//! the figures.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use broker_aws::storage::dynamodb_registry::DynamoRegistry;
use broker_domain::ids::{ShopRef, ShoptetEshopId};
use broker_domain::model::{Origin, StatusChange};
use broker_domain::storage::InstallationRegistry;
use broker_runtime::metrics::{Metrics, Service};
use event_publisher::Publisher;
use event_publisher::batch::Batch;
use test_support::events::{BusTap, RegistryStream};

use crate::Error;
use crate::report::progress;
use crate::stats::{Samples, millis};

pub const USAGE: &str = "usage: broker-bench events [--samples N]";

/// How long one sample may take before the bench gives up on it.
const SAMPLE_LIMIT: Duration = Duration::from_secs(10);

pub fn parse(args: &[String]) -> Result<usize, String> {
    match args {
        [] => Ok(200),
        [flag, n] if flag == "--samples" => n
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{n:?} is not a positive number")),
        _ => Err("events takes only --samples N".into()),
    }
}

pub async fn run(samples: usize) -> Result<(), Error> {
    let aws = test_support::emulator_sdk_config().await;
    let table = test_support::unique_name("bench-registry");
    test_support::create_registry_table(&aws, &table).await;
    let mut stream = RegistryStream::open(&aws, &table).await;
    let tap = BusTap::create(&aws).await;
    let metrics = Metrics::new(Service::EventPublisher, "Bench", std::io::sink());
    let publisher = Publisher::new(
        tap.bus.clone(),
        aws_sdk_eventbridge::Client::new(&aws),
        None,
        Arc::new(metrics),
    );
    let registry = DynamoRegistry::new(aws_sdk_dynamodb::Client::new(&aws), &table);
    let mut to_queue = Vec::with_capacity(samples);
    let mut to_publisher = Vec::with_capacity(samples);
    progress(&format!(
        "events: {samples} installs, each to its event at the queue"
    ));
    for n in 0..samples {
        let shop = ShopRef::Shoptet(ShoptetEshopId::new(5_000_000 + n as u64).expect("an id"));
        let started = Instant::now();
        registry
            .record(
                &shop,
                &StatusChange::installed(SystemTime::now(), Origin::Import),
            )
            .await
            .map_err(|e| format!("recording a change: {e}"))?;
        let mut handed_over = None;
        loop {
            let publisher = &publisher;
            let pumped = stream
                .pump(25, |records| async move {
                    let batch: Batch = serde_json::from_value(records).expect("a stream batch");
                    serde_json::to_value(publisher.handle(batch).await).expect("an answer")
                })
                .await;
            if pumped.stuck {
                return Err("the publisher reported a failure".into());
            }
            if pumped.handled > 0 && handed_over.is_none() {
                handed_over = Some(started.elapsed());
            }
            if !tap.drain().await.is_empty() {
                to_queue.push(started.elapsed());
                to_publisher.push(handed_over.unwrap_or_default());
                break;
            }
            if started.elapsed() > SAMPLE_LIMIT {
                return Err("an event did not reach the queue in 10 s".into());
            }
        }
    }
    let to_queue = Samples::new(to_queue);
    let to_publisher = Samples::new(to_publisher);
    println!("| Measurement ({samples} samples) | p50 | p99 | mean |");
    println!("| --- | --- | --- | --- |");
    for (what, samples) in [
        (
            "State change committed → its stream record handed to the publisher",
            &to_publisher,
        ),
        (
            "**State change committed → its event received from the subscriber's queue**",
            &to_queue,
        ),
    ] {
        println!(
            "| {what} | {} | {} | {} |",
            millis(samples.percentile(50.0)),
            millis(samples.percentile(99.0)),
            millis(samples.mean())
        );
    }
    Ok(())
}
