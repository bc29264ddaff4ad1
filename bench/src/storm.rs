//! Storms: many concurrent vends for one cold shop over independent handler
//! states, in this process or in worker processes; the double counts mints.

use std::collections::BTreeSet;
use std::fmt;
use std::io::Write;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use broker_aws::storage::dynamodb::PARTITION_KEY;
use broker_domain::http::HttpError;
use broker_vending::WaitCounts;
use token_vendor::{AwsVendHandler, Source};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::JoinSet;

use crate::Error;
use crate::fleet::{Fleet, Target, request, shoptet, token_hash};
use crate::stats::Samples;

/// The flag that turns the binary into a storm worker.
pub const WORKER_FLAG: &str = "--storm-worker";

/// How long a worker may take to start, and a storm to finish.
const WORKER_START_TIMEOUT: Duration = Duration::from_secs(60);
const STORM_TIMEOUT: Duration = Duration::from_secs(60);

/// What one caller got: a token's hash, where it came from and when (from
/// its process's start of the storm), or an error code.
type CallerOutcome = Result<Answer, String>;

#[derive(Debug, Clone, Copy)]
struct Answer {
    hash: u64,
    source: Source,
    after: Duration,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SourceCounts {
    pub minted: usize,
    pub l2: usize,
    pub l1: usize,
}

impl SourceCounts {
    fn add(&mut self, source: Source) {
        match source {
            Source::Minted => self.minted += 1,
            Source::L2 => self.l2 += 1,
            Source::L1 => self.l1 += 1,
        }
    }
}

impl fmt::Display for SourceCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.minted, self.l2, self.l1)
    }
}

pub struct StormOutcome {
    pub callers: usize,
    /// Upstream `getAccessToken` calls the double saw.
    pub mints: u64,
    /// From the first vend starting to the last one answering.
    pub wall: Duration,
    pub sources: SourceCounts,
    pub errors: Vec<String>,
    /// How many different tokens the callers got.
    pub distinct_tokens: usize,
    /// Whether every caller got the token the table holds.
    pub all_got_stored_token: bool,
    /// Each instance's lease waits and the token-cache reads they made.
    pub waits: Vec<WaitCounts>,
    /// When the lease holder's own caller got the minted token, and when
    /// the last caller was answered (from the storm's start, as each
    /// process measures it).
    pub minted_after: Option<Duration>,
    pub last_answer_after: Duration,
}

impl StormOutcome {
    /// One mint, one token for everyone, no errors.
    pub fn is_single_flight(&self) -> bool {
        self.mints == 1
            && self.distinct_tokens == 1
            && self.all_got_stored_token
            && self.errors.is_empty()
    }

    /// Token-cache reads per waiting request, over all instances.
    pub fn reads_per_wait(&self) -> f64 {
        let (waits, reads) = self
            .waits
            .iter()
            .fold((0, 0), |(w, r), c| (w + c.waits, r + c.reads));
        reads as f64 / waits.max(1) as f64
    }

    /// The requests the storm makes to moto: per instance one L2 read, one
    /// registry read and one lease attempt; the holder's secret read and
    /// its store; the waiters' polls.
    pub fn store_requests(&self) -> u64 {
        let reads: u64 = self.waits.iter().map(|c| c.reads).sum();
        3 * self.waits.len() as u64 + 2 + reads
    }

    /// The most reads one instance's waits made.
    pub fn most_reads_of_an_instance(&self) -> u64 {
        self.waits.iter().map(|c| c.reads).max().unwrap_or(0)
    }

    async fn tally(
        fleet: &Fleet,
        eshop_id: u64,
        wall: Duration,
        outcomes: Vec<CallerOutcome>,
        waits: Vec<WaitCounts>,
    ) -> Result<Self, Error> {
        let stored = fleet.stored_token_hash(&shoptet(eshop_id)).await?;
        let mut sources = SourceCounts::default();
        let mut hashes = BTreeSet::new();
        let mut errors = Vec::new();
        let (mut minted_after, mut last_answer_after) = (None, Duration::ZERO);
        for outcome in &outcomes {
            match outcome {
                Ok(answer) => {
                    sources.add(answer.source);
                    hashes.insert(answer.hash);
                    if answer.source == Source::Minted {
                        minted_after = Some(answer.after);
                    }
                    last_answer_after = last_answer_after.max(answer.after);
                }
                Err(code) => errors.push(code.clone()),
            }
        }
        Ok(Self {
            callers: outcomes.len(),
            mints: fleet.mints(eshop_id),
            wall,
            sources,
            errors,
            distinct_tokens: hashes.len(),
            all_got_stored_token: stored.is_some_and(|stored| hashes == BTreeSet::from([stored])),
            waits,
            minted_after,
            last_answer_after,
        })
    }
}

/// `callers` concurrent vends spread round-robin over the handler states.
async fn vend_storm(
    instances: &[Arc<AwsVendHandler>],
    eshop_id: u64,
    callers: usize,
) -> Vec<CallerOutcome> {
    let request = request(&shoptet(eshop_id));
    let mut tasks = JoinSet::new();
    let started = Instant::now();
    for caller in 0..callers {
        let instance = instances[caller % instances.len()].clone();
        let request = request.clone();
        tasks.spawn(async move {
            instance
                .vendor()
                .vend(&request)
                .await
                .map(|vended| Answer {
                    hash: token_hash(&vended.token.access_token),
                    source: vended.source,
                    after: started.elapsed(),
                })
                .map_err(|error| error.code().as_str().to_owned())
        });
    }
    let mut outcomes = Vec::with_capacity(callers);
    while let Some(joined) = tasks.join_next().await {
        outcomes.push(joined.unwrap_or_else(|panic| Err(format!("caller panicked: {panic}"))));
    }
    outcomes
}

/// 256 vends over 8 handler states in this process, for an installed shop
/// nobody has vended yet.
pub async fn in_process(
    fleet: &Fleet,
    eshop_id: u64,
    instances: usize,
    callers: usize,
) -> Result<StormOutcome, Error> {
    fleet.install_shoptet(eshop_id).await?;
    let mut handlers = Vec::with_capacity(instances);
    for _ in 0..instances {
        handlers.push(Arc::new(fleet.instance().await?));
    }
    let started = Instant::now();
    let outcomes = tokio::time::timeout(STORM_TIMEOUT, vend_storm(&handlers, eshop_id, callers))
        .await
        .map_err(|_| "the in-process storm did not finish in time")?;
    let wall = started.elapsed();
    let waits = handlers.iter().map(|h| h.vendor().wait_counts()).collect();
    StormOutcome::tally(fleet, eshop_id, wall, outcomes, waits).await
}

/// A worker process: spawned, it builds its handler state and says `ready`;
/// on `go` it runs its callers and reports one line per caller, then `done`.
struct Worker {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Worker {
    fn spawn(target: &Target, eshop_id: u64, callers: usize) -> Result<Self, Error> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg(WORKER_FLAG)
            .args(["--double-url", &target.double_url])
            .args(["--table", &target.table])
            .args(["--token-key", &target.token_key])
            .args(["--secret-prefix", &target.secret_prefix])
            .args(["--shop", &eshop_id.to_string()])
            .args(["--callers", &callers.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child.stdout.take().ok_or("worker stdout")?;
        Ok(Self {
            child,
            lines: BufReader::new(stdout).lines(),
        })
    }

    async fn next_line(&mut self) -> Result<String, Error> {
        Ok(self
            .lines
            .next_line()
            .await?
            .ok_or("a worker exited early")?)
    }

    async fn go(&mut self) -> Result<(), Error> {
        let stdin = self.child.stdin.as_mut().ok_or("worker stdin")?;
        stdin.write_all(b"go\n").await?;
        stdin.flush().await?;
        Ok(())
    }

    /// The callers' outcomes, then the worker's lease waits.
    async fn outcomes(&mut self) -> Result<(Vec<CallerOutcome>, WaitCounts), Error> {
        let mut outcomes = Vec::new();
        loop {
            let line = self.next_line().await?;
            match line.split_whitespace().collect::<Vec<_>>().as_slice() {
                ["waits", waits, reads] => {
                    let waits = WaitCounts {
                        waits: waits.parse()?,
                        reads: reads.parse()?,
                    };
                    if self.next_line().await? != "done" {
                        return Err("a worker did not say `done` after its waits".into());
                    }
                    return Ok((outcomes, waits));
                }
                ["vend", hash, source, micros] => outcomes.push(Ok(Answer {
                    hash: u64::from_str_radix(hash, 16)?,
                    source: parse_source(source)?,
                    after: Duration::from_micros(micros.parse()?),
                })),
                ["error", code] => outcomes.push(Err((*code).to_owned())),
                _ => return Err(format!("unexpected worker output {line:?}").into()),
            }
        }
    }
}

fn parse_source(source: &str) -> Result<Source, Error> {
    [Source::L1, Source::L2, Source::Minted]
        .into_iter()
        .find(|s| s.as_str() == source)
        .ok_or_else(|| format!("unknown source {source:?}").into())
}

/// `processes` worker processes of this binary, `callers` vends each, all
/// released at once once every worker has built its handler state.
pub async fn multi_process(
    fleet: &Fleet,
    eshop_id: u64,
    processes: usize,
    callers: usize,
) -> Result<StormOutcome, Error> {
    fleet.install_shoptet(eshop_id).await?;
    let mut workers = Vec::with_capacity(processes);
    for _ in 0..processes {
        workers.push(Worker::spawn(&fleet.target, eshop_id, callers)?);
    }
    for worker in &mut workers {
        let line = tokio::time::timeout(WORKER_START_TIMEOUT, worker.next_line())
            .await
            .map_err(|_| "a worker did not get ready in time")??;
        if line != "ready" {
            return Err(format!("unexpected worker output {line:?}").into());
        }
    }
    let started = Instant::now();
    for worker in &mut workers {
        worker.go().await?;
    }
    let collect = async {
        let mut outcomes = Vec::with_capacity(processes * callers);
        let mut waits = Vec::with_capacity(processes);
        for worker in &mut workers {
            let (answers, waited) = worker.outcomes().await?;
            outcomes.extend(answers);
            waits.push(waited);
        }
        Ok::<_, Error>((outcomes, waits))
    };
    let (outcomes, waits) = tokio::time::timeout(STORM_TIMEOUT, collect)
        .await
        .map_err(|_| "the multi-process storm did not finish in time")??;
    let wall = started.elapsed();
    for worker in &mut workers {
        let status = worker.child.wait().await?;
        if !status.success() {
            return Err(format!("a worker exited with {status}").into());
        }
    }
    StormOutcome::tally(fleet, eshop_id, wall, outcomes, waits).await
}

/// What a worker process is told.
pub struct WorkerArgs {
    pub target: Target,
    pub eshop_id: u64,
    pub callers: usize,
}

/// The worker process's side of [`multi_process`]. Prints token hashes, never tokens.
pub async fn worker(args: WorkerArgs) -> Result<(), Error> {
    let aws = test_support::emulator_sdk_config().await;
    let handler = Arc::new(args.target.instance(&aws).await?);
    say("ready")?;
    let mut line = String::new();
    BufReader::new(tokio::io::stdin())
        .read_line(&mut line)
        .await?;
    if line.trim() != "go" {
        return Err(format!("expected `go`, got {line:?}").into());
    }
    let outcomes = vend_storm(std::slice::from_ref(&handler), args.eshop_id, args.callers).await;
    for outcome in outcomes {
        match outcome {
            Ok(answer) => say(&format!(
                "vend {:016x} {} {}",
                answer.hash,
                answer.source.as_str(),
                answer.after.as_micros()
            ))?,
            Err(code) => say(&format!("error {code}"))?,
        }
    }
    let waited = handler.vendor().wait_counts();
    say(&format!("waits {} {}", waited.waits, waited.reads))?;
    say("done")
}

fn say(line: &str) -> Result<(), Error> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()?;
    Ok(())
}

/// What a storm cannot beat: one uncontended mint by a new instance (L2
/// miss, registry read, lease, secret read, `getAccessToken`, store and
/// release), then the one consistent GetItem with which a waiter sees it.
pub struct StormFloor {
    pub mint: Samples,
    pub get_item: Samples,
    /// What one request costs moto when many come at once: the time of
    /// [`CONCURRENT_READS`] concurrent GetItems, divided by their number
    /// (moto answers one request at a time; DynamoDB does not).
    pub served_under_load: Duration,
}

/// The concurrent GetItems that measure moto's throughput.
pub const CONCURRENT_READS: usize = 32;

impl StormFloor {
    /// Median mint + median GetItem.
    pub fn median(&self) -> Duration {
        self.mint.percentile(50.0) + self.get_item.percentile(50.0)
    }
}

/// `samples` cold shops from `first_eshop_id` on, each minted alone by a
/// new handler state (as a storm's lease holder does), each followed by a
/// raw consistent GetItem of the item just stored, on a warm client.
pub async fn floor(
    fleet: &Fleet,
    first_eshop_id: u64,
    samples: usize,
) -> Result<StormFloor, Error> {
    let dynamodb = aws_sdk_dynamodb::Client::new(&fleet.aws);
    let get_item = |eshop_id: u64| {
        let dynamodb = &dynamodb;
        async move {
            let started = Instant::now();
            let output = dynamodb
                .get_item()
                .table_name(&fleet.target.table)
                .key(PARTITION_KEY, AttributeValue::S(shoptet(eshop_id).key()))
                .consistent_read(true)
                .send()
                .await?;
            let elapsed = started.elapsed();
            output.item().ok_or("the token item is missing")?;
            Ok::<_, Error>(elapsed)
        }
    };
    let mut mints = Vec::with_capacity(samples);
    let mut reads = Vec::with_capacity(samples);
    for sample in 0..samples as u64 {
        let eshop_id = first_eshop_id + sample;
        fleet.install_shoptet(eshop_id).await?;
        let instance = fleet.instance().await?;
        let started = Instant::now();
        let vended = instance.vendor().vend(&request(&shoptet(eshop_id))).await?;
        mints.push(started.elapsed());
        if vended.source != Source::Minted || fleet.mints(eshop_id) != 1 {
            return Err("a cold shop's first vend did not mint exactly once".into());
        }
        if sample == 0 {
            for _ in 0..10 {
                get_item(eshop_id).await?; // warm the raw client's connection
            }
        }
        reads.push(get_item(eshop_id).await?);
    }
    let mut batches = Vec::with_capacity(samples);
    for _ in 0..samples {
        let mut batch = JoinSet::new();
        let started = Instant::now();
        for _ in 0..CONCURRENT_READS {
            let read = dynamodb
                .get_item()
                .table_name(&fleet.target.table)
                .key(
                    PARTITION_KEY,
                    AttributeValue::S(shoptet(first_eshop_id).key()),
                )
                .consistent_read(true);
            batch.spawn(read.send());
        }
        while let Some(read) = batch.join_next().await {
            read??;
        }
        batches.push(started.elapsed() / CONCURRENT_READS as u32);
    }
    Ok(StormFloor {
        mint: Samples::new(mints),
        get_item: Samples::new(reads),
        served_under_load: Samples::new(batches).percentile(50.0),
    })
}
