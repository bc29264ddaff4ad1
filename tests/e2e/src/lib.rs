//! End-to-end checks live in `tests/`; scripts/e2e.sh runs them. What they
//! share: reading the environment the script sets, and noting the secrets
//! only a check knows for the log scan (`tests/function_logs.rs`).

use std::io::Write;

/// The variable scripts/e2e.sh exported; panics, naming the script, when
/// it is missing (these checks need its processes: they never skip).
pub fn required(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!(
            "{name} is not set: these checks need the Lambda functions under \
             `cargo lambda watch`, moto and the platform double that scripts/e2e.sh \
             starts; run scripts/e2e.sh instead of `cargo test -p broker-e2e`"
        ),
    }
}

/// Appends `secret` (e.g. a signature a check sent) to the file
/// `E2E_KNOWN_SECRETS` names, for the log scan to look for.
pub fn note_secret(path: &str, secret: &str) {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap_or_else(|error| panic!("E2E_KNOWN_SECRETS={path}: {error}"));
    writeln!(file, "{secret}").expect("noting a secret");
}
