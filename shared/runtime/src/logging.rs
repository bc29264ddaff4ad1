//! Log set-up for every binary: Lambda's advanced logging controls
//! (`AWS_LAMBDA_LOG_LEVEL`, `AWS_LAMBDA_LOG_FORMAT=JSON`) or `RUST_LOG`, and
//! a hard stop on TRACE events from the HTTP stack and the AWS SDK, and
//! no colour codes unless a terminal reads the logs.
//!
//! At TRACE the SDK logs every raw HTTP response body, GetSecretValue's and
//! GetItem's included, i.e. OAuth and API tokens. No log level may reach that.

use std::io::IsTerminal;

use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::filter::{EnvFilter, FilterExt, LevelFilter, filter_fn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{Layer, fmt};

/// Targets that log request and response bodies at TRACE.
const BODY_LOGGING_TARGETS: &[&str] = &[
    "aws_smithy",
    "aws_sdk_",
    "aws_config",
    "aws_runtime",
    "hyper",
    "reqwest",
    "h2",
    "rustls",
];

fn logs_bodies(metadata: &Metadata<'_>) -> bool {
    *metadata.level() == Level::TRACE
        && BODY_LOGGING_TARGETS
            .iter()
            .any(|target| metadata.target().starts_with(target))
}

/// A subscriber writing to `writer` with `directives` (`RUST_LOG` syntax),
/// minus the body-logging TRACE events. Text lines carry ANSI colours only
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
    let filter = levels.and(filter_fn(|metadata| !logs_bodies(metadata)));
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

    #[test]
    fn a_file_is_not_a_terminal() {
        let file = std::fs::File::open(std::env::current_exe().unwrap()).unwrap();
        assert!(!colours_for(&file));
    }
}
