//! A panic writes one `Crashes` line at once (its own test binary: the
//! hook is process-wide).

use std::sync::Arc;

use broker_runtime::faults::count_panics;
use broker_runtime::metrics::{Metrics, Service};

#[test]
fn a_panic_writes_one_crash_at_once_and_the_message_still_reaches_the_previous_hook() {
    let out = test_support::CapturedLogs::default();
    count_panics(Arc::new(Metrics::new(
        Service::InstallCallback,
        "Test",
        out.clone(),
    )));
    let caught = std::panic::catch_unwind(|| panic!("a bug"));
    assert!(caught.is_err());
    let line: serde_json::Value = serde_json::from_str(out.text().trim()).unwrap();
    assert_eq!(line["Crashes"], 1);
    assert_eq!(line["Service"], "install-callback");
    assert_eq!(line["level"], "FATAL");
}
