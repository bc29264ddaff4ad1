//! Storms: many concurrent vends for one cold shop over independent handler
//! states, in this process or in worker processes; the double counts mints.

use std::collections::BTreeSet;
use std::fmt;
use std::io::Write;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker_shared::http::HttpError;
use token_vendor::{AwsVendHandler, Source};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::JoinSet;

use crate::Error;
use crate::fleet::{Fleet, Target, request, shoptet, token_hash};

/// The flag that turns the binary into a storm worker.
pub const WORKER_FLAG: &str = "--storm-worker";

/// How long a worker may take to start, and a storm to finish.
const WORKER_START_TIMEOUT: Duration = Duration::from_secs(60);
const STORM_TIMEOUT: Duration = Duration::from_secs(60);

/// What one caller got: a token's hash and where it came from, or an error code.
type CallerOutcome = Result<(u64, Source), String>;

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
}

impl StormOutcome {
    /// One mint, one token for everyone, no errors.
    pub fn is_single_flight(&self) -> bool {
        self.mints == 1
            && self.distinct_tokens == 1
            && self.all_got_stored_token
            && self.errors.is_empty()
    }

    async fn tally(
        fleet: &Fleet,
        eshop_id: u64,
        wall: Duration,
        outcomes: Vec<CallerOutcome>,
    ) -> Result<Self, Error> {
        let stored = fleet.stored_token_hash(&shoptet(eshop_id)).await?;
        let mut sources = SourceCounts::default();
        let mut hashes = BTreeSet::new();
        let mut errors = Vec::new();
        for outcome in &outcomes {
            match outcome {
                Ok((hash, source)) => {
                    sources.add(*source);
                    hashes.insert(*hash);
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
    for caller in 0..callers {
        let instance = instances[caller % instances.len()].clone();
        let request = request.clone();
        tasks.spawn(async move {
            instance
                .vendor
                .vend(&request)
                .await
                .map(|vended| (token_hash(&vended.token.access_token), vended.source))
                .map_err(|error| error.code().to_owned())
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
    StormOutcome::tally(fleet, eshop_id, wall, outcomes).await
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

    async fn outcomes(&mut self) -> Result<Vec<CallerOutcome>, Error> {
        let mut outcomes = Vec::new();
        loop {
            let line = self.next_line().await?;
            match line.split_whitespace().collect::<Vec<_>>().as_slice() {
                ["done"] => return Ok(outcomes),
                ["vend", hash, source] => {
                    let hash = u64::from_str_radix(hash, 16)?;
                    outcomes.push(Ok((hash, parse_source(source)?)));
                }
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
        for worker in &mut workers {
            outcomes.extend(worker.outcomes().await?);
        }
        Ok::<_, Error>(outcomes)
    };
    let outcomes = tokio::time::timeout(STORM_TIMEOUT, collect)
        .await
        .map_err(|_| "the multi-process storm did not finish in time")??;
    let wall = started.elapsed();
    for worker in &mut workers {
        let status = worker.child.wait().await?;
        if !status.success() {
            return Err(format!("a worker exited with {status}").into());
        }
    }
    StormOutcome::tally(fleet, eshop_id, wall, outcomes).await
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
    let outcomes = vend_storm(&[handler], args.eshop_id, args.callers).await;
    for outcome in outcomes {
        match outcome {
            Ok((hash, source)) => say(&format!("vend {hash:016x} {}", source.as_str()))?,
            Err(code) => say(&format!("error {code}"))?,
        }
    }
    say("done")
}

fn say(line: &str) -> Result<(), Error> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()?;
    Ok(())
}
