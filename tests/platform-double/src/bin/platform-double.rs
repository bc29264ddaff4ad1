//! Runs a platform double by hand.
//!
//! ```text
//! platform-double [--port N] [--seed-shoptet ESHOP_ID]... [--shoprenter SHOP:CLIENT_ID:CLIENT_SECRET[:SCOPE,...]]...
//!                 [--webhook-url URL] [--webhook-key KEY]
//! ```
//! Prints the base URL, then one `shoptet-code <eshopId> <code>` line per
//! seeded e-shop, and serves until killed. With `--webhook-url`, the control
//! API (`POST /_double/shoptet/{eshopId}/uninstall`, …) delivers add-on
//! events there, signed with `--webhook-key`.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use platform_double::{DoubleConfig, PlatformDouble};

const USAGE: &str = "usage: platform-double [--port N] [--seed-shoptet ESHOP_ID]... \
                     [--shoprenter SHOP:CLIENT_ID:CLIENT_SECRET[:SCOPE,...]]... \
                     [--webhook-url URL] [--webhook-key KEY]";

#[tokio::main]
async fn main() -> ExitCode {
    let mut port = 0u16;
    let mut eshops = Vec::new();
    let mut shoprenter = Vec::new();
    let mut config = DoubleConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next();
        let parsed = match (flag.as_str(), value) {
            ("--port", Some(v)) => v.parse().map(|p| port = p).is_ok(),
            ("--seed-shoptet", Some(v)) => v.parse().map(|id: u64| eshops.push(id)).is_ok(),
            ("--shoprenter", Some(v)) if v.splitn(4, ':').count() >= 3 => {
                shoprenter.push(v);
                true
            }
            ("--webhook-url", Some(v)) => {
                config.shoptet_webhook_url = Some(v);
                true
            }
            ("--webhook-key", Some(v)) => {
                config.shoptet_webhook_key = Some(v);
                true
            }
            _ => false,
        };
        if !parsed {
            eprintln!("{USAGE}");
            return ExitCode::FAILURE;
        }
    }

    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let double = match PlatformDouble::start_on(addr, config).await {
        Ok(double) => double,
        Err(error) => {
            eprintln!("cannot listen on {addr}: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", double.base_url());
    for eshop_id in eshops {
        println!(
            "shoptet-code {eshop_id} {}",
            double.issue_install_code(eshop_id)
        );
    }
    for spec in &shoprenter {
        let parts: Vec<&str> = spec.splitn(4, ':').collect();
        let scopes: Vec<&str> = parts
            .get(3)
            .map(|s| s.split(',').filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        double.register_shoprenter_client(parts[0], parts[1], parts[2], &scopes);
    }
    std::future::pending::<()>().await;
    ExitCode::SUCCESS
}
