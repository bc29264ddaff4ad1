//! The broker on AWS: the storage ports' DynamoDB, Secrets Manager and KMS
//! adapters, the SDK's HTTP transport on the process's one TLS
//! configuration, and the readers of where the data lives.

use broker_domain::{ids, model, secret};
use broker_runtime::tls;

pub mod config;
pub mod sdk_http;
pub mod secrets;
pub mod storage;
