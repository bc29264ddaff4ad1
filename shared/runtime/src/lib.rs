//! What every binary of the broker runs on: configuration primitives over an
//! [`env::Env`], the process's one TLS configuration, logging, and EMF
//! metrics, and the faults they count (panics, invocations that reach
//! their deadline).

pub mod env;
pub mod faults;
pub mod logging;
pub mod metrics;
pub mod tls;
