//! What the consumer client saves, measured against the real broker and
//! the platform double (the tests' fixture, `tests/common`):
//!
//! ```text
//! cargo bench -p shop-token-client --bench consumer
//! ```
//!
//! 1. A cached `token()` hit, in nanoseconds.
//! 2. One consumer making 10 000 API calls spread evenly over 30 simulated
//!    minutes through `ApiClient`: how many vends reach the broker, how many
//!    mints reach the platform. Time is compressed 30×: every duration of
//!    the run (the token lifetime, both refresh margins, the timeline, the
//!    double's bucket drain rate) is divided by 30, so the run takes 60 s.
//!
//! Prints Markdown rows for BENCHMARKS.md. Not part of the tests.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ESHOP, LocalBroker, Setup, eshop};
use platform_double::{DoubleConfig, Endpoint};
use shop_token_client::{ApiClient, TokenClient};
use tokio::task::JoinSet;

const HIT_BATCHES: usize = 1_000;
const HIT_BATCH: usize = 1_000;
/// The simulated run: 10 000 API calls over 30 minutes, compressed 30×.
const API_CALLS: u32 = 10_000;
const SIMULATED: Duration = Duration::from_secs(30 * 60);
const COMPRESSION: u32 = 30;
/// Shoptet's values, as the run scales them.
const TOKEN_LIFETIME: Duration = Duration::from_secs(1800);
const BROKER_MARGIN_SECONDS: u64 = 300;
const CLIENT_MARGIN: Duration = shop_token_client::DEFAULT_REFRESH_MARGIN;
const BUCKET_DRAIN_PER_SECOND: u32 = 10;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        println!("| Measurement | Result |\n| --- | --- |");
        cached_hit().await;
        simulated_half_hour().await;
    });
}

async fn cached_hit() {
    let broker = LocalBroker::start(Setup::default()).await;
    broker.install(ESHOP).await;
    let transport = broker.transport();
    let client = TokenClient::new(Arc::clone(&transport));
    let shop = eshop();
    client.token(&shop).await.unwrap();

    let mut batches = Vec::with_capacity(HIT_BATCHES);
    let started = Instant::now();
    for _ in 0..HIT_BATCHES {
        let batch = Instant::now();
        for _ in 0..HIT_BATCH {
            std::hint::black_box(client.token(std::hint::black_box(&shop)).await.unwrap());
        }
        batches.push(batch.elapsed().as_nanos() as f64 / HIT_BATCH as f64);
    }
    let mean = started.elapsed().as_nanos() as f64 / (HIT_BATCHES * HIT_BATCH) as f64;
    assert_eq!(transport.vends(), 1, "every call after the first is a hit");
    batches.sort_by(f64::total_cmp);
    let at = |q: f64| batches[((batches.len() - 1) as f64 * q) as usize];
    println!(
        "| Cached `token()` hit, {} calls on one task (batches of {HIT_BATCH}) — mean / p50 / p99 of the batch means | {mean:.0} ns / {:.0} ns / {:.0} ns |",
        HIT_BATCHES * HIT_BATCH,
        at(0.5),
        at(0.99)
    );
}

async fn simulated_half_hour() {
    let scaled = |duration: Duration| duration / COMPRESSION;
    let broker = LocalBroker::start(Setup {
        token_lifetime: scaled(TOKEN_LIFETIME),
        broker_margin_seconds: BROKER_MARGIN_SECONDS / u64::from(COMPRESSION),
        double: DoubleConfig {
            shoptet_bucket_drain_per_second: BUCKET_DRAIN_PER_SECOND * COMPRESSION,
            ..DoubleConfig::default()
        },
        ..Setup::default()
    })
    .await;
    broker.install(ESHOP).await;
    let transport = broker.transport();
    let tokens = TokenClient::builder(Arc::clone(&transport))
        .refresh_margin(scaled(CLIENT_MARGIN))
        .build();
    let api = ApiClient::new(tokens);

    let run = scaled(SIMULATED);
    let every = run / API_CALLS;
    let started = tokio::time::Instant::now();
    let mut calls = JoinSet::new();
    for i in 0..API_CALLS {
        tokio::time::sleep_until(started + every * i).await;
        let api = api.clone();
        calls.spawn(async move { api.get(&eshop(), "/eshop").await });
    }
    let mut ok = 0;
    while let Some(result) = calls.join_next().await {
        if result
            .unwrap()
            .is_ok_and(|response| response.status().is_success())
        {
            ok += 1;
        }
    }
    let wall = started.elapsed();
    let double = &broker.double;
    println!(
        "| One consumer, {API_CALLS} API calls (`ApiClient::get`) evenly over 30 simulated minutes (Shoptet token lifetime 30 min, broker margin 5 min, client margin 60 s; run compressed {COMPRESSION}×: {:.1} s): **vendor calls** | **{}** ({} stale reports) |",
        wall.as_secs_f64(),
        transport.vends(),
        transport.stale_reports()
    );
    println!(
        "| … upstream mints (`getAccessToken` at the double) / API calls at the double / calls answered 2xx | {} / {} / {ok} |",
        double.calls(Endpoint::ShoptetGetAccessToken, &ESHOP.to_string()),
        double.calls(Endpoint::ShoptetApi, &ESHOP.to_string()),
    );
}
