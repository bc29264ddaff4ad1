use broker_runtime::env::{ProcessEnv, or_exit};
use broker_runtime::faults;
use event_publisher::batch::Batch;
use event_publisher::{PublisherConfig, build_on_aws};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    broker_runtime::logging::init();
    // First: every client below is built on this one TLS configuration.
    or_exit(broker_runtime::tls::init(&ProcessEnv));
    let config = or_exit(PublisherConfig::from_env(&ProcessEnv));
    let aws = broker_aws::sdk_http::load_sdk_config().await;
    let publisher = build_on_aws(config, &aws);
    broker_runtime::faults::count_panics(publisher.metrics().clone());
    let publisher = &publisher;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Batch>| async move {
        let deadline = faults::lambda_deadline(event.context.deadline);
        let work = publisher.handle(event.payload);
        Ok::<_, Error>(faults::watch_deadline(publisher.metrics(), deadline, work).await)
    }))
    .await
}
