use broker_runtime::env::{ProcessEnv, or_exit};
use install_callback::{AwsInstallConfig, build_on_aws};
use lambda_http::{Error, Request, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    broker_runtime::logging::init();
    // First: every client below is built on this one TLS configuration.
    or_exit(broker_runtime::tls::init(&ProcessEnv));
    let config = or_exit(AwsInstallConfig::from_env(&ProcessEnv));
    // No network call here: credentials come from the environment, and the
    // secrets are read by the first request that needs them.
    let aws = broker_aws::sdk_http::load_sdk_config().await;
    let handler = build_on_aws(config, &aws);
    // A panic anywhere is a crash an alarm watches.
    broker_runtime::faults::count_panics(handler.metrics().clone());
    let handler = &handler;
    lambda_http::run(service_fn(move |request: Request| async move {
        Ok::<_, Error>(handler.handle(request).await)
    }))
    .await
}
