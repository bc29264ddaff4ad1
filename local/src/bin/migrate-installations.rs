//! `migrate-installations`: copies every installation from one AWS
//! installation store to the other. Wiring only: see
//! [`broker_local::migrate`].

use std::process::ExitCode;

use broker_local::migrate::{Args, USAGE, run};
use broker_runtime::env::ProcessEnv;

#[tokio::main]
async fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(problem) => {
            eprintln!("migrate-installations: {problem}\n\n{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    // No log subscriber: nothing but the lines `run` prints reaches the
    // terminal, and those name no secret.
    match run(&args, &ProcessEnv).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(problem) => {
            eprintln!("migrate-installations: {problem}");
            ExitCode::FAILURE
        }
    }
}
