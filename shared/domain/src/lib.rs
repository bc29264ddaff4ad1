//! The token broker's domain, at the bottom of its crate graph: validated
//! identifiers, secret types that cannot print, the records the broker keeps,
//! the one HTTP error contract, the storage ports and their in-memory
//! adapters. No AWS, no platform protocol, no process plumbing.

pub mod bus;
pub mod events;
pub mod http;
pub mod ids;
pub mod lazy_secret;
pub mod limits;
pub mod model;
pub mod secret;
pub mod storage;
