//! `LEASE_WAIT_MS` is derived from `LEASE_SECONDS` when unset, so changing
//! the lease alone can never leave the wait shorter than the lease (it used
//! to: `LEASE_SECONDS=10` next to a pinned `LEASE_WAIT_MS=9000` stopped the
//! vendor from starting).

use std::time::Duration;

use broker_vending::VendTiming;

fn timing_from(variables: &[(&str, &str)]) -> Result<VendTiming, (String, String)> {
    let env = |name: &str| {
        variables
            .iter()
            .find(|(variable, _)| *variable == name)
            .map(|(_, value)| (*value).to_owned())
    };
    VendTiming::from_env(&env, VendTiming::DEFAULT_UPSTREAM_TIMEOUT)
        .map_err(|error| (error.variable.to_owned(), error.problem))
}

#[test]
fn lease_seconds_ten_alone_yields_a_wait_derived_from_it() {
    let timing = timing_from(&[("LEASE_SECONDS", "10")]).expect("LEASE_SECONDS=10 alone is valid");
    assert_eq!(timing.lease, Duration::from_secs(10));
    // 10 s lease + 2.5 s default upstream timeout + 1 s margin.
    assert_eq!(timing.lease_wait, Duration::from_millis(13_500));
    assert!(timing.lease_wait > timing.lease);
}

#[test]
fn the_derived_wait_follows_the_upstream_timeout_too() {
    let env = |name: &str| (name == "LEASE_SECONDS").then(|| "6".to_owned());
    let timing = VendTiming::from_env(&env, Duration::from_millis(4_000)).expect("valid");
    assert_eq!(timing.lease_wait, Duration::from_millis(11_000));
}

#[test]
fn with_nothing_set_the_defaults_are_what_from_env_derives() {
    let timing = timing_from(&[]).expect("defaults are valid");
    assert_eq!(timing, VendTiming::default());
    assert_eq!(timing.lease_wait, Duration::from_millis(8_500));
}

#[test]
fn an_explicit_lease_wait_is_kept() {
    let timing = timing_from(&[("LEASE_SECONDS", "5"), ("LEASE_WAIT_MS", "12000")]).unwrap();
    assert_eq!(timing.lease_wait, Duration::from_secs(12));
}

#[test]
fn an_explicit_lease_wait_not_longer_than_the_lease_is_refused_by_name() {
    for wait in ["9000", "10000"] {
        let error = timing_from(&[("LEASE_SECONDS", "10"), ("LEASE_WAIT_MS", wait)])
            .expect_err("a wait within the lease cannot outlast a dead holder");
        assert_eq!(error.0, "LEASE_WAIT_MS", "LEASE_WAIT_MS={wait}");
        assert!(error.1.contains("LEASE_SECONDS"), "{}", error.1);
    }
}
