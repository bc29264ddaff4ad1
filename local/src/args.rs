//! Command-line options of the local server.

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
                       (>= 32 characters), then demanded on the token routes as
                       `Authorization: Bearer <token>`
  -h, --help           this text

Environment: the variables of both functions (see README), plus
SHOPTET_CLIENT_SECRET and SHOPRENTER_CLIENT_SECRET (plain values; on AWS they
come from Secrets Manager).";

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
}

impl Args {
    pub fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<Self>, String> {
        let mut parsed = Args {
            listen: "127.0.0.1:8787".parse().expect("a valid default address"),
            store: Store::Embedded,
            db: PathBuf::from("broker-local.db"),
            allow_remote: false,
        };
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
            match arg.as_str() {
                "-h" | "--help" => return Ok(None),
                "--listen" => {
                    parsed.listen = value("--listen")?
                        .parse()
                        .map_err(|_| "--listen takes an address like 127.0.0.1:8787")?
                }
                "--store" => {
                    parsed.store = match value("--store")?.as_str() {
                        "embedded" => Store::Embedded,
                        "aws" => Store::Aws,
                        _ => return Err("--store is embedded or aws".into()),
                    }
                }
                "--db" => parsed.db = PathBuf::from(value("--db")?),
                "--allow-remote" => parsed.allow_remote = true,
                other => return Err(format!("unknown option {other}")),
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
