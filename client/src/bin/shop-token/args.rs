//! The command line: what to do, for which shop, through which broker.

use std::ffi::OsString;
use std::time::Duration;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use clap_complete::Shell;
use shop_token_client::{Method, Platform, Shop};

/// The help's closing sections: where the broker is, and the exit codes.
const AFTER_HELP: &str = "\
<platform> is shoptet (<shop> an eshopId) or shoprenter (<shop> a shop name).

WHERE THE BROKER IS: --broker URL or --function NAME (one of). On the command
line they win over the environment, and SHOP_TOKEN_BROKER wins over
SHOP_TOKEN_FUNCTION. --broker https://… is signed with SigV4 from the standard
AWS environment; plain http:// goes only to a loopback host (broker-local).
SHOP_TOKEN_BEARER_TOKEN in the environment sends a bearer token to --broker
instead of SigV4 (broker-local --allow-remote).

EXIT CODES:
  0  success
  2  usage error, or the broker's invalid_request
  3  not_installed: the shop has no valid installation
  4  addon_suspended
  5  throttled: rate_limited, token_cap_reached, or the API's 429/423 past --max-wait
  6  upstream_rejected: the platform refused to issue a token
  7  unavailable: upstream_unavailable, store_unavailable, broker or API unreachable
  8  unauthorized: the broker refused this caller (bearer token, IAM)
  9  another error code from the broker
  10 the API answered, but not 2xx (call; the body is still printed)
Errors are printed on stderr as {\"error\":{\"code\",\"message\",…}}.";

/// shop-token: Shoptet and Shoprenter API tokens from shop-token-broker
#[derive(Debug, Parser)]
#[command(
    name = "shop-token",
    version,
    after_help = AFTER_HELP,
    arg_required_else_help = true,
    max_term_width = 100
)]
pub struct Cli {
    /// The broker: broker-local (http://127.0.0.1:8787) or the stack's HTTP API (https://…)
    #[arg(long, global = true, value_name = "URL", env = "SHOP_TOKEN_BROKER")]
    broker: Option<String>,
    /// The token-vendor function, invoked directly with the standard AWS environment (name or ARN)
    #[arg(long, global = true, value_name = "NAME", env = "SHOP_TOKEN_FUNCTION")]
    function: Option<String>,
    #[command(subcommand)]
    command: Verb,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// Prints the token vendor's answer (JSON) on stdout
    Token {
        /// The shop's platform
        #[arg(value_parser = platform_parser())]
        platform: Platform,
        /// An eshopId (shoptet) or a shop name (shoprenter)
        shop: String,
        /// The least life the token must have left
        #[arg(long, value_name = "SECONDS", value_parser = seconds)]
        min_ttl: Option<Duration>,
    },
    /// Calls the shop's API with a vended token; prints the response body on stdout
    #[command(long_about = "\
Calls the shop's API (path relative to its API base URL, e.g. /eshop) with a
vended token: a refused token is replaced and the call retried once, 429 and
423 are waited out for up to --max-wait, at most 3 requests in flight per
Shoptet token and 3 per second per Shoprenter shop. Prints the response body
on stdout.")]
    Call {
        /// The shop's platform
        #[arg(value_parser = platform_parser())]
        platform: Platform,
        /// An eshopId (shoptet) or a shop name (shoprenter)
        shop: String,
        /// GET, POST, PUT, PATCH, DELETE, … (any case)
        #[arg(value_parser = method)]
        method: Method,
        /// Relative to the shop's API base URL, e.g. /eshop
        path: String,
        /// A JSON request body
        #[arg(long, value_name = "JSON", value_parser = json)]
        data: Option<serde_json::Value>,
        /// How long to wait out 429 and 423 answers
        #[arg(long, value_name = "SECONDS", value_parser = seconds, default_value = "10")]
        max_wait: Duration,
    },
    /// Prints a shell completion script on stdout
    #[command(
        after_help = "e.g. shop-token completions bash > ~/.local/share/bash-completion/completions/shop-token"
    )]
    Completions {
        /// The shell
        shell: Shell,
    },
}

/// Where the broker is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerAt {
    Url(String),
    Function(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Token {
        shop: Shop,
        min_ttl: Option<Duration>,
    },
    Call {
        shop: Shop,
        method: Method,
        path: String,
        data: Option<serde_json::Value>,
        max_wait: Duration,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Args {
    pub command: Command,
    pub broker: BrokerAt,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Parsed {
    Run(Args),
    /// `--help`, `--version`, or no arguments: [`show`] it, exit 0.
    Show(clap::Error),
    Completions(Shell),
}

impl Args {
    /// Reads the command line (without the program's name); the broker's
    /// variables come from the environment. `Err` is a usage error's message.
    pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Parsed, String> {
        parse_with(Cli::command(), args)
    }
}

/// Prints what `--help`, `--version` or no arguments ask for on stdout
/// (colored on a terminal).
pub fn show(shown: &clap::Error) {
    if shown.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        // clap prints this one on stderr, as an error.
        let _ = Cli::command().print_help();
    } else {
        let _ = shown.print();
    }
}

/// The completion script for `shell`.
pub fn completions(shell: Shell) -> Vec<u8> {
    // Into memory: clap_complete panics when its writer fails (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "shop-token", &mut script);
    script
}

fn parse_with(
    command: clap::Command,
    args: impl IntoIterator<Item = OsString>,
) -> Result<Parsed, String> {
    let program = std::iter::once(OsString::from("shop-token"));
    let matches = match command.try_get_matches_from(program.chain(args)) {
        Ok(matches) => matches,
        Err(error) => return shown_or_usage(error),
    };
    let cli = Cli::from_arg_matches(&matches).map_err(|error| usage_message(&error))?;
    let (platform, shop, command) = match cli.command {
        Verb::Completions { shell } => return Ok(Parsed::Completions(shell)),
        Verb::Token {
            platform,
            shop,
            min_ttl,
        } => (platform, shop, Partial::Token { min_ttl }),
        Verb::Call {
            platform,
            shop,
            method,
            path,
            data,
            max_wait,
        } => (
            platform,
            shop,
            Partial::Call {
                method,
                path,
                data,
                max_wait,
            },
        ),
    };
    let broker = broker_at(&matches, cli.broker, cli.function)?;
    let shop = Shop::new(platform, &shop).map_err(|error| error.to_string())?;
    let command = match command {
        Partial::Token { min_ttl } => Command::Token { shop, min_ttl },
        Partial::Call {
            method,
            path,
            data,
            max_wait,
        } => Command::Call {
            shop,
            method,
            path,
            data,
            max_wait,
        },
    };
    Ok(Parsed::Run(Args { command, broker }))
}

/// A command before its shop is checked.
enum Partial {
    Token {
        min_ttl: Option<Duration>,
    },
    Call {
        method: Method,
        path: String,
        data: Option<serde_json::Value>,
        max_wait: Duration,
    },
}

/// `--broker` or `--function` from the command line, else
/// `SHOP_TOKEN_BROKER`, else `SHOP_TOKEN_FUNCTION` (empty variables count as
/// unset).
fn broker_at(
    matches: &ArgMatches,
    broker: Option<String>,
    function: Option<String>,
) -> Result<BrokerAt, String> {
    let from_line = |id: &str| {
        matches!(
            subcommand_matches(matches).value_source(id),
            Some(ValueSource::CommandLine)
        )
    };
    let (broker_on_line, function_on_line) = (from_line("broker"), from_line("function"));
    let broker = broker.filter(|url| broker_on_line || !url.is_empty());
    let function = function.filter(|name| function_on_line || !name.is_empty());
    match (broker, function) {
        _ if broker_on_line && function_on_line => {
            Err("give --broker or --function, not both".into())
        }
        (Some(url), _) if broker_on_line => Ok(BrokerAt::Url(url)),
        (_, Some(name)) if function_on_line => Ok(BrokerAt::Function(name)),
        (Some(url), _) => Ok(BrokerAt::Url(url)),
        (None, Some(name)) => Ok(BrokerAt::Function(name)),
        (None, None) => Err(
            "where is the broker? --broker URL or --function NAME (or SHOP_TOKEN_BROKER / SHOP_TOKEN_FUNCTION)"
                .into(),
        ),
    }
}

/// The matches of the subcommand given, which hold the global options.
fn subcommand_matches(matches: &ArgMatches) -> &ArgMatches {
    matches.subcommand().map_or(matches, |(_, matches)| matches)
}

/// Help and version are shown; anything else is a usage error.
fn shown_or_usage(error: clap::Error) -> Result<Parsed, String> {
    match error.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => Ok(Parsed::Show(error)),
        _ => Err(usage_message(&error)),
    }
}

/// clap's error on one line, without its `error: ` prefix and its pointer
/// to `--help` (the caller adds its own), but with its tip and usage.
fn usage_message(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let parts: Vec<String> = rendered
        .split("\n\n")
        .map(|part| part.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|part| !part.is_empty() && !part.starts_with("For more information"))
        .map(|part| match part.strip_prefix("error: ") {
            Some(message) => message.to_owned(),
            None => part.replacen("Usage: ", "usage: ", 1),
        })
        .collect();
    parts.join("; ")
}

fn platform_parser() -> impl TypedValueParser<Value = Platform> {
    PossibleValuesParser::new(Platform::ALL.map(Platform::as_str)).map(|name| {
        name.parse::<Platform>()
            .expect("one of the possible values")
    })
}

fn seconds(value: &str) -> Result<Duration, String> {
    value
        .parse()
        .map(Duration::from_secs)
        .map_err(|_| "takes whole seconds".to_owned())
}

fn method(value: &str) -> Result<Method, String> {
    Method::from_bytes(value.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("{value} is not an HTTP method"))
}

fn json(value: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(value).map_err(|_| "takes a JSON document".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `args` with the broker's variables read from `env` only (the
    /// real variables renamed to ones no test sets).
    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Parsed, String> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let unique = format!(
            "SHOP_TOKEN_ARGS_TEST_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut command = Cli::command();
        for (id, variable) in [
            ("broker", "SHOP_TOKEN_BROKER"),
            ("function", "SHOP_TOKEN_FUNCTION"),
        ] {
            // clap takes a variable's name as `&'static str`.
            let renamed: &'static str = format!("{unique}_{variable}").leak();
            if let Some((_, value)) = env.iter().find(|(name, _)| *name == variable) {
                // SAFETY: a variable of this test alone, read by it alone.
                unsafe { std::env::set_var(renamed, value) };
            }
            command = command.mut_arg(id, |arg| arg.env(renamed));
        }
        parse_with(command, args.iter().map(OsString::from))
    }

    fn run(args: &[&str], env: &[(&str, &str)]) -> Args {
        match parse(args, env) {
            Ok(Parsed::Run(args)) => args,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_token_command_with_the_broker_given_on_the_line() {
        let args = run(
            &[
                "token",
                "shoptet",
                "222651",
                "--min-ttl",
                "120",
                "--broker",
                "http://127.0.0.1:8787",
            ],
            &[("SHOP_TOKEN_FUNCTION", "ignored")],
        );
        assert_eq!(args.broker, BrokerAt::Url("http://127.0.0.1:8787".into()));
        assert_eq!(
            args.command,
            Command::Token {
                shop: Shop::shoptet(222651).unwrap(),
                min_ttl: Some(Duration::from_secs(120))
            }
        );
        // Before the verb too.
        let args = run(
            &["--function", "vendor", "token", "shoptet", "1"],
            &[("SHOP_TOKEN_BROKER", "http://127.0.0.1:8787")],
        );
        assert_eq!(args.broker, BrokerAt::Function("vendor".into()));
    }

    #[test]
    fn a_call_command_with_the_function_from_the_environment() {
        let args = run(
            &[
                "call",
                "shoprenter",
                "demo-shop",
                "post",
                "/products",
                "--data={\"a\":1}",
            ],
            &[("SHOP_TOKEN_FUNCTION", "vendor")],
        );
        assert_eq!(args.broker, BrokerAt::Function("vendor".into()));
        assert_eq!(
            args.command,
            Command::Call {
                shop: Shop::shoprenter("demo-shop").unwrap(),
                method: Method::POST,
                path: "/products".into(),
                data: Some(serde_json::json!({"a": 1})),
                max_wait: Duration::from_secs(10),
            }
        );
    }

    #[test]
    fn the_brokers_url_wins_over_the_function_and_empty_variables_are_unset() {
        let both = [
            ("SHOP_TOKEN_BROKER", "http://127.0.0.1:8787"),
            ("SHOP_TOKEN_FUNCTION", "vendor"),
        ];
        let args = run(&["token", "shoptet", "1"], &both);
        assert_eq!(args.broker, BrokerAt::Url("http://127.0.0.1:8787".into()));
        let empty_url = [("SHOP_TOKEN_BROKER", ""), ("SHOP_TOKEN_FUNCTION", "vendor")];
        let args = run(&["token", "shoptet", "1"], &empty_url);
        assert_eq!(args.broker, BrokerAt::Function("vendor".into()));
    }

    #[test]
    fn mistakes_are_named() {
        let broker = ("SHOP_TOKEN_BROKER", "http://127.0.0.1:8787");
        for (args, env, expected) in [
            (
                &["token", "shoptet", "1"][..],
                &[][..],
                "where is the broker",
            ),
            (
                &["token", "shoptet", "1", "--broker", "a", "--function", "b"],
                &[],
                "not both",
            ),
            (
                &["token", "shopify", "1"],
                &[broker],
                "possible values: shoptet, shoprenter",
            ),
            (&["token", "shoptet", "01"], &[broker], "eshopId"),
            (
                &["token", "shoptet", "1", "--min-ttl", "soon"],
                &[broker],
                "whole seconds",
            ),
            (
                &["call", "shoptet", "1", "GET", "/eshop", "--data", "{"],
                &[broker],
                "JSON",
            ),
            (&["call", "shoptet", "1", "GET"], &[broker], "<PATH>"),
            (
                &["call", "shoptet", "1", "G T", "/eshop"],
                &[broker],
                "not an HTTP method",
            ),
            (
                &["token", "shoptet", "1", "--data", "{}"],
                &[broker],
                "unexpected argument '--data'",
            ),
            (
                &["token", "shoptet", "1", "--verbose"],
                &[broker],
                "unexpected argument '--verbose'",
            ),
            (
                &["tokens", "shoptet", "1"],
                &[broker],
                "unrecognized subcommand",
            ),
        ] {
            let error = parse(args, env).unwrap_err();
            assert!(error.contains(expected), "{args:?}: {error}");
            assert!(!error.contains('\n'), "{args:?}: {error}");
        }
    }

    #[test]
    fn help_version_and_no_arguments_are_shown() {
        for args in [
            &["--help"][..],
            &["-h"],
            &[],
            &["token", "--help"],
            &["--version"],
        ] {
            assert!(matches!(parse(args, &[]), Ok(Parsed::Show(_))), "{args:?}");
        }
        let shown = |args: &[&str]| match parse(args, &[]) {
            Ok(Parsed::Show(shown)) => shown.render().to_string(),
            other => panic!("{args:?}: {other:?}"),
        };
        assert!(shown(&["--help"]).contains("EXIT CODES"));
        assert!(shown(&["-h"]).contains("SHOP_TOKEN_BEARER_TOKEN"));
        assert!(shown(&["--version"]).contains(env!("CARGO_PKG_VERSION")));
    }

    #[test]
    fn completions_need_no_broker() {
        assert!(matches!(
            parse(&["completions", "bash"], &[]),
            Ok(Parsed::Completions(Shell::Bash))
        ));
        let script = String::from_utf8(completions(Shell::Zsh)).unwrap();
        assert!(script.contains("shop-token") && script.contains("shoprenter"));
    }
}
