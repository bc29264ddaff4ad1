//! Log set-up for every binary: Lambda's advanced logging controls
//! (`AWS_LAMBDA_LOG_LEVEL`, `AWS_LAMBDA_LOG_FORMAT=JSON`) or `RUST_LOG`, an
//! allow-list of what may log below INFO, and no colour codes unless a
//! terminal reads the logs.
//!
//! Below INFO, dependencies log what they carry: at TRACE the SDK logs every
//! raw HTTP response body (GetSecretValue's and GetItem's, i.e. OAuth and API
//! tokens), and `lambda_runtime` every raw event it receives (install codes,
//! Shoprenter hmacs, webhook signatures, client secrets in credential PUTs,
//! stale tokens). No log level may reach that: only the workspace's own
//! crates, which never log a secret, log at DEBUG and TRACE; every other
//! crate is capped at [`DEPENDENCY_CEILING`], whatever the level asked for.

use std::io::IsTerminal;

use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::filter::{EnvFilter, FilterExt, LevelFilter, filter_fn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{Layer, fmt};

/// The most any dependency may log: INFO and above carry no request or
/// response body and no raw event in any crate the functions link.
pub const DEPENDENCY_CEILING: Level = Level::INFO;

/// The workspace's own crates (their targets are their module paths): they
/// log at whatever level is asked for, and never a secret.
const OWN_TARGETS: &[&str] = &["broker_", "install_callback", "token_vendor", "shop_token"];

fn is_own(target: &str) -> bool {
    OWN_TARGETS.iter().any(|own| target.starts_with(own))
}

/// Whether an event or span may be logged at all, whatever the directives.
fn allowed(metadata: &Metadata<'_>) -> bool {
    *metadata.level() <= DEPENDENCY_CEILING || is_own(metadata.target())
}

/// A subscriber writing to `writer` with `directives` (`RUST_LOG` syntax),
/// minus everything a dependency logs below [`DEPENDENCY_CEILING`]. Text lines carry ANSI colours only
/// when `colours` says so (see [`colours_for`]).
pub fn subscriber<W>(
    writer: W,
    directives: &str,
    json: bool,
    colours: bool,
) -> impl Subscriber + Send + Sync
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    let levels = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .parse_lossy(directives);
    let filter = levels.and(filter_fn(allowed));
    let format = fmt::layer()
        .with_target(false)
        .without_time()
        .with_ansi(colours)
        .with_writer(writer);
    let layer = if json {
        format.json().with_filter(filter).boxed()
    } else {
        format.with_filter(filter).boxed()
    };
    tracing_subscriber::registry().with(layer)
}

/// Installs the process-wide subscriber on stdout, configured like Lambda's
/// advanced logging controls: `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else
/// `info`; JSON lines when `AWS_LAMBDA_LOG_FORMAT=JSON`.
pub fn init() {
    let directives = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned());
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let colours = colours_for(&std::io::stdout());
    tracing::subscriber::set_global_default(subscriber(
        std::io::stdout,
        &directives,
        json,
        colours,
    ))
    .expect("logging is initialised once, at start-up");
}

/// Colours only for a person at a terminal: CloudWatch (and any file or
/// pipe) shows escape codes raw, e.g. when someone turns JSON logs off.
pub fn colours_for(stream: &impl IsTerminal) -> bool {
    stream.is_terminal()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_line(colours: bool) -> String {
        let captured = test_support::CapturedLogs::default();
        let writer = captured.clone();
        let subscriber = subscriber(move || writer.clone(), "info", false, colours);
        tracing::subscriber::with_default(subscriber, || tracing::warn!(shop = 7, "hello"));
        captured.text()
    }

    #[test]
    fn text_logs_carry_no_escape_codes_unless_asked_for_a_terminal() {
        let plain = text_line(false);
        assert!(plain.contains("hello"), "{plain:?}");
        assert!(!plain.contains('\x1b'), "{plain:?}");
        assert!(text_line(true).contains('\x1b'));
    }

    const SECRET: &str = "s3cr3t-code-0123456789";

    fn logged_at(directives: &str, emit: impl FnOnce()) -> String {
        let captured = test_support::CapturedLogs::default();
        let writer = captured.clone();
        let subscriber = subscriber(move || writer.clone(), directives, true, false);
        tracing::subscriber::with_default(subscriber, emit);
        captured.text()
    }

    #[test]
    fn at_trace_no_dependency_logs_below_info_and_our_own_crates_do() {
        for directives in [
            "trace",
            "debug",
            "trace,lambda_runtime=trace,aws_smithy_runtime=trace",
        ] {
            let logged = logged_at(directives, || {
                tracing::trace!(target: "lambda_runtime::layers::api_response", "raw JSON event received from Lambda: {SECRET}");
                tracing::debug!(target: "lambda_runtime::layers::api_response", "event: {SECRET}");
                tracing::trace!(target: "aws_smithy_runtime::client::http", "response body: {SECRET}");
                tracing::debug!(target: "hyper_util::client", "body: {SECRET}");
                tracing::info!(target: "lambda_runtime", "a dependency's info line");
                tracing::debug!(target: "broker_vending", "our own debug line");
                tracing::trace!(target: "token_vendor::handler", "our own trace line");
            });
            test_support::LeakScanner::new([SECRET]).assert_absent(directives, &logged);
            assert!(
                logged.contains("a dependency's info line"),
                "{directives}: {logged}"
            );
            assert!(
                logged.contains("our own debug line"),
                "{directives}: {logged}"
            );
            assert_eq!(
                logged.contains("our own trace line"),
                directives.starts_with("trace")
            );
        }
    }

    #[test]
    fn a_file_is_not_a_terminal() {
        let file = std::fs::File::open(std::env::current_exe().unwrap()).unwrap();
        assert!(!colours_for(&file));
    }
}
