//! The storage contract suite lives in `tests/storage_contract.rs`: one set
//! of cases per storage capability, run against every adapter. This crate
//! exists so that the suite may depend on every adapter while no adapter
//! depends on another.
