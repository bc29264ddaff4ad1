use broker_runtime::env::{ProcessEnv, or_exit};
use broker_runtime::faults;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use shoptet_webhooks::{AwsWebhooksConfig, Invocation, build_on_aws};

#[tokio::main]
async fn main() -> Result<(), Error> {
    broker_runtime::logging::init();
    // First: every client below is built on this one TLS configuration.
    or_exit(broker_runtime::tls::init(&ProcessEnv));
    let config = or_exit(AwsWebhooksConfig::from_env(&ProcessEnv));
    let aws = broker_aws::sdk_http::load_sdk_config().await;
    let worker = build_on_aws(config, &aws);
    faults::count_panics(worker.metrics().clone());
    let worker = &worker;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<Invocation>| async move {
            let deadline = faults::lambda_deadline(event.context.deadline);
            // Boxed: the handler is a deep future, kept off the stack.
            let work = Box::pin(worker.handle(event.payload));
            faults::watch_deadline(worker.metrics(), deadline, work)
                .await
                .map_err(Error::from)
        },
    ))
    .await
}
