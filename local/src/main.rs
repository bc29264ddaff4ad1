//! `broker-local`: the broker on one loopback port, no AWS account needed.

mod args;
mod sandbox;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use args::{Args, Store, USAGE};
use broker_aws::config as store_config;
use broker_domain::bus::EventBus;
use broker_domain::model::ShoprenterCredentials;
use broker_domain::secret::{ClientSecret, EventSigningSecret, WebhookKey};
use broker_domain::storage::Stores;
use broker_events::{EndpointUrl, WebhookSender};
use broker_local::eshop_webhooks::{LocalBus, LocalWebhooks};
use broker_local::events::Delivery;
use broker_local::server::{self, Broker};
use broker_runtime::env::{self, ConfigError};
use broker_sqlite::SqliteStore;
use install_callback::{AwsInstallConfig, InstallCallback, InstallConfig, InstallSecrets};
use sandbox::Sandbox;
use token_vendor::{AwsVendorConfig, VendHandler, VendorConfig};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(problem) => {
            eprintln!("broker-local: {problem}\n\n{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    broker_runtime::logging::init();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(problem) => {
            eprintln!("broker-local: {problem}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let bearer_token = if args.allow_remote {
        let token = std::env::var("BROKER_BEARER_TOKEN").unwrap_or_default();
        if token.len() < 32 {
            return Err(
                "--allow-remote needs BROKER_BEARER_TOKEN of at least 32 characters".into(),
            );
        }
        Some(token)
    } else {
        None
    };
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|error| format!("cannot listen on {}: {error}", args.listen))?;
    let broker_url = format!(
        "http://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    // Sandbox platforms unless the environment configures a real platform.
    let configured = |name| std::env::var(name).is_ok_and(|value| !value.trim().is_empty());
    let sandbox = if configured("SHOPTET_OAUTH_URL") || configured("SHOPRENTER_CLIENT_ID") {
        None
    } else {
        Some(Sandbox::start(&broker_url).await)
    };
    let embedded = args.store == Store::Embedded;
    let env = |name: &str| {
        // The sandbox's choice of e-shop webhook events is a default only.
        let process = || std::env::var(name).ok();
        if name == "SHOPTET_WEBHOOK_EVENTS"
            && let Some(events) = process()
        {
            return Some(events);
        }
        sandbox
            .as_ref()
            .and_then(|sandbox| sandbox.env(name))
            .or_else(process)
    };
    // Secrets as plain variables serve the embedded store, and the sandbox
    // on either store (no Secrets Manager holds the double's secrets);
    // otherwise the AWS store reads them from Secrets Manager as the Lambdas do.
    let plain = if embedded || sandbox.is_some() {
        Some(plain_secrets(&env).map_err(|e| e.to_string())?)
    } else {
        None
    };
    let mut install_config = InstallConfig::from_env(&env).map_err(|e| e.to_string())?;
    let mut vendor_config = VendorConfig::from_env(&env).map_err(|e| e.to_string())?;
    // One process, two vendor cores (one per handler, as on AWS): what the
    // install handler records (an uninstall, a suspension) must reach the
    // very next vend, not a warm Lambda's L1 trust period later. Locally
    // every vend reads L2, which costs one SQLite (or DynamoDB) read.
    install_config.timing.l1_trust = Duration::ZERO;
    vendor_config.timing.l1_trust = Duration::ZERO;

    println!("shop-token-broker local server: {broker_url}");
    match (args.store, plain) {
        (Store::Embedded, secrets) => {
            let secrets = secrets.unwrap_or_default();
            let store = SqliteStore::open(&args.db).map_err(|e| e.to_string())?;
            println!("store: embedded SQLite at {}", args.db.display());
            let app_credentials = secrets.shoprenter_app.clone();
            let delivery = events_delivery(&args)?.map(Arc::new);
            let bus: Arc<dyn EventBus> = Arc::new(LocalBus {
                delivery: delivery.clone(),
            });
            let webhooks = LocalWebhooks::from_env(
                &env,
                &vendor_config,
                VendHandler::new(
                    vendor_config.clone(),
                    app_credentials.clone(),
                    Stores::all(store.clone()),
                ),
                bus.clone(),
            )?;
            match webhooks.map(Arc::new) {
                Some(webhooks) => {
                    tokio::spawn(broker_local::events::run(
                        store.clone(),
                        delivery,
                        webhooks.clone(),
                    ));
                    tokio::spawn(webhooks.reconcile_forever());
                }
                None => {
                    tokio::spawn(broker_local::events::run(
                        store.clone(),
                        delivery,
                        Arc::new(()),
                    ));
                }
            }
            let broker = Broker {
                install: InstallCallback::new(install_config, secrets, Stores::all(store.clone()))
                    .with_eshop_webhooks(bus),
                vendor: VendHandler::new(vendor_config, app_credentials, Stores::all(store)),
                bearer_token,
            };
            announce(sandbox.as_ref(), &broker_url);
            broker
                .without_metrics()
                .serve(listener)
                .await
                .map_err(|e| e.to_string())
        }
        (Store::Aws, secrets) => {
            let aws = aws_config::load_from_env().await;
            let stores = store_config::aws_store_names(&env).map_err(|e| e.to_string())?;
            println!("store: AWS (table {})", stores.token_table);
            if args.events_url.is_some() {
                return Err("--events-url needs the embedded store: with --store aws, \
                     the stack's publisher delivers events from the registry's stream"
                    .into());
            }
            let (install, vendor) = match secrets {
                Some(secrets) => {
                    let app_credentials = secrets.shoprenter_app.clone();
                    (
                        InstallCallback::new(install_config, secrets, stores.open(&aws)),
                        VendHandler::new(vendor_config, app_credentials, stores.open(&aws)),
                    )
                }
                None => {
                    let aws_install =
                        AwsInstallConfig::from_env(&env).map_err(|e| e.to_string())?;
                    let aws_vendor = AwsVendorConfig::from_env(&env).map_err(|e| e.to_string())?;
                    (
                        install_callback::build_on_aws(
                            AwsInstallConfig {
                                install: install_config,
                                ..aws_install
                            },
                            &aws,
                        ),
                        token_vendor::build_on_aws(
                            AwsVendorConfig {
                                vendor: vendor_config,
                                ..aws_vendor
                            },
                            &aws,
                        ),
                    )
                }
            };
            let broker = Broker {
                install,
                vendor,
                bearer_token,
            };
            announce(sandbox.as_ref(), &broker_url);
            broker
                .without_metrics()
                .serve(listener)
                .await
                .map_err(|e| e.to_string())
        }
    }
}

/// `--events-url` with its signing secret: `--events-secret`, else
/// `BROKER_EVENTS_SECRET`, else one made now and kept beside the database
/// (owner-only), so a restart signs with the same secret.
fn events_delivery(args: &Args) -> Result<Option<Delivery>, String> {
    let Some(url) = &args.events_url else {
        println!("events: printed here as `event: <json>` (add --events-url URL to deliver them)");
        return Ok(None);
    };
    let url = EndpointUrl::parse(url).map_err(|problem| format!("--events-url {problem}"))?;
    let given = args
        .events_secret
        .clone()
        .or_else(|| std::env::var("BROKER_EVENTS_SECRET").ok())
        .filter(|secret| !secret.is_empty());
    let secret = match given {
        Some(secret) => secret,
        None => {
            let path = std::path::PathBuf::from(format!("{}.events-secret", args.db.display()));
            let secret = kept_secret(&path)?;
            println!("events: signing secret kept in {}", path.display());
            secret
        }
    };
    println!(
        "events: printed here and delivered to {}, signed (docs/events.md)",
        url.as_str()
    );
    let client = WebhookSender::client(reqwest::Client::builder());
    Ok(Some(Delivery {
        sender: WebhookSender::new(client, url),
        secret: EventSigningSecret::new(secret),
    }))
}

/// The secret in `path`, or a new random one written there (mode 0600).
fn kept_secret(path: &std::path::Path) -> Result<String, String> {
    if let Ok(secret) = std::fs::read_to_string(path) {
        return Ok(secret.trim().to_owned());
    }
    let secret = hex::encode(rand::random::<[u8; 32]>());
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(
        &mut options
            .open(path)
            .map_err(|e| format!("cannot keep the events secret in {}: {e}", path.display()))?,
        secret.as_bytes(),
    )
    .map_err(|e| e.to_string())?;
    Ok(secret)
}

fn announce(sandbox: Option<&Sandbox>, broker_url: &str) {
    println!(
        "API description (OpenAPI 3.1): {broker_url}{}",
        server::OPENAPI_PATH
    );
    if let Some(sandbox) = sandbox {
        println!("{}", sandbox.try_it(broker_url));
    }
    println!("ready");
}

/// The handler's secrets from plain variables: `SHOPTET_CLIENT_SECRET`,
/// `SHOPTET_WEBHOOK_KEY` (the raw key) and the Shoprenter app's.
fn plain_secrets(env: &impl env::Env) -> Result<InstallSecrets, ConfigError> {
    Ok(InstallSecrets {
        shoptet_client_secret: env::optional(env, "SHOPTET_CLIENT_SECRET")
            .map(ClientSecret::new)
            .into(),
        webhook_key: env::optional(env, "SHOPTET_WEBHOOK_KEY")
            .map(WebhookKey::new)
            .into(),
        shoprenter_app: shoprenter_app_credentials(env)?.into(),
    })
}

/// Locally the app's secret is a plain variable; on AWS it lives in Secrets Manager.
fn shoprenter_app_credentials(
    env: &impl env::Env,
) -> Result<Option<ShoprenterCredentials>, ConfigError> {
    Ok(
        env::together(env, "SHOPRENTER_CLIENT_ID", "SHOPRENTER_CLIENT_SECRET")?.map(
            |(client_id, secret)| ShoprenterCredentials {
                client_id,
                client_secret: ClientSecret::new(secret),
            },
        ),
    )
}
