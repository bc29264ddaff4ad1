//! `shop-token`: tokens and API calls from the command line, for operators
//! and for scripts in any language. See `shop-token --help`.

mod args;
mod broker;
mod outcome;

use std::io::Write;
use std::process::ExitCode;

use shop_token_client::{ApiClient, ApiRequest, TokenClient, Transport};

use crate::args::{Args, Command, Parsed};
use crate::broker::Broker;
use crate::outcome::{Exit, Failure};

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args_os().skip(1)) {
        Ok(Parsed::Run(args)) => args,
        Ok(Parsed::Show(shown)) => {
            args::show(&shown);
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Completions(shell)) => {
            // A closed pipe (`| head`) is not an error of ours.
            let _ = std::io::stdout()
                .lock()
                .write_all(&args::completions(shell));
            return ExitCode::SUCCESS;
        }
        Err(problem) => {
            Failure::new("usage", format!("{problem} (see --help)")).print();
            return Exit::Usage.into();
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    runtime.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    let broker = match Broker::connect(&args.broker).await {
        Ok(broker) => broker,
        Err((exit, failure)) => {
            failure.print();
            return exit.into();
        }
    };
    match args.command {
        Command::Token { shop, min_ttl } => match broker.vend(&shop, min_ttl, None).await {
            Ok(answer) => {
                println!("{}", broker::answer_json(&answer));
                ExitCode::SUCCESS
            }
            Err(error) => {
                let (exit, failure) = outcome::of_token_error(&error);
                failure.print();
                exit.into()
            }
        },
        Command::Call {
            shop,
            method,
            path,
            data,
            max_wait,
        } => {
            let api = ApiClient::builder(TokenClient::new(broker))
                .max_wait(max_wait)
                .build();
            let mut request = ApiRequest::new(method, path);
            if let Some(data) = &data {
                request = request.json(data);
            }
            let result = match api {
                Ok(api) => api.send(&shop, request).await,
                Err(error) => Err(error),
            };
            match result {
                Ok(response) => {
                    let mut stdout = std::io::stdout().lock();
                    let _ = stdout.write_all(response.body());
                    let _ = stdout.flush();
                    if response.status().is_success() {
                        ExitCode::SUCCESS
                    } else {
                        let status = response.clone().error_for_status().unwrap_err();
                        Failure::new("api_status", status).print();
                        Exit::ApiStatus.into()
                    }
                }
                Err(error) => {
                    let (exit, failure) = outcome::of_api_error(&error);
                    failure.print();
                    exit.into()
                }
            }
        }
    }
}
