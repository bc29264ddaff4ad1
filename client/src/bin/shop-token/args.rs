//! The command line: what to do, for which shop, through which broker.

use std::time::Duration;

use shop_token_client::{Method, Shop};

pub const USAGE: &str = "\
shop-token: Shoptet and Shoprenter API tokens from shop-token-broker

USAGE:
  shop-token token <platform> <shop> [--min-ttl SECONDS]
      Prints the token vendor's answer (JSON) on stdout.
  shop-token call <platform> <shop> <METHOD> <path> [--data JSON] [--max-wait SECONDS]
      Calls the shop's API (path relative to its API base URL, e.g. /eshop)
      with a vended token: a refused token is replaced and the call retried
      once, 429 and 423 are waited out for up to --max-wait (default 10),
      at most 3 requests in flight per Shoptet token and 3 per second per
      Shoprenter shop. Prints the response body on stdout.

  <platform> is shoptet (<shop> an eshopId) or shoprenter (<shop> a shop name).

WHERE THE BROKER IS (one of):
  --broker URL       broker-local (http://127.0.0.1:8787), or the stack's
                     HTTP API (https://…; requests signed with SigV4 from the
                     standard AWS environment). Env: SHOP_TOKEN_BROKER
  --function NAME    the token-vendor function, invoked directly with the
                     standard AWS environment. Env: SHOP_TOKEN_FUNCTION
  SHOP_TOKEN_BEARER_TOKEN in the environment sends a bearer token to
  --broker instead of SigV4 (broker-local --allow-remote).

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
Errors are printed on stderr as {\"error\":{\"code\",\"message\",…}}.
";

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

impl Args {
    /// `Ok(None)` for `--help`. `env` reads the environment.
    pub fn parse(
        args: impl Iterator<Item = String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, String> {
        use lexopt::Arg::{Long, Short, Value};

        let mut positional = Vec::new();
        let (mut broker, mut function) = (None, None);
        let (mut min_ttl, mut data, mut max_wait) = (None, None, None);
        let mut parser = lexopt::Parser::from_args(args);
        while let Some(arg) = parser.next().map_err(|error| error.to_string())? {
            match arg {
                Short('h') | Long("help") => return Ok(None),
                Long("broker") => broker = Some(value(&mut parser, "--broker")?),
                Long("function") => function = Some(value(&mut parser, "--function")?),
                Long("min-ttl") => min_ttl = Some(seconds(&mut parser, "--min-ttl")?),
                Long("max-wait") => max_wait = Some(seconds(&mut parser, "--max-wait")?),
                Long("data") => {
                    let text = value(&mut parser, "--data")?;
                    data = Some(
                        serde_json::from_str(&text).map_err(|_| "--data takes a JSON document")?,
                    );
                }
                Long(other) => return Err(format!("unknown option --{other}")),
                Short(other) => return Err(format!("unknown option -{other}")),
                Value(value) => positional.push(
                    value
                        .into_string()
                        .map_err(|_| "arguments must be text".to_owned())?,
                ),
            }
        }

        if positional.is_empty() {
            return Ok(None);
        }
        let broker = match (broker, function) {
            (Some(_), Some(_)) => return Err("give --broker or --function, not both".into()),
            (Some(url), None) => BrokerAt::Url(url),
            (None, Some(name)) => BrokerAt::Function(name),
            (None, None) => match (env("SHOP_TOKEN_BROKER"), env("SHOP_TOKEN_FUNCTION")) {
                (Some(url), _) if !url.is_empty() => BrokerAt::Url(url),
                (_, Some(name)) if !name.is_empty() => BrokerAt::Function(name),
                _ => {
                    return Err(
                        "where is the broker? --broker URL or --function NAME (or SHOP_TOKEN_BROKER / SHOP_TOKEN_FUNCTION)"
                            .into(),
                    );
                }
            },
        };

        let command = match positional.as_slice() {
            [verb, platform, shop] if verb == "token" => {
                if data.is_some() || max_wait.is_some() {
                    return Err("--data and --max-wait belong to `call`".into());
                }
                Command::Token {
                    shop: shop_of(platform, shop)?,
                    min_ttl,
                }
            }
            [verb, platform, shop, method, path] if verb == "call" => {
                if min_ttl.is_some() {
                    return Err("--min-ttl belongs to `token`".into());
                }
                let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
                    .map_err(|_| format!("{method} is not an HTTP method"))?;
                Command::Call {
                    shop: shop_of(platform, shop)?,
                    method,
                    path: path.clone(),
                    data,
                    max_wait: max_wait.unwrap_or(shop_token_client::DEFAULT_MAX_WAIT),
                }
            }
            _ => return Err(
                "expected `token <platform> <shop>` or `call <platform> <shop> <METHOD> <path>`"
                    .into(),
            ),
        };
        Ok(Some(Args { command, broker }))
    }
}

fn shop_of(platform: &str, shop: &str) -> Result<Shop, String> {
    let platform = platform
        .parse()
        .map_err(|_| format!("{platform} is not a platform (shoptet or shoprenter)"))?;
    Shop::new(platform, shop).map_err(|error| error.to_string())
}

/// The value of the option just seen, as `--name VALUE` or `--name=VALUE`.
fn value(parser: &mut lexopt::Parser, name: &str) -> Result<String, String> {
    parser
        .value()
        .map_err(|_| format!("{name} needs a value"))?
        .into_string()
        .map_err(|_| format!("{name} takes text"))
}

fn seconds(parser: &mut lexopt::Parser, name: &str) -> Result<Duration, String> {
    value(parser, name)?
        .parse()
        .map(Duration::from_secs)
        .map_err(|_| format!("{name} takes whole seconds"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Option<Args>, String> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Args::parse(args.iter().map(|arg| arg.to_string()), |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn a_token_command_with_the_broker_given_on_the_line() {
        let args = parse(
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
        )
        .unwrap()
        .unwrap();
        assert_eq!(args.broker, BrokerAt::Url("http://127.0.0.1:8787".into()));
        assert_eq!(
            args.command,
            Command::Token {
                shop: Shop::shoptet(222651).unwrap(),
                min_ttl: Some(Duration::from_secs(120))
            }
        );
    }

    #[test]
    fn a_call_command_with_the_function_from_the_environment() {
        let args = parse(
            &[
                "call",
                "shoprenter",
                "demo-shop",
                "post",
                "/products",
                "--data={\"a\":1}",
            ],
            &[("SHOP_TOKEN_FUNCTION", "vendor")],
        )
        .unwrap()
        .unwrap();
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
            (&["token", "shopify", "1"], &[broker], "not a platform"),
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
            (&["call", "shoptet", "1", "GET"], &[broker], "expected"),
            (
                &["token", "shoptet", "1", "--data", "{}"],
                &[broker],
                "belong to `call`",
            ),
            (
                &["token", "shoptet", "1", "--verbose"],
                &[broker],
                "unknown option",
            ),
        ] {
            let error = parse(args, env).unwrap_err();
            assert!(error.contains(expected), "{args:?}: {error}");
        }
    }

    #[test]
    fn help_and_no_arguments_show_the_usage() {
        assert_eq!(parse(&["--help"], &[]), Ok(None));
        assert_eq!(parse(&[], &[("SHOP_TOKEN_BROKER", "x")]), Ok(None));
    }
}
