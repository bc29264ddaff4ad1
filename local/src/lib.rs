//! `broker-local` as a library: the server that hosts the install callback
//! and the token vendor behind one listener, routing like the API Gateway
//! stack. Tests of other crates (the client's) run the real broker
//! in-process with it; the `broker-local` binary wires the same server from
//! its command line. The `migrate-installations` binary's options and
//! output are [`migrate`].

// The server's docs name its private constants (the public routes).
#![allow(rustdoc::private_intra_doc_links)]

pub mod cli;
pub mod eshop_webhooks;
pub mod events;
pub mod migrate;
pub mod migration;
pub mod reregister;
pub mod server;
