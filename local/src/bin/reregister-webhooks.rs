//! `reregister-webhooks`: registers the configured Shoptet e-shop webhooks
//! for every installation again. Wiring only: see
//! [`broker_local::reregister`].

use std::process::ExitCode;
use std::sync::Arc;

use broker_domain::bus::MemoryBus;
use broker_domain::storage::Stores;
use broker_local::eshop_webhooks::LocalWebhooks;
use broker_local::reregister::{Args, FunctionPages, LocalPages, Target, USAGE, run};
use broker_runtime::env::ProcessEnv;
use broker_sqlite::SqliteStore;
use token_vendor::{VendHandler, VendorConfig};

#[tokio::main]
async fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(problem) => {
            eprintln!("reregister-webhooks: {problem}\n\n{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    let out = &mut std::io::stdout();
    // No log subscriber: nothing but the lines `run` prints reaches the
    // terminal, and those name no secret.
    let result = match &args.target {
        Target::Function(function) => {
            let aws = broker_aws::sdk_http::load_sdk_config().await;
            let pages = FunctionPages {
                client: aws_sdk_lambda::Client::new(&aws),
                function: function.clone(),
            };
            run(&pages, &args.run, out).await
        }
        Target::Embedded(db) => match local_pages(db) {
            Ok(pages) => run(&pages, &args.run, out).await,
            Err(problem) => Err(problem),
        },
    };
    match result {
        Ok(summary) if summary.failed == 0 => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(problem) => {
            eprintln!("reregister-webhooks: {problem}");
            ExitCode::FAILURE
        }
    }
}

fn local_pages(
    db: &std::path::Path,
) -> Result<LocalPages<SqliteStore, SqliteStore, SqliteStore>, String> {
    let store = SqliteStore::open(db).map_err(|e| e.to_string())?;
    let config = VendorConfig::from_env(&ProcessEnv).map_err(|e| e.to_string())?;
    let vendor = VendHandler::new(config.clone(), None, Stores::all(store));
    let webhooks =
        LocalWebhooks::from_env(&ProcessEnv, &config, vendor, Arc::new(MemoryBus::default()))?
            .ok_or(
                "no e-shop webhooks configured: set SHOPTET_OAUTH_URL and SHOPTET_WEBHOOK_EVENTS",
            )?;
    Ok(LocalPages { webhooks })
}
