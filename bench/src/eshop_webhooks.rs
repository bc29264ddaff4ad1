//! `broker-bench eshop-webhooks`: how long the install callback takes to
//! acknowledge Shoptet's e-shop webhook deliveries (`POST
//! /shoptet/eshop-webhook`) when many arrive at once, through the real
//! handler on moto: the key from memory (or, on a miss, the registry and
//! the installation store), the HMAC, the delivery log in the token table
//! (a GetItem; after forwarding an UpdateItem) and one `PutEvents` per new
//! delivery to a bus, whose rule feeds a queue the bench drains.
//!
//! Setup: `--shops` shops installed through the handler's own install
//! route (so the registry holds them as installed), a signature key saved
//! for each in the installation store, one handler built once and warmed
//! with one delivery per shop (keys in memory, SDK connections open). Then
//! each sample runs three rounds of `--concurrency` deliveries released
//! together, each request timed from entering `handle` to its response:
//!
//! - new: distinct notifications spread over the shops, warm handler;
//! - duplicates: the same bodies again (the dedup path: one GetItem each);
//! - cold keys: new notifications to a newly built handler (empty key
//!   cache, new SDK clients on the same transport).
//!
//! Every answer must be 200 with the expected status, and the queue must
//! hold exactly one event per new notification and none for a duplicate:
//! the bench exits non-zero otherwise. All concurrent requests share one
//! handler in one process (2 Tokio workers); on AWS each would be a Lambda
//! instance of its own, so this is the handler's work plus moto's, not
//! Lambda's scheduling.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker_domain::ids::ShoptetEshopId;
use broker_domain::secret::EshopSignatureKey;
use broker_domain::storage::InstallationStore;
use broker_platforms::shoptet_eshop_webhooks::{SIGNATURE_HEADER, sign};
use install_callback::{AwsInstallCallback, AwsInstallConfig};
use lambda_http::Body;
use lambda_http::http::StatusCode;
use platform_double::DoubleConfig;
use serde_json::Value;
use test_support::events::BusTap;
use test_support::front_door::{Caller, FrontDoor, event};
use test_support::request_counting::{RequestCounter, RequestCounts, counting};
use tokio::sync::Barrier;

use crate::Error;
use crate::counts::{REDIRECT_URI, install_config, quiet_install_callback, shoptet_install};
use crate::fleet::Fleet;
use crate::report::progress;
use crate::stats::{Samples, millis};

pub const USAGE: &str = "usage: broker-bench eshop-webhooks [--samples N] [--concurrency N] [--shops N] [--store SecretsManager|DynamoDB]";

/// Deliveries sent one at a time to the warm instance, for the floor.
const SOLO: usize = 50;

/// The bench's e-shops: ids of their own.
const FIRST_SHOP: u64 = 7_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// Times the three rounds are run.
    pub samples: usize,
    /// Deliveries sent at once in each round.
    pub concurrency: usize,
    pub shops: u64,
    /// The installation store is `DynamoDB` (else Secrets Manager).
    pub dynamo_installations: bool,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            samples: 3,
            concurrency: 200,
            shops: 20,
            dynamo_installations: false,
        }
    }
}

pub fn parse(args: &[String]) -> Result<Args, String> {
    let mut parsed = Args::default();
    for (name, value) in crate::options::named_values(args)? {
        let positive = |value: &str| crate::options::positive(&name, value);
        match name.as_str() {
            "samples" => parsed.samples = positive(&value)? as usize,
            "concurrency" => parsed.concurrency = positive(&value)? as usize,
            "shops" => parsed.shops = positive(&value)?,
            "store" => parsed.dynamo_installations = crate::options::dynamo_installations(&value)?,
            _ => return Err(format!("unknown option --{name}")),
        }
    }
    Ok(parsed)
}

/// One notification, signed with its shop's key.
struct Delivery {
    eshop_id: u64,
    instance: String,
    body: String,
    signature: String,
}

impl Delivery {
    /// The event API Gateway's HTTP API hands the function.
    fn request(&self) -> lambda_http::Request {
        let mut request = event(
            FrontDoor::HttpApi,
            Caller::Anonymous,
            "POST",
            "/shoptet/eshop-webhook",
            &self.body,
        );
        request.headers_mut().insert(
            SIGNATURE_HEADER,
            self.signature.parse().expect("hex is a header value"),
        );
        request
    }
}

/// The shops and their keys; numbers the notifications.
struct Shops {
    keys: Vec<(u64, EshopSignatureKey)>,
    next_instance: u64,
}

impl Shops {
    /// `n` distinct notifications, round-robin over the shops.
    fn notifications(&mut self, n: usize) -> Vec<Delivery> {
        (0..n)
            .map(|i| {
                let (eshop_id, key) = &self.keys[i % self.keys.len()];
                self.next_instance += 1;
                let instance = format!("2026{:08}", self.next_instance);
                let body = format!(
                    r#"{{"eshopId":{eshop_id},"event":"order:create","eventCreated":"2026-12-06T10:00:00+0100","eventInstance":"{instance}"}}"#
                );
                let signature = sign(key, body.as_bytes());
                Delivery {
                    eshop_id: *eshop_id,
                    instance,
                    body,
                    signature,
                }
            })
            .collect()
    }
}

/// One round: the deliveries released at once.
struct Round {
    latencies: Samples,
    /// First request in → last response out.
    wall: Duration,
    /// Each delivery's answer, in order: `forwarded`, `duplicate`, or the
    /// status and error code of a refusal.
    answers: Vec<String>,
    /// AWS requests the round made, counted on the wire.
    requests: RequestCounts,
    /// `Shoptet Webhook` events the subscriber's queue received after it.
    events: usize,
    /// What the checks found wrong.
    problems: Vec<String>,
}

impl Round {
    /// `forwarded 196, 503 upstream_unavailable 4`.
    fn answers_word(&self) -> String {
        let mut counts = std::collections::BTreeMap::<&str, usize>::new();
        for answer in &self.answers {
            *counts.entry(answer).or_default() += 1;
        }
        counts
            .iter()
            .map(|(answer, n)| format!("{answer} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Sends every delivery at once to `handler` (one task each, released by
/// a barrier), then drains the subscriber's queue. Each delivery must be
/// answered 200 with `expected(i)`, and the queue must hold one event for
/// each delivery answered `forwarded` and none for any other (a delivery
/// refused after its `PutEvents` was sent may have arrived: allowed).
async fn round(
    handler: &Arc<AwsInstallCallback>,
    deliveries: &[Delivery],
    expected: impl Fn(usize) -> &'static str,
    counter: &RequestCounter,
    tap: &BusTap,
) -> Result<Round, Error> {
    let requests: Vec<_> = deliveries.iter().map(Delivery::request).collect();
    let barrier = Arc::new(Barrier::new(requests.len()));
    let before = counter.snapshot();
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|request| {
            let handler = handler.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let started = Instant::now();
                let response = handler.handle(request).await;
                let answered = Instant::now();
                let status = response.status();
                let body = match response.into_body() {
                    Body::Text(text) => text,
                    Body::Binary(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                    _ => String::new(),
                };
                (started, answered, status, body)
            })
        })
        .collect();
    let mut timed = Vec::with_capacity(tasks.len());
    for task in tasks {
        timed.push(task.await?);
    }
    let requests = counter.snapshot().since(&before);
    let answers: Vec<String> = timed
        .iter()
        .map(|(_, _, status, body)| {
            let body: Value = serde_json::from_str(body).unwrap_or_default();
            match (status.as_u16(), body["status"].as_str()) {
                (200, Some(outcome)) => outcome.to_owned(),
                (code, _) => format!(
                    "{code} {}",
                    body["error"]["code"].as_str().unwrap_or("(no code)")
                ),
            }
        })
        .collect();
    let mut problems = Vec::new();
    let wrong = (0..answers.len())
        .filter(|&i| answers[i] != expected(i))
        .count();
    if wrong > 0 {
        problems.push(format!(
            "{wrong} of {} deliveries were not answered as expected",
            answers.len()
        ));
    }
    let key = |d: &Delivery| (d.eshop_id.to_string(), d.instance.clone());
    let must: BTreeSet<_> = (0..deliveries.len())
        .filter(|&i| answers[i] == "forwarded")
        .map(|i| key(&deliveries[i]))
        .collect();
    let may: BTreeSet<_> = (0..deliveries.len())
        .filter(|&i| answers[i] != "forwarded" && answers[i] != "duplicate")
        .map(|i| key(&deliveries[i]))
        .collect();
    let envelopes = tap.drain().await;
    let got: Vec<(String, String)> = envelopes
        .iter()
        .filter(|e| e["detail-type"] == "Shoptet Webhook")
        .map(|e| {
            let detail = &e["detail"];
            let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            (text(&detail["shop"]), text(&detail["event_instance"]))
        })
        .collect();
    let distinct: BTreeSet<_> = got.iter().cloned().collect();
    let unexpected = distinct
        .iter()
        .filter(|e| !must.contains(*e) && !may.contains(*e))
        .count();
    if envelopes.len() != got.len()
        || got.len() != distinct.len()
        || unexpected > 0
        || !must.is_subset(&distinct)
    {
        problems.push(format!(
            "the queue got {} envelopes ({} `Shoptet Webhook`, {} distinct, {unexpected} not sent or not forwarded) for {} deliveries answered `forwarded`",
            envelopes.len(),
            got.len(),
            distinct.len(),
            must.len()
        ));
    }
    let first_in = timed.iter().map(|a| a.0).min().expect("a round");
    let last_out = timed.iter().map(|a| a.1).max().expect("a round");
    Ok(Round {
        latencies: Samples::new(timed.iter().map(|a| a.1 - a.0).collect()),
        wall: last_out - first_in,
        answers,
        requests,
        events: got.len(),
        problems,
    })
}

/// The three rounds of one sample.
struct Sample {
    new: Round,
    duplicates: Round,
    cold: Round,
}

pub async fn run(args: Args) -> Result<(), Error> {
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; figures are meaningful only with --release");
    }
    let fleet = Fleet::start_with(
        DoubleConfig {
            shoptet_redirect_uri: Some(REDIRECT_URI.to_owned()),
            ..DoubleConfig::default()
        },
        args.dynamo_installations,
    )
    .await?;
    // The functions' own transport (one reqwest pool), every request counted.
    let (aws, counter) = counting(
        &fleet.aws,
        broker_aws::sdk_http::http_client(),
        fleet.target.table_roles(),
    );
    let tap = BusTap::create(&fleet.aws).await;
    let config = AwsInstallConfig {
        event_bus_name: Some(tap.bus.clone()),
        ..install_config(&fleet).await?
    };
    let handler = Arc::new(quiet_install_callback(config.clone(), &aws));

    progress(&format!(
        "eshop-webhooks: installing {} shops, a signature key each",
        args.shops
    ));
    let store = config.stores.open(&fleet.aws).installations;
    let mut shops = Shops {
        keys: Vec::new(),
        next_instance: 0,
    };
    for eshop_id in (FIRST_SHOP..).take(args.shops as usize) {
        let status = shoptet_install(&fleet, &handler, eshop_id).await?;
        if status != StatusCode::OK {
            return Err(format!("installing e-shop {eshop_id} answered {status}").into());
        }
        let key =
            EshopSignatureKey::new(format!("bench-eshop-key-{eshop_id}-{}", fastrand::u64(..)));
        store
            .save_signature_key(ShoptetEshopId::new(eshop_id)?, &key)
            .await?;
        shops.keys.push((eshop_id, key));
    }
    // Installs put nothing on this bus (the publisher is not running).
    let installs = tap.drain().await;
    if !installs.is_empty() {
        return Err(format!("{} events on the bus after the installs", installs.len()).into());
    }

    // A warm instance: each shop's key in memory, connections open.
    let warm_up = shops.notifications(shops.keys.len());
    let warmed = round(&handler, &warm_up, |_| "forwarded", &counter, &tap).await?;
    if !warmed.problems.is_empty() {
        return Err(format!("warm-up: {}", warmed.problems.join("; ")).into());
    }

    // The floor: one delivery at a time to the warm instance.
    let mut solo = Vec::with_capacity(SOLO);
    for delivery in shops.notifications(SOLO) {
        let alone = round(
            &handler,
            std::slice::from_ref(&delivery),
            |_| "forwarded",
            &counter,
            &tap,
        )
        .await?;
        if !alone.problems.is_empty() {
            return Err(format!("a delivery alone: {}", alone.problems.join("; ")).into());
        }
        solo.push(alone.wall);
    }
    let solo = Samples::new(solo);

    let n = args.concurrency;
    let mut samples = Vec::with_capacity(args.samples);
    for sample in 0..args.samples {
        progress(&format!(
            "eshop-webhooks {}/{}: {n} new, {n} duplicates, {n} new to a cold instance",
            sample + 1,
            args.samples
        ));
        let fresh = shops.notifications(n);
        let new = round(&handler, &fresh, |_| "forwarded", &counter, &tap).await?;
        // A copy of one that was refused is forwarded now (its first time,
        // as far as the delivery log knows).
        let first: Vec<bool> = new.answers.iter().map(|a| a == "forwarded").collect();
        let duplicates = round(
            &handler,
            &fresh,
            |i| if first[i] { "duplicate" } else { "forwarded" },
            &counter,
            &tap,
        )
        .await?;
        let cold_handler = Arc::new(quiet_install_callback(config.clone(), &aws));
        let fresh = shops.notifications(n);
        let cold = round(&cold_handler, &fresh, |_| "forwarded", &counter, &tap).await?;
        samples.push(Sample {
            new,
            duplicates,
            cold,
        });
    }
    // Nothing arrives late.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let late = tap.drain().await.len();
    print_report(&args, &solo, &samples);
    let mut problems: Vec<String> = Vec::new();
    for (i, sample) in samples.iter().enumerate() {
        for (what, round) in [
            ("new", &sample.new),
            ("duplicates", &sample.duplicates),
            ("cold", &sample.cold),
        ] {
            for problem in &round.problems {
                problems.push(format!("sample {} {what}: {problem}", i + 1));
            }
        }
    }
    if late > 0 {
        problems.push(format!("{late} events reached the queue late"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n").into())
    }
}

fn print_report(args: &Args, solo: &Samples, samples: &[Sample]) {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let store = if args.dynamo_installations {
        "DynamoDB"
    } else {
        "Secrets Manager"
    };
    let n = args.concurrency;
    println!(
        "{cpus} CPUs, {profile} build; moto at {}; {} shops, installation store {store}; {} samples of {n} concurrent deliveries per round\n",
        std::env::var("AWS_ENDPOINT_URL").unwrap_or_default(),
        args.shops,
        samples.len(),
    );
    println!(
        "One delivery alone to the warm instance (GetItem, PutEvents, UpdateItem), {} samples — p50 / p99 / max: {} / {} / {}\n",
        solo.len(),
        millis(solo.percentile(50.0)),
        millis(solo.percentile(99.0)),
        millis(solo.max()),
    );
    type Pick = fn(&Sample) -> &Round;
    let rounds: [(&str, Pick); 3] = [
        ("New notifications, warm instance", |s| &s.new),
        ("The same again (duplicates)", |s| &s.duplicates),
        ("New notifications, cold instance (empty key cache)", |s| {
            &s.cold
        }),
    ];
    println!(
        "| Round ({n} deliveries at once, each timed `handle` in → response) | p50 | p99 | max | mean | wall (first in → last out) | answers | `Shoptet Webhook` events at the queue | AWS requests |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (what, pick) in rounds {
        for (i, sample) in samples.iter().enumerate() {
            let round = pick(sample);
            let l = &round.latencies;
            println!(
                "| {what}, sample {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                i + 1,
                millis(l.percentile(50.0)),
                millis(l.percentile(99.0)),
                millis(l.max()),
                millis(l.mean()),
                millis(round.wall),
                round.answers_word(),
                round.events,
                requests_word(&round.requests),
            );
        }
        let all = Samples::new(
            samples
                .iter()
                .flat_map(|s| pick(s).latencies.iter().copied())
                .collect(),
        );
        let walls = Samples::new(samples.iter().map(|s| pick(s).wall).collect());
        println!(
            "| **{what}, all {} requests** | **{}** | **{}** | **{}** | {} | {} (median) | | | |",
            all.len(),
            millis(all.percentile(50.0)),
            millis(all.percentile(99.0)),
            millis(all.max()),
            millis(all.mean()),
            millis(walls.percentile(50.0)),
        );
    }
}

/// `GetItem(tokens) 200, …`, in a table cell.
fn requests_word(requests: &RequestCounts) -> String {
    if requests.0.is_empty() {
        return "none".into();
    }
    requests
        .0
        .iter()
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_words(words: &[&str]) -> Result<Args, String> {
        parse(&words.iter().map(|w| w.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn defaults_and_options() {
        assert_eq!(parse_words(&[]), Ok(Args::default()));
        assert_eq!(
            parse_words(&[
                "--samples",
                "2",
                "--concurrency=50",
                "--shops",
                "5",
                "--store",
                "DynamoDB"
            ]),
            Ok(Args {
                samples: 2,
                concurrency: 50,
                shops: 5,
                dynamo_installations: true,
            })
        );
        assert!(parse_words(&["--samples", "0"]).is_err());
        assert!(parse_words(&["--store", "S3"]).is_err());
        assert!(parse_words(&["--rounds", "1"]).is_err());
    }

    #[test]
    fn notifications_are_distinct_and_signed_with_their_shops_key() {
        let mut shops = Shops {
            keys: vec![
                (1, EshopSignatureKey::new("a".to_owned())),
                (2, EshopSignatureKey::new("b".to_owned())),
            ],
            next_instance: 0,
        };
        let first = shops.notifications(3);
        let second = shops.notifications(3);
        let bodies: BTreeSet<_> = first.iter().chain(&second).map(|d| &d.body).collect();
        assert_eq!(bodies.len(), 6);
        assert_eq!(first[2].eshop_id, 1);
        let (_, key) = &shops.keys[1];
        assert_eq!(first[1].signature, sign(key, first[1].body.as_bytes()));
    }
}
