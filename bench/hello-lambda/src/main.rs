//! The floor: a `lambda_runtime` function that echoes its event, built with
//! the workspace's release profile. `bench/coldstart.sh` times its start
//! beside the broker's functions.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(event.payload)
    }))
    .await
}
