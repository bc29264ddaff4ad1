//! Command-line options of the local server.

use broker_local::cli::value;
use std::net::SocketAddr;
use std::path::PathBuf;

pub const USAGE: &str = "\
Usage: broker-local [OPTIONS]

Runs the install callback and the token vendor on one port, with the routes
of the API Gateway stack. Without Shoptet/Shoprenter configuration in the
environment it starts sandbox platforms (the platform double) in-process.

Options:
  --listen ADDR        address to bind (default 127.0.0.1:8787)
  --store embedded|aws where to keep installations and tokens (default embedded)
  --db PATH            SQLite file of the embedded store (default broker-local.db)
  --allow-remote       allow a non-loopback --listen; requires BROKER_BEARER_TOKEN
                       (>= 32 characters), then demanded on the token and
                       operator routes as `Authorization: Bearer <token>` (the
                       routes the platforms call and /openapi.yaml stay public)
  --events-url URL     deliver every lifecycle event to URL as well, signed
                       (docs/events.md); events are always printed
  --events-secret TEXT the signing secret (default: BROKER_EVENTS_SECRET, else
                       a new one kept in <db>.events-secret)
  -h, --help           this text

Environment: the variables of both functions (see README), plus
SHOPTET_CLIENT_SECRET, SHOPTET_WEBHOOK_KEY and SHOPRENTER_CLIENT_SECRET (plain
values, read with the embedded store or the sandbox; otherwise --store aws reads
them from Secrets Manager, as the Lambdas do).";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Embedded,
    Aws,
}

#[derive(Debug, Clone)]
pub struct Args {
    pub listen: SocketAddr,
    pub store: Store,
    pub db: PathBuf,
    pub allow_remote: bool,
    /// Where events are delivered besides stdout (embedded store).
    pub events_url: Option<String>,
    pub events_secret: Option<String>,
}

impl Args {
    pub fn parse(args: impl Iterator<Item = String>) -> Result<Option<Self>, String> {
        use lexopt::Arg::{Long, Short, Value};

        let mut parsed = Args {
            listen: "127.0.0.1:8787".parse().expect("a valid default address"),
            store: Store::Embedded,
            db: PathBuf::from("broker-local.db"),
            allow_remote: false,
            events_url: None,
            events_secret: None,
        };
        let mut parser = lexopt::Parser::from_args(args);
        while let Some(arg) = parser.next().map_err(|error| error.to_string())? {
            match arg {
                Short('h') | Long("help") => return Ok(None),
                Long("listen") => {
                    parsed.listen = value(&mut parser, "--listen")?
                        .parse()
                        .map_err(|_| "--listen takes an address like 127.0.0.1:8787")?
                }
                Long("store") => {
                    parsed.store = match value(&mut parser, "--store")?.as_str() {
                        "embedded" => Store::Embedded,
                        "aws" => Store::Aws,
                        _ => return Err("--store is embedded or aws".into()),
                    }
                }
                Long("db") => parsed.db = PathBuf::from(value(&mut parser, "--db")?),
                Long("events-url") => parsed.events_url = Some(value(&mut parser, "--events-url")?),
                Long("events-secret") => {
                    parsed.events_secret = Some(value(&mut parser, "--events-secret")?)
                }
                Long("allow-remote") => parsed.allow_remote = true,
                Long(other) => return Err(format!("unknown option --{other}")),
                Short(other) => return Err(format!("unknown option -{other}")),
                Value(other) => {
                    return Err(format!("unexpected argument {}", other.to_string_lossy()));
                }
            }
        }
        if !parsed.listen.ip().is_loopback() && !parsed.allow_remote {
            return Err(format!(
                "{} is not a loopback address: pass --allow-remote (and set BROKER_BEARER_TOKEN) to expose the broker",
                parsed.listen
            ));
        }
        Ok(Some(parsed))
    }
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
    fn defaults() {
        let args = parsed(&[]);
        assert_eq!(args.listen, "127.0.0.1:8787".parse().unwrap());
        assert_eq!(args.store, Store::Embedded);
        assert_eq!(args.db, PathBuf::from("broker-local.db"));
        assert!(!args.allow_remote);
    }

    #[test]
    fn help() {
        assert!(parse(&["--help"]).unwrap().is_none());
        assert!(parse(&["-h"]).unwrap().is_none());
        assert!(parse(&["--store", "aws", "-h"]).unwrap().is_none());
    }

    #[test]
    fn listen() {
        let args = parsed(&["--listen", "127.0.0.1:0"]);
        assert_eq!(args.listen, "127.0.0.1:0".parse().unwrap());
        let args = parsed(&["--listen=[::1]:9000"]);
        assert_eq!(args.listen, "[::1]:9000".parse().unwrap());
        assert_eq!(
            parse(&["--listen", "localhost"]).unwrap_err(),
            "--listen takes an address like 127.0.0.1:8787"
        );
    }

    #[test]
    fn store() {
        assert_eq!(parsed(&["--store", "aws"]).store, Store::Aws);
        assert_eq!(parsed(&["--store=embedded"]).store, Store::Embedded);
        assert_eq!(
            parse(&["--store", "s3"]).unwrap_err(),
            "--store is embedded or aws"
        );
    }

    #[test]
    fn db() {
        assert_eq!(parsed(&["--db", "x.db"]).db, PathBuf::from("x.db"));
        assert_eq!(parsed(&["--db=/tmp/y.db"]).db, PathBuf::from("/tmp/y.db"));
    }

    #[test]
    fn allow_remote() {
        let args = parsed(&["--allow-remote", "--listen", "0.0.0.0:8787"]);
        assert!(args.allow_remote);
        assert_eq!(args.listen, "0.0.0.0:8787".parse().unwrap());
        assert!(parsed(&["--allow-remote"]).allow_remote);
    }

    #[test]
    fn events() {
        let args = parsed(&["--events-url", "http://127.0.0.1:9/e", "--events-secret=s"]);
        assert_eq!(args.events_url.as_deref(), Some("http://127.0.0.1:9/e"));
        assert_eq!(args.events_secret.as_deref(), Some("s"));
        assert_eq!(parsed(&[]).events_url, None);
    }

    #[test]
    fn a_missing_value_is_named() {
        assert_eq!(parse(&["--listen"]).unwrap_err(), "--listen needs a value");
        assert_eq!(parse(&["--store"]).unwrap_err(), "--store needs a value");
        assert_eq!(parse(&["--db"]).unwrap_err(), "--db needs a value");
    }

    #[test]
    fn unknown_options_and_arguments_are_refused() {
        assert_eq!(
            parse(&["--port", "1"]).unwrap_err(),
            "unknown option --port"
        );
        assert_eq!(parse(&["-x"]).unwrap_err(), "unknown option -x");
        assert_eq!(parse(&["serve"]).unwrap_err(), "unexpected argument serve");
        assert!(parse(&["--allow-remote=yes"]).is_err());
    }

    #[test]
    fn a_non_loopback_address_needs_allow_remote() {
        let problem = parse(&["--listen", "0.0.0.0:8787"]).unwrap_err();
        assert!(problem.contains("not a loopback address"), "{problem}");
        assert!(problem.contains("--allow-remote"), "{problem}");
    }
}
