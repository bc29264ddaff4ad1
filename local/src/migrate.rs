//! `migrate-installations`: copies every installation from one AWS
//! installation store to the other (Secrets Manager ⇄ the DynamoDB table),
//! for switching a stack's `InstallationStore`. The copying itself is
//! crate::migration`]; this is its command line and its
//! printing, which shows shops, counts, store errors and cursors, never a
//! document.

use std::num::NonZeroUsize;

use crate::cli::value;
use crate::migration::{Counts, Ending, Migration, Progress, Report, SkipUninstalled, migrate};
use broker_aws::config as store_config;
use broker_aws::storage::InstallationBackend;
use broker_aws::storage::dynamodb_registry::DynamoRegistry;
use broker_domain::storage::{InventoryCursor, MAX_PAGE, StoreError};
use broker_runtime::env::{self, ConfigError, Env};

pub const USAGE: &str = "\
Usage: migrate-installations --from STORE --to STORE [OPTIONS]

Copies every installation (one document per shop, both platforms) from one
installation store to the other. Idempotent: a shop whose document the target
already holds is left alone, so a second run copies nothing. A target that
holds another document for a shop keeps it (the functions wrote it after the
switch) and the shop is named; --overwrite replaces it. Resumable: each page's
line names the cursor to continue from. A shop that fails is named and the run
goes on; the exit status is then non-zero. A shop the registry records as
uninstalled is skipped (its deletion went to the new store). Documents are
never printed.

STORE is secrets-manager or dynamodb.

Options:
  --from STORE          the store to read (the stack's current one)
  --to STORE            the store to write
  --dry-run             compare only: count what would be copied, write nothing
  --overwrite           replace a target document that differs from the source's
  --page-size N         shops per page, 1 to 100 (default 100)
  --max-pages N         stop after N pages (the line printed last tells how to go on)
  --resume-from CURSOR  continue after the page that printed CURSOR
  -h, --help            this text

Environment (as the functions read it):
  SECRET_PREFIX         the Secrets Manager store's name prefix (default shop-token-broker/)
  INSTALLATION_TABLE    the DynamoDB store's table (required for dynamodb)
  INSTALLATION_KEY_ID   the KMS key of that table's data keys (required for dynamodb)
  REGISTRY_TABLE        the stack's registry table (required; output RegistryTableName)
  AWS_REGION, AWS_PROFILE or AWS_ACCESS_KEY_ID…, AWS_ENDPOINT_URL: as for any AWS SDK

Permissions: secretsmanager:ListSecrets and GetSecretValue (and, to write,
CreateSecret, PutSecretValue, RestoreSecret, TagResource) under the prefix;
dynamodb:Scan, GetItem and PutItem on the table, GetItem on the registry
table; kms:GenerateDataKey and kms:Decrypt on the key.";

/// An AWS installation store, as `--from` and `--to` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    SecretsManager,
    DynamoDb,
}

impl StoreKind {
    fn parse(option: &str, value: &str) -> Result<Self, String> {
        match value {
            "secrets-manager" => Ok(Self::SecretsManager),
            "dynamodb" => Ok(Self::DynamoDb),
            _ => Err(format!("{option} is secrets-manager or dynamodb")),
        }
    }

    /// The store's names, from the variables the functions read.
    pub fn backend(self, env: &impl Env) -> Result<InstallationBackend, ConfigError> {
        match self {
            Self::SecretsManager => store_config::secrets_manager_backend(env),
            Self::DynamoDb => store_config::dynamodb_backend(env),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub from: StoreKind,
    pub to: StoreKind,
    pub migration: Migration,
}

impl Args {
    /// `Ok(None)`: `--help`.
    pub fn parse(args: impl Iterator<Item = String>) -> Result<Option<Self>, String> {
        use lexopt::Arg::{Long, Short, Value};

        let (mut from, mut to) = (None, None);
        let mut migration = Migration::default();
        let mut parser = lexopt::Parser::from_args(args);
        while let Some(arg) = parser.next().map_err(|error| error.to_string())? {
            match arg {
                Short('h') | Long("help") => return Ok(None),
                Long("from") => {
                    from = Some(StoreKind::parse("--from", &value(&mut parser, "--from")?)?)
                }
                Long("to") => to = Some(StoreKind::parse("--to", &value(&mut parser, "--to")?)?),
                Long("dry-run") => migration.dry_run = true,
                Long("overwrite") => migration.overwrite = true,
                Long("page-size") => {
                    migration.page_size = count(&mut parser, "--page-size")?;
                    if migration.page_size.get() > MAX_PAGE {
                        return Err(format!("--page-size is at most {MAX_PAGE}"));
                    }
                }
                Long("max-pages") => migration.max_pages = Some(count(&mut parser, "--max-pages")?),
                Long("resume-from") => {
                    migration.resume_from =
                        Some(InventoryCursor::new(value(&mut parser, "--resume-from")?))
                }
                Long(other) => return Err(format!("unknown option --{other}")),
                Short(other) => return Err(format!("unknown option -{other}")),
                Value(other) => {
                    return Err(format!("unexpected argument {}", other.to_string_lossy()));
                }
            }
        }
        let from = from.ok_or("--from is required")?;
        let to = to.ok_or("--to is required")?;
        if from == to {
            return Err("--from and --to name the same store".into());
        }
        Ok(Some(Self {
            from,
            to,
            migration,
        }))
    }
}

fn count(parser: &mut lexopt::Parser, name: &str) -> Result<NonZeroUsize, String> {
    value(parser, name)?
        .parse()
        .map_err(|_| format!("{name} takes a number from 1"))
}

/// Runs the migration `args` describe on the stores `env` names, printing
/// as it goes. `Ok(true)`: every listed shop is in the target (or was gone
/// from the source); `Ok(false)`: some shop failed, or the listing did.
pub async fn run(args: &Args, env: &impl Env) -> Result<bool, String> {
    let from = args.from.backend(env).map_err(|e| e.to_string())?;
    let to = args.to.backend(env).map_err(|e| e.to_string())?;
    let registry_table = env::required(env, "REGISTRY_TABLE").map_err(|e| e.to_string())?;
    let aws = broker_aws::sdk_http::load_sdk_config().await;
    if aws.region().is_none() {
        return Err("no AWS region: set AWS_REGION (or a profile's region)".into());
    }
    let dry_run = args.migration.dry_run;
    println!(
        "{} installations: {} -> {}",
        if dry_run {
            "comparing (dry run)"
        } else {
            "copying"
        },
        describe(&from),
        describe(&to)
    );
    let source = from.open(&aws);
    let registry = DynamoRegistry::new(aws_sdk_dynamodb::Client::new(&aws), registry_table);
    let source = SkipUninstalled {
        source: &source,
        registry: &registry,
    };
    let report = migrate(&source, &to.open(&aws), &args.migration, |progress| {
        for line in page_lines(progress, dry_run) {
            println!("{line}");
        }
    })
    .await;
    for line in summary_lines(&report, dry_run) {
        println!("{line}");
    }
    Ok(report.succeeded())
}

/// What a store is, for the first line: names only.
pub fn describe(backend: &InstallationBackend) -> String {
    match backend {
        InstallationBackend::SecretsManager { secrets } => {
            format!("Secrets Manager (prefix {})", secrets.prefix())
        }
        InstallationBackend::DynamoDb { table, key_id } => {
            format!("DynamoDB (table {table}, key {key_id})")
        }
    }
}

/// One line per page: the run's totals so far, the page's failures, and how
/// to go on from there.
pub fn page_lines(progress: &Progress<'_>, dry_run: bool) -> Vec<String> {
    let mut lines = vec![format!(
        "page {}: {}",
        progress.pages,
        totals(progress.counts, dry_run)
    )];
    lines.extend(
        progress
            .kept
            .iter()
            .map(|shop| format!("  kept {}: the target holds another document", shop.key())),
    );
    lines.extend(
        progress
            .failures
            .iter()
            .map(|failure| format!("  failed {}: {}", failure.shop.key(), failure.error)),
    );
    if let Some(cursor) = progress.resume_from {
        lines.push(format!(
            "  to go on from here: --resume-from {}",
            quoted(cursor)
        ));
    }
    lines
}

/// The last lines, and whether the run succeeded.
pub fn summary_lines(report: &Report, dry_run: bool) -> Vec<String> {
    let mut lines = Vec::new();
    match &report.ending {
        Ending::Complete => lines.push(format!("done: {}", totals(&report.counts, dry_run))),
        Ending::Paused { resume_from } => {
            lines.push(format!("paused: {}", totals(&report.counts, dry_run)));
            lines.push(format!(
                "  to finish: the same command with --resume-from {}",
                quoted(resume_from)
            ));
        }
        Ending::ListingFailed { error, resume_from } => {
            lines.push(format!("stopped: listing the source failed: {error}"));
            lines.push(format!("  so far: {}", totals(&report.counts, dry_run)));
            match (error, resume_from) {
                // Secrets Manager's tokens expire; a re-run from the start
                // finds what was copied already there.
                (StoreError::ForeignCursor(_), _) => lines.push(
                    "  the same command without --resume-from starts over (what was copied counts as already there)"
                        .into(),
                ),
                (_, Some(cursor)) => lines.push(format!(
                    "  to go on: the same command with --resume-from {}",
                    quoted(cursor)
                )),
                (_, None) => {}
            }
        }
    }
    if !report.kept.is_empty() {
        lines.push(format!(
            "{} shop(s) kept the target's own document (named above): right if the functions \
             already use the target; --overwrite replaces them with the source's",
            report.kept.len()
        ));
    }
    if !report.failures.is_empty() {
        lines.push(format!(
            "{} shop(s) failed (named above); run again without --resume-from to retry them \
             (what was copied counts as already there)",
            report.failures.len()
        ));
    }
    lines
}

fn totals(counts: &Counts, dry_run: bool) -> String {
    let copied = if dry_run { "to copy" } else { "copied" };
    format!(
        "{} listed, {} {copied}, {} already there, {} kept (the target's differs), \
         {} skipped (uninstalled or gone from the source), {} failed",
        counts.listed,
        counts.copied,
        counts.already_there,
        counts.kept,
        counts.skipped,
        counts.failed
    )
}

/// A cursor as one shell word (a shop key holds `#`; a Secrets Manager
/// token may hold `/`, `+` or `=`).
fn quoted(cursor: &InventoryCursor) -> String {
    format!("'{}'", cursor.as_str().replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Args>, String> {
        Args::parse(args.iter().map(|arg| arg.to_string()))
    }

    fn parsed(args: &[&str]) -> Args {
        parse(args).unwrap().expect("not --help")
    }

    #[test]
    fn from_and_to_name_the_two_stores() {
        let args = parsed(&["--from", "secrets-manager", "--to", "dynamodb"]);
        assert_eq!(
            (args.from, args.to),
            (StoreKind::SecretsManager, StoreKind::DynamoDb)
        );
        assert_eq!(args.migration, Migration::default());
        let args = parsed(&["--from=dynamodb", "--to=secrets-manager"]);
        assert_eq!(
            (args.from, args.to),
            (StoreKind::DynamoDb, StoreKind::SecretsManager)
        );
    }

    #[test]
    fn both_stores_are_required_and_differ() {
        assert_eq!(
            parse(&["--to", "dynamodb"]).unwrap_err(),
            "--from is required"
        );
        assert_eq!(
            parse(&["--from", "dynamodb"]).unwrap_err(),
            "--to is required"
        );
        assert_eq!(
            parse(&["--from", "dynamodb", "--to", "dynamodb"]).unwrap_err(),
            "--from and --to name the same store"
        );
        assert_eq!(
            parse(&["--from", "sqlite", "--to", "dynamodb"]).unwrap_err(),
            "--from is secrets-manager or dynamodb"
        );
    }

    #[test]
    fn options_of_a_run() {
        let args = parsed(&[
            "--from",
            "secrets-manager",
            "--to",
            "dynamodb",
            "--dry-run",
            "--overwrite",
            "--page-size",
            "10",
            "--max-pages=3",
            "--resume-from",
            "shoptet#42",
        ]);
        assert_eq!(
            args.migration,
            Migration {
                page_size: NonZeroUsize::new(10).unwrap(),
                resume_from: Some(InventoryCursor::new("shoptet#42")),
                max_pages: NonZeroUsize::new(3),
                dry_run: true,
                overwrite: true,
            }
        );
    }

    #[test]
    fn bad_numbers_and_unknown_options_are_refused() {
        let run = ["--from", "secrets-manager", "--to", "dynamodb"];
        let with = |extra: &[&str]| parse(&[&run[..], extra].concat()).unwrap_err();
        assert_eq!(
            with(&["--page-size", "0"]),
            "--page-size takes a number from 1"
        );
        assert_eq!(with(&["--page-size", "101"]), "--page-size is at most 100");
        assert_eq!(
            with(&["--max-pages", "x"]),
            "--max-pages takes a number from 1"
        );
        assert_eq!(with(&["--resume-from"]), "--resume-from needs a value");
        assert_eq!(with(&["--force"]), "unknown option --force");
        assert_eq!(with(&["now"]), "unexpected argument now");
    }

    #[test]
    fn help() {
        assert!(parse(&["--help"]).unwrap().is_none());
        assert!(parse(&["--from", "dynamodb", "-h"]).unwrap().is_none());
    }

    #[test]
    fn each_store_reads_its_own_variables_and_names_a_missing_one() {
        let env = |name: &str| (name == "INSTALLATION_TABLE").then(|| "table".to_owned());
        let error = StoreKind::DynamoDb.backend(&env).unwrap_err();
        assert_eq!(error.variable, "INSTALLATION_KEY_ID");
        let backend = StoreKind::SecretsManager.backend(&env).unwrap();
        assert_eq!(
            describe(&backend),
            "Secrets Manager (prefix shop-token-broker/)"
        );
    }

    #[test]
    fn a_refused_cursor_says_to_start_over_not_to_resume_from_it() {
        let report = Report {
            counts: Counts::default(),
            failures: Vec::new(),
            kept: Vec::new(),
            ending: Ending::ListingFailed {
                error: StoreError::ForeignCursor("typo".into()),
                resume_from: Some(InventoryCursor::new("typo")),
            },
        };
        let lines = summary_lines(&report, false);
        assert!(lines[0].starts_with("stopped: "), "{lines:?}");
        assert!(lines[2].contains("without --resume-from"), "{lines:?}");
        assert!(
            !lines.iter().any(|line| line.contains("'typo'")),
            "{lines:?}"
        );
    }

    #[test]
    fn a_cursor_is_printed_as_one_shell_word() {
        assert_eq!(quoted(&InventoryCursor::new("shoptet#42")), "'shoptet#42'");
        assert_eq!(quoted(&InventoryCursor::new("it's")), r"'it'\''s'");
    }
}
