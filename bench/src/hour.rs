//! The fleet hour: 10 000 installed shops, vends drawn from a Zipf
//! distribution over them, spread over 8 worker processes (one vendor
//! instance each, one request at a time, as a Lambda instance serves), for a
//! simulated hour on a compressed clock. Afterwards one instance vends every
//! shop once more (and shops never installed), for its memory.
//!
//! The clock is compressed by scaling what the vendor's behaviour depends
//! on: the double's token lifetime (1800 s / K), the refresh margin (300 s /
//! K) and the L1 trust (30 s / K), while vends arrive K times faster. The
//! lease and the network are not scaled: they are real time in both.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use broker_aws::storage::dynamodb::PARTITION_KEY;
use broker_domain::http::HttpError;
use broker_runtime::metrics::{Metrics, Service};
use broker_vending::Source;
use platform_double::{DoubleConfig, Endpoint};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStdin, Command};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::Error;
use crate::fleet::{DynamoInstallations, Fleet, Target, request, shoptet};
use crate::stats::{Samples, millis};
use test_support::request_counting::{RequestCounts, counting};

/// The flag that turns the binary into a worker of the fleet hour.
pub const WORKER_FLAG: &str = "--fleet-worker";

/// The simulated span.
const HOUR: Duration = Duration::from_secs(3600);
/// Shoptet's token lifetime, refresh margin and L1 trust, unscaled.
const LIFETIME: Duration = Duration::from_secs(1800);
const MARGIN: Duration = Duration::from_secs(300);
const L1_TRUST: Duration = broker_vending::L1_TRUST;
/// eshopIds of the fleet: FIRST_SHOP + rank (1 = the most vended).
const FIRST_SHOP: u64 = 1_000_000;
/// eshopIds of shops nobody installed (the memory sweep's second part).
const FIRST_UNKNOWN_SHOP: u64 = 2_000_000;
/// Installs in flight at once.
const INSTALL_CONCURRENCY: usize = 16;

#[derive(Debug, Clone, PartialEq)]
pub struct HourArgs {
    pub shops: u64,
    pub vends: usize,
    pub workers: usize,
    /// K: simulated seconds per real second.
    pub compress: u32,
    /// The Zipf exponent s: rank r is vended ∝ 1 / r^s.
    pub zipf: f64,
    pub dynamo_installations: bool,
    /// Shops never installed, vended after the fleet by the memory sweep.
    pub unknown_shops: u64,
    /// A raw GetItem after every N-th vend, timed beside it.
    pub raw_every: usize,
    pub seed: u64,
}

impl Default for HourArgs {
    fn default() -> Self {
        Self {
            shops: 10_000,
            vends: 30_000,
            workers: 8,
            compress: 6,
            zipf: 1.0,
            dynamo_installations: false,
            unknown_shops: 2_000,
            raw_every: 10,
            seed: 13,
        }
    }
}

impl HourArgs {
    fn scaled(&self, duration: Duration) -> Duration {
        duration / self.compress
    }
}

pub const USAGE: &str = "usage: broker-bench fleet [--shops N] [--vends N] [--workers N] \
[--compress K] [--zipf S] [--store SecretsManager|DynamoDB] [--unknown-shops N] [--raw-every N] [--seed N]";

/// `broker-bench fleet …`'s options.
pub fn parse(args: &[String]) -> Result<HourArgs, String> {
    let mut hour = HourArgs::default();
    for (name, value) in crate::options::named_values(args)? {
        let positive = |value: &str| crate::options::positive(&name, value);
        match name.as_str() {
            "shops" => hour.shops = positive(&value)?,
            "vends" => hour.vends = positive(&value)? as usize,
            "workers" => hour.workers = positive(&value)? as usize,
            "compress" => {
                hour.compress = positive(&value)?
                    .try_into()
                    .ok()
                    .filter(|k| 1800 % k == 0)
                    .ok_or("--compress must divide 1800 (whole-second token lifetimes)")?
            }
            "zipf" => {
                hour.zipf = value
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                    .ok_or("--zipf must be a number ≥ 0")?
            }
            "store" => hour.dynamo_installations = crate::options::dynamo_installations(&value)?,
            "unknown-shops" => hour.unknown_shops = value.parse().map_err(|_| "--unknown-shops")?,
            "raw-every" => hour.raw_every = positive(&value)? as usize,
            "seed" => hour.seed = value.parse().map_err(|_| "--seed must be a number")?,
            _ => return Err(format!("unknown option --{name}")),
        }
    }
    Ok(hour)
}

// ---------------------------------------------------------------------------
// The schedule

/// One vend: when (simulated milliseconds from the start) and for which shop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Event {
    at_ms: u64,
    eshop_id: u64,
}

/// Each worker's events, in time order.
fn schedule(args: &HourArgs) -> Vec<Vec<Event>> {
    // Seeded: a run can be repeated exactly.
    let mut rng = fastrand::Rng::with_seed(args.seed);
    // Cumulative weights of ranks 1..=shops; a draw is a binary search.
    let mut cumulative = Vec::with_capacity(args.shops as usize);
    let mut sum = 0.0;
    for rank in 1..=args.shops {
        sum += (rank as f64).powf(-args.zipf);
        cumulative.push(sum);
    }
    let mut workers = vec![Vec::new(); args.workers];
    let hour_ms = HOUR.as_millis() as f64;
    for _ in 0..args.vends {
        let at_ms = (rng.f64() * hour_ms) as u64;
        let draw = rng.f64() * sum;
        let rank = cumulative.partition_point(|&c| c <= draw) as u64 + 1;
        // Lambda routes each request to any instance.
        let worker = rng.usize(..args.workers);
        workers[worker].push(Event {
            at_ms,
            eshop_id: FIRST_SHOP + rank.min(args.shops),
        });
    }
    for events in &mut workers {
        events.sort_unstable();
    }
    workers
}

// ---------------------------------------------------------------------------
// The parent

/// What one vend of the hour reported.
struct VendLine {
    eshop_id: u64,
    /// `l1`, `l2`, `minted`, or `error:<code>`.
    outcome: String,
    took: Duration,
    /// Simulated time when the vend started.
    at_ms: u64,
    requests: RequestCounts,
}

#[derive(Default)]
struct WorkerReport {
    vends: Vec<VendLine>,
    raw_get_items: Vec<Duration>,
    /// Bytes of EMF metric lines the instance wrote in the hour.
    metric_bytes: u64,
    /// `(phase, shops served so far, RSS in KiB, shops remembered)`.
    memory: Vec<(String, u64, u64, usize)>,
}

pub async fn run(args: HourArgs) -> Result<(), Error> {
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; latencies are meaningful only with --release");
    }
    let lifetime = args.scaled(LIFETIME);
    let fleet = Fleet::start_with(
        DoubleConfig {
            api_token_lifetime: lifetime,
            ..DoubleConfig::default()
        },
        args.dynamo_installations,
    )
    .await?;
    let fleet = Arc::new(fleet);

    crate::report::progress(&format!("installing {} shops", args.shops));
    let started = Instant::now();
    install_all(&fleet, args.shops).await?;
    let install_time = started.elapsed();

    let dir =
        PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".to_owned()))
            .join("fleet-bench");
    std::fs::create_dir_all(&dir)?;
    let schedules = schedule(&args);
    let mut workers = Vec::with_capacity(args.workers);
    for (index, events) in schedules.iter().enumerate() {
        let path = dir.join(format!("worker-{index}.txt"));
        write_schedule(&path, events)?;
        workers.push(spawn_worker(&fleet.target, &args, &path, index == 0)?);
    }
    for worker in &mut workers {
        expect_line(worker, "ready").await?;
    }
    crate::report::progress(&format!(
        "the hour: {} vends over {} workers, {} real seconds (clock ×{})",
        args.vends,
        args.workers,
        args.scaled(HOUR).as_secs(),
        args.compress
    ));
    let hour_started = Instant::now();
    for worker in &mut workers {
        say_to(&mut worker.stdin, "go").await?;
    }
    let mut reports = Vec::with_capacity(workers.len());
    for worker in &mut workers {
        reports.push(read_report(worker, "hour-done").await?);
    }
    let hour_took = hour_started.elapsed();
    let mints_in_hour: HashMap<u64, u64> = (1..=args.shops)
        .map(|rank| {
            let eshop_id = FIRST_SHOP + rank;
            (eshop_id, fleet.mints(eshop_id))
        })
        .collect();
    let total_calls_hour = fleet.double.calls_to(Endpoint::ShoptetGetAccessToken);

    crate::report::progress(&format!(
        "memory sweep: worker 0 vends all {} shops, then {} never installed",
        args.shops, args.unknown_shops
    ));
    let (sweeper, others) = workers.split_first_mut().ok_or("no workers")?;
    for worker in others {
        say_to(&mut worker.stdin, "exit").await?;
    }
    say_to(&mut sweeper.stdin, "sweep").await?;
    let sweep = read_report(sweeper, "done").await?;
    for worker in &mut workers {
        worker.child.wait().await?;
    }

    let report = Report::new(install_time, hour_took, reports, sweep, &mints_in_hour);
    report.print(&args, total_calls_hour);
    if report.early_mints > 0 {
        return Err(format!(
            "{} mints came while the shop's stored token still had its refresh margin",
            report.early_mints
        )
        .into());
    }
    Ok(())
}

async fn install_all(fleet: &Arc<Fleet>, shops: u64) -> Result<(), Error> {
    let permits = Arc::new(Semaphore::new(INSTALL_CONCURRENCY));
    let mut installs = JoinSet::new();
    for rank in 1..=shops {
        let (fleet, permits) = (fleet.clone(), permits.clone());
        installs.spawn(async move {
            let _permit = permits.acquire_owned().await?;
            fleet.install_shoptet(FIRST_SHOP + rank).await
        });
    }
    let mut done = 0u64;
    while let Some(result) = installs.join_next().await {
        result??;
        done += 1;
        if done.is_multiple_of(2_000) {
            crate::report::progress(&format!("{done} installed"));
        }
    }
    Ok(())
}

fn write_schedule(path: &Path, events: &[Event]) -> Result<(), Error> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    for event in events {
        writeln!(file, "{} {}", event.at_ms, event.eshop_id)?;
    }
    file.flush()?;
    Ok(())
}

struct Worker {
    child: tokio::process::Child,
    stdin: ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

fn spawn_worker(
    target: &Target,
    args: &HourArgs,
    schedule: &Path,
    sweeper: bool,
) -> Result<Worker, Error> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .arg(WORKER_FLAG)
        .arg(&target.double_url)
        .arg(&target.table)
        .arg(&target.token_key)
        .arg(&target.secret_prefix)
        .arg(schedule)
        .arg(args.compress.to_string())
        .arg(args.raw_every.to_string());
    let (shops, unknown) = if sweeper {
        (args.shops, args.unknown_shops)
    } else {
        (0, 0)
    };
    command.arg(shops.to_string()).arg(unknown.to_string());
    if let Some(installations) = &target.installations {
        command.arg(&installations.table).arg(&installations.key_id);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let stdin = child.stdin.take().ok_or("worker stdin")?;
    let stdout = child.stdout.take().ok_or("worker stdout")?;
    Ok(Worker {
        child,
        stdin,
        lines: BufReader::new(stdout).lines(),
    })
}

async fn say_to(stdin: &mut ChildStdin, line: &str) -> Result<(), Error> {
    stdin.write_all(format!("{line}\n").as_bytes()).await?;
    stdin.flush().await?;
    Ok(())
}

async fn expect_line(worker: &mut Worker, wanted: &str) -> Result<(), Error> {
    match worker.lines.next_line().await? {
        Some(line) if line == wanted => Ok(()),
        Some(line) => Err(format!("a worker said {line:?}, not {wanted:?}").into()),
        None => Err("a worker exited early".into()),
    }
}

async fn read_report(worker: &mut Worker, until: &str) -> Result<WorkerReport, Error> {
    let mut report = WorkerReport::default();
    loop {
        let line = worker
            .lines
            .next_line()
            .await?
            .ok_or("a worker exited early")?;
        if line == until {
            return Ok(report);
        }
        match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["v", shop, outcome, micros, at_ms, requests] => report.vends.push(VendLine {
                eshop_id: shop.parse()?,
                outcome: (*outcome).to_owned(),
                took: Duration::from_micros(micros.parse()?),
                at_ms: at_ms.parse()?,
                requests: RequestCounts::from_word(requests)?,
            }),
            ["metric-bytes", bytes] => report.metric_bytes += bytes.parse::<u64>()?,
            ["raw", micros] => report
                .raw_get_items
                .push(Duration::from_micros(micros.parse()?)),
            ["rss", phase, served, kib, remembered] => report.memory.push((
                (*phase).to_owned(),
                served.parse()?,
                kib.parse()?,
                remembered.parse()?,
            )),
            _ => return Err(format!("unexpected worker output {line:?}").into()),
        }
    }
}

// ---------------------------------------------------------------------------
// The report

struct Report {
    install_time: Duration,
    /// Real time from `go` to the last worker's last vend of the hour.
    hour_took: Duration,
    vends: usize,
    by_outcome: BTreeMap<String, usize>,
    /// Mean requests per vend, by outcome, then over all vends.
    requests: BTreeMap<String, RequestCounts>,
    all_requests: RequestCounts,
    latency: BTreeMap<String, Samples>,
    all_latency: Option<Samples>,
    raw_get_item: Option<Samples>,
    mints: u64,
    /// Mints a perfect cache would have made: a vend finding no token with
    /// its margin left.
    ideal_mints: u64,
    shops_vended: usize,
    shops_minted_more_than_ideal: usize,
    /// Mints while a token minted by the same shop's previous mint still had
    /// more than its margin of life (simulated time).
    early_mints: usize,
    shortest_gap: Option<Duration>,
    most_mints_of_a_shop: u64,
    memory: Vec<(String, u64, u64, usize)>,
    metric_bytes: u64,
}

impl Report {
    fn new(
        install_time: Duration,
        hour_took: Duration,
        workers: Vec<WorkerReport>,
        sweep: WorkerReport,
        mints_in_hour: &HashMap<u64, u64>,
    ) -> Self {
        let vends: Vec<&VendLine> = workers.iter().flat_map(|w| &w.vends).collect();
        let mut by_outcome = BTreeMap::<String, usize>::new();
        let mut sums = BTreeMap::<String, RequestCounts>::new();
        let mut all_sum = RequestCounts::default();
        let mut latencies = BTreeMap::<String, Vec<Duration>>::new();
        for vend in &vends {
            *by_outcome.entry(vend.outcome.clone()).or_default() += 1;
            sums.entry(vend.outcome.clone())
                .or_default()
                .add(&vend.requests);
            all_sum.add(&vend.requests);
            latencies
                .entry(vend.outcome.clone())
                .or_default()
                .push(vend.took);
        }
        let mean = |sum: &RequestCounts, n: usize| {
            // Kept in thousandths so that means print with decimals.
            RequestCounts(
                sum.0
                    .iter()
                    .map(|(k, v)| (k.clone(), v * 1000 / n.max(1) as u64))
                    .collect(),
            )
        };
        let requests = sums
            .iter()
            .map(|(outcome, sum)| (outcome.clone(), mean(sum, by_outcome[outcome])))
            .collect();

        // Replay each shop's vends in simulated time against a perfect
        // cache, and check the gaps between its real mints.
        let usable = (LIFETIME - MARGIN).as_millis() as u64;
        let mut per_shop = BTreeMap::<u64, Vec<&VendLine>>::new();
        for &vend in &vends {
            per_shop.entry(vend.eshop_id).or_default().push(vend);
        }
        let (mut ideal_mints, mut above_ideal, mut early, mut shortest) = (0, 0, 0, None);
        for (shop, lines) in &mut per_shop {
            lines.sort_by_key(|l| l.at_ms);
            let mut good_until = None;
            let mut ideal = 0;
            for line in lines.iter() {
                if good_until.is_none_or(|until| line.at_ms >= until) {
                    ideal += 1;
                    good_until = Some(line.at_ms + usable);
                }
            }
            ideal_mints += ideal;
            if mints_in_hour.get(shop).copied().unwrap_or(0) > ideal {
                above_ideal += 1;
            }
            let minted: Vec<u64> = lines
                .iter()
                .filter(|l| l.outcome == Source::Minted.as_str())
                .map(|l| l.at_ms)
                .collect();
            for pair in minted.windows(2) {
                let gap = Duration::from_millis(pair[1] - pair[0]);
                shortest = Some(shortest.map_or(gap, |s: Duration| s.min(gap)));
                // A vend arriving after the refresh point mints a little
                // late, never early; 1 % of the window absorbs clock jitter.
                if gap.as_millis() < (usable as u128) * 99 / 100 {
                    early += 1;
                }
            }
        }
        let mut memory: Vec<_> = workers.iter().flat_map(|w| w.memory.clone()).collect();
        memory.extend(sweep.memory);
        let latency = latencies
            .into_iter()
            .map(|(k, v)| (k, Samples::new(v)))
            .collect();
        let all: Vec<Duration> = vends.iter().map(|v| v.took).collect();
        let raw: Vec<Duration> = workers
            .iter()
            .flat_map(|w| w.raw_get_items.iter().copied())
            .collect();
        Self {
            install_time,
            hour_took,
            vends: vends.len(),
            requests,
            all_requests: mean(&all_sum, vends.len()),
            by_outcome,
            latency,
            all_latency: (!all.is_empty()).then(|| Samples::new(all)),
            raw_get_item: (!raw.is_empty()).then(|| Samples::new(raw)),
            mints: mints_in_hour.values().sum(),
            ideal_mints,
            shops_vended: per_shop.len(),
            shops_minted_more_than_ideal: above_ideal,
            early_mints: early,
            shortest_gap: shortest,
            most_mints_of_a_shop: mints_in_hour.values().copied().max().unwrap_or(0),
            memory,
            metric_bytes: workers.iter().map(|w| w.metric_bytes).sum(),
        }
    }

    fn print(&self, args: &HourArgs, total_calls: u64) {
        let store = if args.dynamo_installations {
            "DynamoDB (envelope-encrypted)"
        } else {
            "Secrets Manager"
        };
        println!(
            "\n## Fleet hour: {} shops, {} vends, {} workers, Zipf s = {}, clock ×{}, installations in {store}\n",
            args.shops, args.vends, args.workers, args.zipf, args.compress
        );
        println!("| Measurement | Result |");
        println!("| --- | --- |");
        println!(
            "| Installs ({} shops, {INSTALL_CONCURRENCY} at a time) | {:.1} s |",
            args.shops,
            self.install_time.as_secs_f64()
        );
        println!(
            "| The simulated hour in real time (scheduled: {} s) | {:.0} s (vends start late when moto falls behind; each is timed and placed on the clock when it starts) |",
            args.scaled(HOUR).as_secs(),
            self.hour_took.as_secs_f64()
        );
        let outcomes: Vec<_> = self
            .by_outcome
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        println!(
            "| Vends (simulated hour) by source | {} of {} ({} shops vended) |",
            outcomes.join(", "),
            self.vends,
            self.shops_vended
        );
        println!(
            "| **Mints** (the double's `getAccessToken` calls in the hour) / a perfect shared cache's (a mint whenever no token with 5 min of life exists) | **{} / {}** ({} shops above it; double total {total_calls}; 0 stale reports) |",
            self.mints, self.ideal_mints, self.shops_minted_more_than_ideal
        );
        println!(
            "| Mints per shop per refresh window (25 simulated min): mints closer than that to the shop's previous one | **{}** (shortest gap {}, most mints of one shop in the hour {}) |",
            self.early_mints,
            self.shortest_gap.map_or("—".into(), |g| format!(
                "{:.1} min",
                g.as_secs_f64() / 60.0
            )),
            self.most_mints_of_a_shop
        );
        println!(
            "| Store requests per vend, all vends (mean) | {} = {} |",
            per_mille(&self.all_requests),
            self.all_requests.total() as f64 / 1000.0
        );
        for (outcome, counts) in &self.requests {
            println!(
                "| … per `{outcome}` vend (mean) | {} = {} |",
                per_mille(counts),
                counts.total() as f64 / 1000.0
            );
        }
        if let Some(all) = &self.all_latency {
            println!(
                "| Vend latency, all vends — p50 / p99 | {} / {} |",
                millis(all.percentile(50.0)),
                millis(all.percentile(99.0))
            );
        }
        for (outcome, samples) in &self.latency {
            println!(
                "| … `{outcome}` ({} vends) — p50 / p99 | {} / {} |",
                samples.len(),
                millis(samples.percentile(50.0)),
                millis(samples.percentile(99.0))
            );
        }
        if let Some(raw) = &self.raw_get_item {
            println!(
                "| Raw consistent GetItem of a token item, same run, after every {}th vend ({}) — p50 / p99 | {} / {} |",
                args.raw_every,
                raw.len(),
                millis(raw.percentile(50.0)),
                millis(raw.percentile(99.0))
            );
        }
        println!(
            "| CloudWatch Logs: EMF metric lines of all instances in the hour ({} real minutes × {} instances) | {} bytes ({:.0} bytes per instance per real minute) |",
            args.scaled(HOUR).as_secs_f64() / 60.0,
            args.workers,
            self.metric_bytes,
            self.metric_bytes as f64
                / (args.scaled(HOUR).as_secs_f64() / 60.0)
                / args.workers as f64
        );
        let after_hour: Vec<_> = self
            .memory
            .iter()
            .filter(|(_, served, ..)| *served == 0)
            .collect();
        if !after_hour.is_empty() {
            let kib = after_hour.iter().map(|(_, _, kib, _)| *kib);
            let remembered = after_hour.iter().map(|(.., n)| *n);
            println!(
                "| RSS of each instance after the hour (min – max) | {:.1} – {:.1} MiB ({} – {} shops remembered) |",
                kib.clone().min().unwrap_or(0) as f64 / 1024.0,
                kib.max().unwrap_or(0) as f64 / 1024.0,
                remembered.clone().min().unwrap_or(0),
                remembered.max().unwrap_or(0)
            );
        }
        for (phase, served, kib, remembered) in self.memory.iter().filter(|(_, s, ..)| *s > 0) {
            println!(
                "| RSS of worker 0, {} (after {served} vends of the sweep) | {:.1} MiB ({remembered} shops remembered) |",
                phase.replace('-', " "),
                *kib as f64 / 1024.0
            );
        }
    }
}

/// Means kept in thousandths, printed with three decimals.
fn per_mille(counts: &RequestCounts) -> String {
    if counts.0.is_empty() {
        return "none".into();
    }
    counts
        .0
        .iter()
        .map(|(k, v)| format!("{:.3} {k}", *v as f64 / 1000.0))
        .collect::<Vec<_>>()
        .join(" + ")
}

// ---------------------------------------------------------------------------
// A worker

/// A worker's positional arguments, as [`spawn_worker`] passes them.
pub struct WorkerArgs {
    target: Target,
    schedule: PathBuf,
    compress: u32,
    raw_every: usize,
    sweep_shops: u64,
    unknown_shops: u64,
}

pub fn parse_worker(args: &[String]) -> Result<WorkerArgs, String> {
    let number = |i: usize| -> Result<u64, String> {
        args.get(i)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("fleet worker: argument {i} is not a number"))
    };
    if args.len() != 9 && args.len() != 11 {
        return Err("fleet worker: 9 or 11 arguments".into());
    }
    Ok(WorkerArgs {
        target: Target {
            double_url: args[0].clone(),
            table: args[1].clone(),
            token_key: args[2].clone(),
            secret_prefix: args[3].clone(),
            installations: (args.len() == 11).then(|| DynamoInstallations {
                table: args[9].clone(),
                key_id: args[10].clone(),
            }),
        },
        schedule: PathBuf::from(&args[4]),
        compress: number(5)? as u32,
        raw_every: number(6)? as usize,
        sweep_shops: number(7)?,
        unknown_shops: number(8)?,
    })
}

fn say(line: &str) -> Result<(), Error> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()?;
    Ok(())
}

/// A writer that only counts what it is given.
#[derive(Clone, Default)]
struct CountedBytes(Arc<std::sync::atomic::AtomicU64>);

impl CountedBytes {
    fn get(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Write for CountedBytes {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .fetch_add(buf.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

pub async fn worker(args: WorkerArgs) -> Result<(), Error> {
    let events: Vec<Event> = std::fs::read_to_string(&args.schedule)?
        .lines()
        .map(|line| {
            let (at, shop) = line.split_once(' ').ok_or("bad schedule line")?;
            Ok(Event {
                at_ms: at.parse()?,
                eshop_id: shop.parse()?,
            })
        })
        .collect::<Result<_, Error>>()?;
    let base = test_support::emulator_sdk_config().await;
    let (aws, counter) = counting(
        &base,
        broker_aws::sdk_http::http_client(),
        args.target.table_roles(),
    );
    let mut config = args.target.config()?;
    config.vendor.timing.refresh_margin = MARGIN / args.compress;
    config.vendor.timing.l1_trust = L1_TRUST / args.compress;
    // The EMF lines Lambda would put in CloudWatch Logs: counted, not
    // printed (stdout is the worker's protocol).
    let metric_bytes = CountedBytes::default();
    let metrics = Metrics::new(Service::TokenVendor, "FleetBench", metric_bytes.clone());
    let handler = token_vendor::build_on_aws(config, &aws).with_metrics(Arc::new(metrics));
    let raw = aws_sdk_dynamodb::Client::new(&base);
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    say("ready")?;
    if stdin.next_line().await?.as_deref() != Some("go") {
        return Err("expected go".into());
    }

    let start = Instant::now();
    let compress = args.compress;
    for (index, event) in events.iter().enumerate() {
        let due = start + Duration::from_millis(event.at_ms) / compress;
        tokio::time::sleep_until(due.into()).await;
        let at_ms = (start.elapsed() * compress).as_millis() as u64;
        let before = counter.snapshot();
        let began = Instant::now();
        let outcome = match handler
            .vendor()
            .vend(&request(&shoptet(event.eshop_id)))
            .await
        {
            Ok(vended) => vended.source.as_str().to_owned(),
            Err(error) => format!("error:{}", error.code()),
        };
        let took = began.elapsed();
        let requests = counter.snapshot().since(&before);
        say(&format!(
            "v {} {outcome} {} {at_ms} {}",
            event.eshop_id,
            took.as_micros(),
            requests.to_word()
        ))?;
        if (index + 1) % args.raw_every == 0 {
            let began = Instant::now();
            raw.get_item()
                .table_name(&args.target.table)
                .key(
                    PARTITION_KEY,
                    AttributeValue::S(shoptet(event.eshop_id).key()),
                )
                .consistent_read(true)
                .send()
                .await?;
            say(&format!("raw {}", began.elapsed().as_micros()))?;
        }
    }
    handler.metrics().flush();
    say(&format!("metric-bytes {}", metric_bytes.get()))?;
    say(&format!(
        "rss after-the-hour 0 {} {}",
        rss_kib(),
        handler.vendor().remembered_shops()
    ))?;
    say("hour-done")?;
    match stdin.next_line().await?.as_deref() {
        Some("sweep") => {}
        _ => return Ok(()),
    }
    let shops = (1..=args.sweep_shops)
        .map(|rank| FIRST_SHOP + rank)
        .chain((1..=args.unknown_shops).map(|n| FIRST_UNKNOWN_SHOP + n));
    let mut errors = BTreeMap::<&'static str, u64>::new();
    for (served, eshop_id) in shops.enumerate() {
        let served = served as u64 + 1;
        if let Err(error) = handler.vendor().vend(&request(&shoptet(eshop_id))).await {
            *errors.entry(error.code().as_str()).or_default() += 1;
        }
        if served.is_multiple_of(2_500) || served == args.sweep_shops + args.unknown_shops {
            let phase = if served <= args.sweep_shops {
                "sweeping-installed-shops"
            } else {
                "sweeping-unknown-shops"
            };
            say(&format!(
                "rss {phase} {served} {} {}",
                rss_kib(),
                handler.vendor().remembered_shops()
            ))?;
        }
    }
    for (code, n) in errors {
        eprintln!("memory sweep: {n} vends answered {code}");
    }
    say("done")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_skewed_deterministic_and_sorted() {
        let args = HourArgs {
            shops: 1_000,
            vends: 20_000,
            ..HourArgs::default()
        };
        let first = schedule(&args);
        assert_eq!(first, schedule(&args));
        assert_eq!(first.len(), 8);
        assert_eq!(first.iter().map(Vec::len).sum::<usize>(), 20_000);
        let mut per_shop = BTreeMap::<u64, usize>::new();
        for events in &first {
            assert!(events.windows(2).all(|w| w[0] <= w[1]));
            for event in events {
                assert!(event.at_ms < HOUR.as_millis() as u64);
                *per_shop.entry(event.eshop_id).or_default() += 1;
            }
        }
        // s = 1: rank 1 draws about 10× rank 10 and 100× rank 100.
        let top = per_shop[&(FIRST_SHOP + 1)] as f64;
        let tenth = per_shop[&(FIRST_SHOP + 10)] as f64;
        assert!((5.0..20.0).contains(&(top / tenth)), "{top} / {tenth}");
        assert!(
            per_shop
                .keys()
                .all(|s| (FIRST_SHOP + 1..=FIRST_SHOP + 1_000).contains(s))
        );
    }

    #[test]
    fn options_parse_and_problems_are_named() {
        let parsed = parse(&["--shops=500".into(), "--store".into(), "DynamoDB".into()]).unwrap();
        assert_eq!(parsed.shops, 500);
        assert!(parsed.dynamo_installations);
        assert_eq!(
            parse(&["--compress".into(), "7".into()]),
            Err("--compress must divide 1800 (whole-second token lifetimes)".into())
        );
        assert_eq!(
            parse(&["--store".into(), "S3".into()]),
            Err("--store is SecretsManager or DynamoDB".into())
        );
    }
}
