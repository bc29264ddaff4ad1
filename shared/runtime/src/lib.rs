//! What every binary of the broker runs on: configuration primitives over an
//! [`env::Env`], the process's one TLS configuration, logging, and EMF
//! metrics.

pub mod env;
pub mod logging;
pub mod metrics;
pub mod tls;
