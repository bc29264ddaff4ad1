//! `reregister-webhooks`: registers the configured Shoptet e-shop webhooks
//! for every active installation again, after the event list (or the
//! receiving URL) changed. Page by page through the `shoptet-webhooks`
//! function (`--function`, a direct invocation: the operator's route) or
//! in this process over an embedded store (`--db`). Idempotent (what an
//! installation has is not registered again, keys are renewed only where
//! none is kept), resumable (`--state FILE` keeps where it got to), with a
//! line of progress per page and a dry run. Prints shops, events and error
//! codes, never a key or a token.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Instant;

use broker_domain::storage::MAX_PAGE;
use broker_shoptet_webhooks::ReregisterPage;

use crate::cli::value;

pub const USAGE: &str = "\
Usage: reregister-webhooks (--function NAME | --db PATH) [OPTIONS]

Registers the configured Shoptet e-shop webhooks (SHOPTET_WEBHOOK_EVENTS) for
every active Shoptet installation again: run it after changing the event list
or the receiving URL. Idempotent: an event an installation has at the URL is
not registered again, and a signature key is renewed only where none is kept,
so a second run registers nothing. An event registered at another URL is
reported and left alone. Resumable: with --state FILE the cursor is kept after
every page and a later run goes on from it. One line per page; keys and tokens
are never printed.

Options:
  --function NAME       the stack's ShoptetWebhooksFunctionName (AWS: each page
                        is one invocation; needs lambda:InvokeFunction on it)
  --db PATH             an embedded store (broker-local's --db), worked on in
                        this process with the platform settings in the
                        environment (SHOPTET_OAUTH_URL, SHOPTET_API_URL,
                        SHOPTET_WEBHOOK_EVENTS, SHOPTET_WEBHOOK_URL)
  --dry-run             list what would be registered, change nothing
  --page-size N         installations per page, 1 to 100 (default 50)
  --max-pages N         stop after N pages (resume with --state or --resume-from)
  --state FILE          keep the cursor here; resume from it if it exists
  --resume-from ESHOPID continue after this installation
  -h, --help            this text";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Function(String),
    Embedded(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub target: Target,
    pub run: Run,
}

/// How far a run goes and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub dry_run: bool,
    pub page_size: NonZeroUsize,
    pub max_pages: Option<NonZeroUsize>,
    pub state: Option<PathBuf>,
    pub resume_from: Option<String>,
}

impl Default for Run {
    fn default() -> Self {
        Self {
            dry_run: false,
            page_size: NonZeroUsize::new(50).expect("not zero"),
            max_pages: None,
            state: None,
            resume_from: None,
        }
    }
}

impl Args {
    /// `Ok(None)`: `--help`.
    pub fn parse(args: impl Iterator<Item = String>) -> Result<Option<Self>, String> {
        use lexopt::Arg::{Long, Short, Value};
        let mut target = None;
        let mut run = Run::default();
        let mut parser = lexopt::Parser::from_args(args);
        while let Some(arg) = parser.next().map_err(|error| error.to_string())? {
            match arg {
                Short('h') | Long("help") => return Ok(None),
                Long("function") => {
                    target = Some(Target::Function(value(&mut parser, "--function")?))
                }
                Long("db") => target = Some(Target::Embedded(value(&mut parser, "--db")?.into())),
                Long("dry-run") => run.dry_run = true,
                Long("page-size") => {
                    run.page_size = count(&mut parser, "--page-size")?;
                    if run.page_size.get() > MAX_PAGE {
                        return Err(format!("--page-size is at most {MAX_PAGE}"));
                    }
                }
                Long("max-pages") => run.max_pages = Some(count(&mut parser, "--max-pages")?),
                Long("state") => run.state = Some(value(&mut parser, "--state")?.into()),
                Long("resume-from") => run.resume_from = Some(value(&mut parser, "--resume-from")?),
                Long(other) => return Err(format!("unknown option --{other}")),
                Short(other) => return Err(format!("unknown option -{other}")),
                Value(other) => {
                    return Err(format!("unexpected argument {}", other.to_string_lossy()));
                }
            }
        }
        let target = target.ok_or("--function or --db is required")?;
        Ok(Some(Self { target, run }))
    }
}

fn count(parser: &mut lexopt::Parser, name: &str) -> Result<NonZeroUsize, String> {
    value(parser, name)?
        .parse()
        .map_err(|_| format!("{name} takes a number from 1"))
}

/// Where pages are registered: the deployed function, or this process.
pub trait Pages {
    fn page(
        &self,
        after: Option<String>,
        limit: usize,
        dry_run: bool,
    ) -> impl std::future::Future<Output = Result<ReregisterPage, String>>;
}

/// What a run came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub pages: usize,
    pub installations: usize,
    /// Installations that got at least one event (or would, in a dry run).
    pub changed: usize,
    pub events_added: usize,
    pub keys_renewed: usize,
    pub failed: usize,
    /// `None`: the listing is complete.
    pub next: Option<String>,
}

/// Runs pages until the end (or `--max-pages`), printing a line per page
/// to `out` and keeping the cursor in `--state`. `Err` only when a page
/// could not be had at all (the cursor printed last says where to go on).
pub async fn run(
    pages: &impl Pages,
    run: &Run,
    out: &mut impl std::io::Write,
) -> Result<Summary, String> {
    let started = Instant::now();
    let mut after = run.resume_from.clone();
    if after.is_none()
        && let Some(state) = &run.state
        && let Ok(kept) = std::fs::read_to_string(state)
    {
        match kept.trim() {
            "done" => {
                line(
                    out,
                    &format!(
                        "{}: the last run finished; remove it to start again",
                        state.display()
                    ),
                );
                return Ok(Summary::default());
            }
            "" => {}
            cursor => {
                line(
                    out,
                    &format!("resuming after installation {cursor} ({})", state.display()),
                );
                after = Some(cursor.to_owned());
            }
        }
    }
    let mut summary = Summary::default();
    loop {
        let page = pages
            .page(after.clone(), run.page_size.get(), run.dry_run)
            .await?;
        summary.pages += 1;
        summary.installations += page.installations.len();
        let mut failures = Vec::new();
        for shop in &page.installations {
            match &shop.error {
                Some(code) => {
                    summary.failed += 1;
                    failures.push(format!("{} ({code})", shop.shop));
                }
                None => {
                    summary.events_added += shop.added.len();
                    summary.changed += usize::from(!shop.added.is_empty());
                    summary.keys_renewed += usize::from(shop.key_renewed == Some(true));
                }
            }
        }
        let verb = if run.dry_run { "would add" } else { "added" };
        let mut text = format!(
            "page {}: {} installations so far, {} {} events to {} of them, {} keys {}, {} failed",
            summary.pages,
            summary.installations,
            verb,
            summary.events_added,
            summary.changed,
            summary.keys_renewed,
            if run.dry_run { "to renew" } else { "renewed" },
            summary.failed,
        );
        if !failures.is_empty() {
            text.push_str(&format!(" [{}]", failures.join(", ")));
        }
        match &page.next {
            Some(next) => text.push_str(&format!("; next after {next}")),
            None => text.push_str("; done"),
        }
        line(out, &text);
        if let Some(state) = &run.state
            && !run.dry_run
        {
            let kept = page.next.clone().unwrap_or_else(|| "done".into());
            std::fs::write(state, kept)
                .map_err(|e| format!("cannot keep the cursor in {}: {e}", state.display()))?;
        }
        summary.next = page.next.clone();
        after = page.next;
        let stop = run.max_pages.is_some_and(|max| summary.pages >= max.get());
        if after.is_none() || stop {
            break;
        }
    }
    line(
        out,
        &format!(
            "{}: {} installations in {} pages, {} failed, {:.1} s{}",
            if summary.next.is_some() {
                "stopped"
            } else {
                "finished"
            },
            summary.installations,
            summary.pages,
            summary.failed,
            started.elapsed().as_secs_f64(),
            match &summary.next {
                Some(next) => format!(" (go on with --resume-from {next})"),
                None => String::new(),
            }
        ),
    );
    Ok(summary)
}

fn line(out: &mut impl std::io::Write, text: &str) {
    let _ = writeln!(out, "{text}");
}

/// Pages registered by the deployed `shoptet-webhooks` function, one
/// direct invocation each.
pub struct FunctionPages {
    pub client: aws_sdk_lambda::Client,
    pub function: String,
}

impl Pages for FunctionPages {
    async fn page(
        &self,
        after: Option<String>,
        limit: usize,
        dry_run: bool,
    ) -> Result<ReregisterPage, String> {
        let payload = serde_json::json!({
            "reregister": { "after": after, "limit": limit, "dry_run": dry_run }
        });
        let output = self
            .client
            .invoke()
            .function_name(&self.function)
            .payload(aws_sdk_lambda::primitives::Blob::new(payload.to_string()))
            .send()
            .await
            .map_err(|e| {
                format!(
                    "invoking {}: {}",
                    self.function,
                    aws_sdk_lambda::error::DisplayErrorContext(&e)
                )
            })?;
        if let Some(error) = output.function_error() {
            return Err(format!("{} failed: {error}", self.function));
        }
        let answer = output
            .payload()
            .map(|p| p.as_ref().to_vec())
            .unwrap_or_default();
        let value: serde_json::Value = serde_json::from_slice(&answer)
            .map_err(|_| format!("{} answered something else than a page", self.function))?;
        if value.get("configured") == Some(&serde_json::Value::Bool(false)) {
            return Err("the stack has no ShoptetWebhookEvents configured".into());
        }
        serde_json::from_value(value)
            .map_err(|_| format!("{} answered something else than a page", self.function))
    }
}

/// Pages registered in this process over a store.
pub struct LocalPages<S, C, R> {
    pub webhooks: crate::eshop_webhooks::LocalWebhooks<S, C, R>,
}

impl<S, C, R> Pages for LocalPages<S, C, R>
where
    S: broker_domain::storage::InstallationStore,
    C: broker_domain::storage::TokenCache + broker_domain::storage::DeliveryLog,
    R: broker_domain::storage::InstallationRegistry,
{
    async fn page(
        &self,
        after: Option<String>,
        limit: usize,
        dry_run: bool,
    ) -> Result<ReregisterPage, String> {
        let after = match after {
            None => None,
            Some(text) => Some(
                text.parse::<broker_domain::ids::ShoptetEshopId>()
                    .map_err(|_| format!("{text} is not an e-shop id"))?,
            ),
        };
        self.webhooks
            .webhooks
            .reregister_page(self.webhooks.vendor.vendor(), after, limit, dry_run)
            .await
            .map_err(|error| error.to_string())
    }
}
