use broker_shared::config::{ProcessEnv, or_exit};
use lambda_http::{Error, Request, service_fn};
use token_vendor::{VendorConfig, build_on_aws};

#[tokio::main]
async fn main() -> Result<(), Error> {
    broker_shared::logging::init();
    let config = or_exit(VendorConfig::from_env(&ProcessEnv));
    let aws = aws_config::load_from_env().await;
    let handler = or_exit(build_on_aws(config, &aws).await);
    let handler = &handler;
    lambda_http::run(service_fn(move |request: Request| async move {
        handler.handle(request).await
    }))
    .await
}
