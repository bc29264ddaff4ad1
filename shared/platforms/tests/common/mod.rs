//! Helpers shared by the protocol-client integration tests.

use std::time::{Duration, SystemTime};

use broker_platforms::upstream::{HttpSettings, UpstreamUrl};

/// Timeouts roomy enough for a loaded CI machine.
pub fn http_client() -> reqwest::Client {
    HttpSettings::default().build_client()
}

/// A client that gives up after 300 ms, for latency tests.
pub fn impatient_http_client() -> reqwest::Client {
    HttpSettings {
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_millis(300),
    }
    .build_client()
}

/// A base URL served by the double (always loopback `http://`).
pub fn upstream(url: &str) -> UpstreamUrl {
    UpstreamUrl::parse(url).expect("the double serves a loopback URL")
}

/// Asserts that `at` is `expected` from now, give or take a few seconds.
pub fn assert_about_from_now(at: SystemTime, expected: Duration) {
    let now = SystemTime::now();
    let low = now + expected - Duration::from_secs(5);
    let high = now + expected + Duration::from_secs(1);
    assert!(
        (low..=high).contains(&at),
        "{at:?} is not about {expected:?} from {now:?}"
    );
}

/// Asserts that neither the Display nor the Debug form of `error` shows
/// any of `secrets` (the one leak scanner of `test_support`).
pub fn assert_leaks_nothing(error: &(impl std::fmt::Display + std::fmt::Debug), secrets: &[&str]) {
    test_support::LeakScanner::new(secrets.iter().copied()).assert_renders_none(error);
}
