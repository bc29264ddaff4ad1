//! Helpers shared by the protocol-client integration tests.

use std::time::{Duration, SystemTime};

use broker_shared::upstream::{HttpSettings, UpstreamUrl};

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

/// Asserts that neither the Display nor the Debug form of `error` contains
/// any of `secrets`, not even a recognisable 12-character slice of one.
pub fn assert_leaks_nothing(error: &(impl std::fmt::Display + std::fmt::Debug), secrets: &[&str]) {
    let rendered = format!("{error} {error:?}");
    for secret in secrets {
        assert!(!secret.is_empty());
        let bytes = secret.as_bytes();
        let window = bytes.len().min(12);
        for slice in bytes.windows(window) {
            let slice = std::str::from_utf8(slice).expect("secrets here are ASCII");
            assert!(
                !rendered.contains(slice),
                "error rendering {rendered:?} leaks {slice:?}"
            );
        }
    }
}
