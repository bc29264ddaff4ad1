//! Last in each pass of scripts/e2e.sh: every line the two functions wrote
//! under `cargo lambda watch` (the real runtime stack: `lambda_runtime`'s
//! layers, the AWS SDK, hyper, our own crates), at the level the pass ran
//! them with (`AWS_LAMBDA_LOG_LEVEL`: TRACE, then DEBUG), holds none of the
//! secrets the pass used: every install code, OAuth access token and API
//! token the platform double issued, its client secret and webhook key
//! (`GET /_double/secrets`), and what only the checks know (the webhook
//! signatures they sent, `E2E_KNOWN_SECRETS`).

use broker_e2e::required;
use test_support::LeakScanner;

#[tokio::test]
async fn the_function_logs_hold_no_secret_the_pass_used_at_its_log_level() {
    let level = required("E2E_LOG_LEVEL");
    let log_path = required("E2E_WATCH_LOG");
    let double = required("E2E_DOUBLE_URL");

    let url = format!("{double}/_double/secrets");
    let listed: serde_json::Value = reqwest::get(&url)
        .await
        .unwrap_or_else(|error| panic!("GET {url}: {error}"))
        .json()
        .await
        .unwrap_or_else(|error| panic!("GET {url}: not JSON: {error}"));
    let mut secrets: Vec<String> = listed["secrets"]
        .as_array()
        .unwrap_or_else(|| panic!("GET {url}: no secrets list"))
        .iter()
        .map(|secret| secret.as_str().expect("a secret is a string").to_owned())
        .collect();
    let issued = secrets.len();
    secrets.push(required("E2E_WEBHOOK_KEY"));
    let noted = std::fs::read_to_string(required("E2E_KNOWN_SECRETS")).expect("E2E_KNOWN_SECRETS");
    secrets.extend(
        noted
            .lines()
            .filter(|line| !line.is_empty())
            .map(str::to_owned),
    );
    // The pass installed, vended, refreshed and uninstalled: a handful of
    // codes and tokens at least, and one signature.
    assert!(issued >= 4, "the double lists only {issued} secrets: {url}");
    assert!(noted.lines().count() >= 1, "the checks noted no signature");

    let log = std::fs::read_to_string(&log_path)
        .unwrap_or_else(|error| panic!("reading {log_path}: {error}"));
    // The level reached the functions: the vendor's DEBUG line "token
    // vended" is there (nothing of ours logs at TRACE; a dependency's TRACE
    // and DEBUG lines, e.g. lambda_runtime's raw events, are what must not be).
    assert!(
        log.contains("\"level\":\"DEBUG\"") && log.contains("token vended"),
        "{log_path} has no DEBUG line of ours: the functions did not run at {level}"
    );

    let scanner = LeakScanner::new(secrets.iter().cloned());
    scanner.assert_absent(&format!("the function logs at {level}"), &log);
    println!(
        "PASS function logs at {level}: {:.2} MB ({} lines) scanned, {} secrets known, 0 hits",
        log.len() as f64 / 1_000_000.0,
        log.lines().count(),
        scanner.len()
    );
}
