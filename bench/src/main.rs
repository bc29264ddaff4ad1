//! Benchmarks of the token vendor against moto and an in-process platform
//! double; prints a Markdown table. Run it with `scripts/bench.sh`, which
//! starts moto and builds in release mode. Not part of the tests.
//!
//!   broker-bench [--rounds N] [--process-rounds N] [--l1-iterations N] [--l2-samples N]
//!
//!   broker-bench fleet [--shops N] [--vends N] [--workers N] [--compress K] [--store S] …
//!
//!   broker-bench counts [--json FILE]
//!
//!   broker-bench events [--samples N]
//!
//!   broker-bench eshop-webhooks [--samples N] [--concurrency N] [--shops N] [--store S]
//!
//! `counts` counts the AWS requests of each operation on both installation
//! stores (`counts.rs`); `fleet` runs the fleet hour instead (see `hour.rs`). With `--storm-worker`
//! or `--fleet-worker` the binary is one worker process of a storm or of the
//! fleet hour (the benchmark starts those itself).

mod counts;
mod error;
mod eshop_webhooks;
mod events;
mod fleet;
mod hour;
mod latency;
mod options;
mod report;
mod stats;
mod storm;

use std::process::ExitCode;

use broker_runtime::logging;

use fleet::{Fleet, Target, request, shoptet};
use latency::{L2Latencies, ratio};
use stats::{Samples, micros, millis};
use storm::{CONCURRENT_READS, StormFloor, StormOutcome, WORKER_FLAG, WorkerArgs};

pub use error::Error;
use report::progress;

/// The storm's shape, as the issue asks: 256 vends over 8 instances.
const INSTANCES: usize = 8;
const CALLERS: usize = 256;

/// Solo mints (and GetItems) timed for the storm's floor.
const FLOOR_SAMPLES: usize = 10;

/// The issue's goal for the multi-process storm: wall ≤ 1.5 × (mint + GetItem).
const STORM_GOAL: f64 = 1.5;

struct BenchArgs {
    rounds: usize,
    process_rounds: usize,
    l1_iterations: usize,
    l2_samples: usize,
}

enum Mode {
    Bench(BenchArgs),
    Worker(WorkerArgs),
}

const USAGE: &str =
    "usage: broker-bench [--rounds N] [--process-rounds N] [--l1-iterations N] [--l2-samples N]
       broker-bench fleet [--shops N] [--vends N] [--workers N] [--compress K] [--store S] …
       broker-bench counts [--json FILE]
       broker-bench events [--samples N]
       broker-bench eshop-webhooks [--samples N] [--concurrency N] [--shops N] [--store S]
needs moto: run scripts/bench.sh, or export what scripts/emulator.sh prints";

const COUNTS_USAGE: &str = "usage: broker-bench counts [--json FILE]";

/// The options of each mode; every one takes a value.
const BENCH_OPTIONS: &[&str] = &["rounds", "process-rounds", "l1-iterations", "l2-samples"];
const WORKER_OPTIONS: &[&str] = &[
    "double-url",
    "table",
    "token-key",
    "secret-prefix",
    "shop",
    "callers",
];

fn parse_args(args: &[String]) -> Result<Mode, String> {
    use lexopt::Arg::{Long, Short, Value};

    let worker = args.first().is_some_and(|a| a == WORKER_FLAG);
    let (options, known) = if worker {
        (&args[1..], WORKER_OPTIONS)
    } else {
        (args, BENCH_OPTIONS)
    };
    let mut values = std::collections::HashMap::new();
    let mut parser = lexopt::Parser::from_args(options);
    while let Some(arg) = parser.next().map_err(|error| error.to_string())? {
        match arg {
            Long(name) if known.contains(&name) => {
                let name = name.to_owned();
                let value = parser
                    .value()
                    .map_err(|_| format!("--{name} needs a value"))?
                    .into_string()
                    .map_err(|value| format!("--{name}: {value:?} is not text"))?;
                values.insert(name, value);
            }
            Long(name) => return Err(format!("unknown option --{name}")),
            Short(name) => return Err(format!("unknown option -{name}")),
            Value(value) => return Err(format!("unexpected argument {value:?}")),
        }
    }
    let mut take = |name: &str| values.remove(name);
    let number = |value: Option<String>, default: usize| -> Result<usize, String> {
        value.map_or(Ok(default), |v| {
            v.parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{v:?} is not a positive number"))
        })
    };
    Ok(if worker {
        let mut required = |name: &str| take(name).ok_or_else(|| format!("--{name} is required"));
        Mode::Worker(WorkerArgs {
            target: Target {
                double_url: required("double-url")?,
                table: required("table")?,
                token_key: required("token-key")?,
                secret_prefix: required("secret-prefix")?,
                installations: None,
            },
            eshop_id: required("shop")?
                .parse()
                .map_err(|_| "--shop must be an eshopId")?,
            callers: number(take("callers"), CALLERS / INSTANCES)?,
        })
    } else {
        Mode::Bench(BenchArgs {
            rounds: number(take("rounds"), 5)?,
            process_rounds: number(take("process-rounds"), 5)?,
            l1_iterations: number(take("l1-iterations"), 100_000)?,
            l2_samples: number(take("l2-samples"), 300)?,
        })
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    // The project's subscriber (it never logs bodies, so never tokens), on
    // stderr: stdout carries the report, and a worker's protocol.
    let directives = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned());
    tracing::subscriber::set_global_default(logging::subscriber(
        std::io::stderr,
        &directives,
        false,
        logging::colours_for(&std::io::stderr()),
    ))
    .expect("logging is initialised once");
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if args.first().is_some_and(|a| a == "fleet") {
        return finish(match hour::parse(&args[1..]) {
            Ok(hour) => hour::run(hour).await,
            Err(problem) => return usage_error(&problem, hour::USAGE),
        });
    }
    if args.first().is_some_and(|a| a == "events") {
        return finish(match events::parse(&args[1..]) {
            Ok(samples) => events::run(samples).await,
            Err(problem) => return usage_error(&problem, events::USAGE),
        });
    }
    if args.first().is_some_and(|a| a == "eshop-webhooks") {
        return finish(match eshop_webhooks::parse(&args[1..]) {
            Ok(eshop) => eshop_webhooks::run(eshop).await,
            Err(problem) => return usage_error(&problem, eshop_webhooks::USAGE),
        });
    }
    if args.first().is_some_and(|a| a == "counts") {
        return finish(match args.get(1..).unwrap_or_default() {
            [] => counts::run(None).await,
            [flag, path] if flag == "--json" => counts::run(Some(path)).await,
            _ => return usage_error("counts takes only --json FILE", COUNTS_USAGE),
        });
    }
    if args.first().is_some_and(|a| a == hour::WORKER_FLAG) {
        return finish(match hour::parse_worker(&args[1..]) {
            Ok(worker) => hour::worker(worker).await,
            Err(problem) => return usage_error(&problem, hour::USAGE),
        });
    }
    let result = match parse_args(&args) {
        Ok(Mode::Worker(args)) => storm::worker(args).await,
        Ok(Mode::Bench(args)) => bench(args).await,
        Err(problem) => return usage_error(&problem, USAGE),
    };
    finish(result)
}

fn usage_error(problem: &str, usage: &str) -> ExitCode {
    eprintln!("error: {problem}\n{usage}");
    ExitCode::from(2)
}

fn finish(result: Result<(), Error>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn bench(args: BenchArgs) -> Result<(), Error> {
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; figures are meaningful only with --release");
    }
    let fleet = Fleet::start().await?;
    // Each measurement has shops of its own: eshopIds by section.
    let mut in_process = Vec::new();
    for round in 0..args.rounds {
        progress(&format!("in-process storm {}/{}", round + 1, args.rounds));
        let eshop_id = 10_000 + round as u64;
        in_process.push(storm::in_process(&fleet, eshop_id, INSTANCES, CALLERS).await?);
    }
    let mut multi_process = Vec::new();
    for round in 0..args.process_rounds {
        progress(&format!(
            "multi-process storm {}/{}",
            round + 1,
            args.process_rounds
        ));
        let eshop_id = 20_000 + round as u64;
        multi_process
            .push(storm::multi_process(&fleet, eshop_id, INSTANCES, CALLERS / INSTANCES).await?);
    }
    progress(&format!(
        "the storm's floor: {FLOOR_SAMPLES} solo mints and GetItems"
    ));
    let floor = storm::floor(&fleet, 50_000, FLOOR_SAMPLES).await?;

    progress(&format!(
        "L1 hits: {} handler calls, twice",
        args.l1_iterations
    ));
    let l1_shop = 30_000;
    fleet.install_shoptet(l1_shop).await?;
    let handler = fleet.instance().await?;
    handler.vendor().vend(&request(&shoptet(l1_shop))).await?;
    let l1_quiet = latency::l1_handler(&fleet, &handler, l1_shop, args.l1_iterations).await?;
    let l1_logged = {
        // The Lambda's subscriber (JSON, INFO), formatting into a sink.
        let subscriber = logging::subscriber(std::io::sink, "info", true, false);
        let _scope = tracing::subscriber::set_default(subscriber);
        latency::l1_handler(&fleet, &handler, l1_shop, args.l1_iterations).await?
    };

    progress(&format!(
        "L2 hits and raw GetItem: {} samples",
        args.l2_samples
    ));
    let l2 = latency::l2_vs_get_item(&fleet, 40_000, 40_001, args.l2_samples).await?;

    print_report(
        &args,
        &in_process,
        &multi_process,
        &floor,
        &l1_quiet,
        &l1_logged,
        &l2,
    );
    let storms_ok = in_process
        .iter()
        .chain(&multi_process)
        .all(StormOutcome::is_single_flight);
    if storms_ok {
        Ok(())
    } else {
        Err("a storm did not mint exactly once or callers got different tokens".into())
    }
}

fn print_report(
    args: &BenchArgs,
    in_process: &[StormOutcome],
    multi_process: &[StormOutcome],
    floor: &StormFloor,
    l1_quiet: &Samples,
    l1_logged: &Samples,
    l2: &L2Latencies,
) {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!(
        "{cpus} CPUs, {profile} build; moto at {}\n",
        std::env::var("AWS_ENDPOINT_URL").unwrap_or_default()
    );
    println!("| Measurement | Result |");
    println!("| --- | --- |");
    storm_rows(
        &format!(
            "In-process storm ({CALLERS} vends over {INSTANCES} handler states, cold shop; {} rounds)",
            args.rounds
        ),
        in_process,
    );
    storm_rows(
        &format!(
            "Multi-process storm ({INSTANCES} OS processes × {} vends, cold shop; {} rounds)",
            CALLERS / INSTANCES,
            args.process_rounds
        ),
        multi_process,
    );
    let summary = |s: &Samples, unit: fn(std::time::Duration) -> String| {
        format!(
            "{} / {} / {}",
            unit(s.mean()),
            unit(s.percentile(50.0)),
            unit(s.percentile(99.0))
        )
    };
    floor_rows(floor, multi_process, summary);
    println!(
        "| L1 hit: `handler.handle` (POST + JSON body), {} calls, INFO logs off — mean / p50 / p99 | {} |",
        l1_quiet.len(),
        summary(l1_quiet, micros)
    );
    println!(
        "| L1 hit: the same through the Lambda's log subscriber (JSON, INFO) into a sink — mean / p50 / p99 | {} |",
        summary(l1_logged, micros)
    );
    let n = l2.l2_vend.len();
    println!(
        "| L2 hit: `vend` on a fresh instance, SDK client warm (L1 miss → GetItem), {n} samples — mean / p50 / p99 | {} |",
        summary(&l2.l2_vend, millis)
    );
    println!(
        "| Raw GetItem (consistent read) of the same item, same moto, interleaved, {n} samples — mean / p50 / p99 | {} |",
        summary(&l2.get_item, millis)
    );
    println!(
        "| **L2 vend / raw GetItem** — p50 / mean | **{:.2}× / {:.2}×** |",
        ratio(l2.l2_vend.percentile(50.0), l2.get_item.percentile(50.0)),
        ratio(l2.l2_vend.mean(), l2.get_item.mean())
    );
    println!(
        "| First vend of a fresh instance (L2 hit incl. the SDK client's first request), {n} samples — mean / p50 / p99 | {} |",
        summary(&l2.first_vend, millis)
    );
}

/// The multi-process storm against its floor: one mint + one GetItem.
fn floor_rows(
    floor: &StormFloor,
    storms: &[StormOutcome],
    summary: impl Fn(&Samples, fn(std::time::Duration) -> String) -> String,
) {
    let n = floor.mint.len();
    println!(
        "| One mint alone: first vend of a cold shop on a new handler state (L2 miss, registry, lease, secret, `getAccessToken`, store), {n} samples — mean / p50 / p99 | {} |",
        summary(&floor.mint, millis)
    );
    println!(
        "| One GetItem (consistent) of the stored item, warm client, {n} samples — mean / p50 / p99 | {} |",
        summary(&floor.get_item, millis)
    );
    let walls = Samples::new(storms.iter().map(|s| s.wall).collect());
    let goal = floor.median().mul_f64(STORM_GOAL);
    println!(
        "| **Multi-process storm wall / (mint + GetItem)**, medians: {} / ({} + {}) (goal ≤ {STORM_GOAL}×, {}) | **{:.2}×** (rounds: {}) |",
        millis(walls.percentile(50.0)),
        millis(floor.mint.percentile(50.0)),
        millis(floor.get_item.percentile(50.0)),
        millis(goal),
        ratio(walls.percentile(50.0), floor.median()),
        storms
            .iter()
            .map(|s| format!("{:.2}×", ratio(s.wall, floor.median())))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "| moto under load: {CONCURRENT_READS} concurrent GetItems, time per request (median of {n} batches) | {} |",
        millis(floor.served_under_load)
    );
    let requests = Samples::new(
        storms
            .iter()
            .map(|s| floor.served_under_load * s.store_requests() as u32)
            .collect(),
    );
    println!(
        "| Multi-process storm: its requests to moto (3 per instance + the holder's secret read and store + the polls: {}) × that, median | {} ({:.0}% of the median wall) |",
        storms
            .iter()
            .map(|s| s.store_requests().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        millis(requests.percentile(50.0)),
        100.0 * ratio(requests.percentile(50.0), walls.percentile(50.0))
    );
}

fn storm_rows(title: &str, storms: &[StormOutcome]) {
    let list =
        |f: &dyn Fn(&StormOutcome) -> String| storms.iter().map(f).collect::<Vec<_>>().join(", ");
    println!(
        "| {title}: **upstream mints per storm** | **{}** |",
        list(&|s| s.mints.to_string())
    );
    println!(
        "| … callers that got the one stored token | {} |",
        list(&|s| {
            let same = s.distinct_tokens == 1 && s.all_got_stored_token && s.errors.is_empty();
            if same {
                format!("{}/{}", s.callers, s.callers)
            } else {
                format!("NO ({} tokens, errors {:?})", s.distinct_tokens, s.errors)
            }
        })
    );
    println!(
        "| … token sources minted/L2/L1 | {} |",
        list(&|s| s.sources.to_string())
    );
    println!(
        "| … token-cache reads per waiting request, mean (most by one instance) | {} |",
        list(&|s| format!(
            "{:.1} ({})",
            s.reads_per_wait(),
            s.most_reads_of_an_instance()
        ))
    );
    println!(
        "| … the holder's own caller answered (its mint, under the storm's load) / the last caller answered, ms from the start | {} |",
        list(&|s| format!(
            "{:.1} / {:.1}",
            s.minted_after.unwrap_or_default().as_secs_f64() * 1e3,
            s.last_answer_after.as_secs_f64() * 1e3
        ))
    );
    let walls = Samples::new(storms.iter().map(|s| s.wall).collect());
    println!(
        "| … wall time, median (min – max) | {} ({} – {}) |",
        millis(walls.percentile(50.0)),
        millis(walls.min()),
        millis(walls.max())
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Mode, String> {
        parse_args(&args.iter().map(|arg| arg.to_string()).collect::<Vec<_>>())
    }

    fn problem(args: &[&str]) -> String {
        match parse(args) {
            Ok(_) => panic!("{args:?} parsed"),
            Err(problem) => problem,
        }
    }

    #[test]
    fn bench_defaults_and_options() {
        let Ok(Mode::Bench(args)) = parse(&[]) else {
            panic!("not bench mode")
        };
        let defaults = (args.rounds, args.process_rounds, args.l1_iterations);
        assert_eq!((defaults, args.l2_samples), ((5, 5, 100_000), 300));
        let Ok(Mode::Bench(args)) = parse(&[
            "--rounds",
            "2",
            "--process-rounds=4",
            "--l1-iterations",
            "10",
            "--l2-samples",
            "7",
        ]) else {
            panic!("not bench mode")
        };
        let parsed = (args.rounds, args.process_rounds, args.l1_iterations);
        assert_eq!((parsed, args.l2_samples), ((2, 4, 10), 7));
    }

    #[test]
    fn the_worker_arguments_of_the_storm_round_trip() {
        let Ok(Mode::Worker(args)) = parse(&[
            WORKER_FLAG,
            "--double-url",
            "http://127.0.0.1:1234",
            "--table",
            "tokens",
            "--token-key",
            "alias/bench/tokens",
            "--secret-prefix",
            "bench/",
            "--shop",
            "20001",
            "--callers",
            "32",
        ]) else {
            panic!("not worker mode")
        };
        assert_eq!(args.target.double_url, "http://127.0.0.1:1234");
        assert_eq!(args.target.table, "tokens");
        assert_eq!(args.target.token_key, "alias/bench/tokens");
        assert_eq!(args.target.secret_prefix, "bench/");
        assert_eq!(args.eshop_id.to_string(), "20001");
        assert_eq!(args.callers, 32);
    }

    #[test]
    fn problems_are_named() {
        assert_eq!(problem(&["--rounds"]), "--rounds needs a value");
        assert_eq!(
            problem(&["--rounds", "0"]),
            "\"0\" is not a positive number"
        );
        assert_eq!(
            problem(&["--rounds", "x"]),
            "\"x\" is not a positive number"
        );
        assert_eq!(problem(&["--shop", "1"]), "unknown option --shop");
        assert_eq!(problem(&["-r", "1"]), "unknown option -r");
        assert_eq!(problem(&["5"]), "unexpected argument \"5\"");
        assert_eq!(
            problem(&[WORKER_FLAG, "--rounds", "1"]),
            "unknown option --rounds"
        );
        assert_eq!(problem(&[WORKER_FLAG]), "--double-url is required");
        let partial = [
            WORKER_FLAG,
            "--double-url=u",
            "--table=t",
            "--token-key=k",
            "--secret-prefix=p",
        ];
        assert_eq!(problem(&partial), "--shop is required");
        let bad_shop = [&partial[..], &["--shop", "x"]].concat();
        assert_eq!(problem(&bad_shop), "--shop must be an eshopId");
    }
}
