//! What the two command lines (`broker-local`, `migrate-installations`)
//! share in parsing their options.

/// The value of the option just seen, as `--name VALUE` or `--name=VALUE`.
pub fn value(parser: &mut lexopt::Parser, name: &str) -> Result<String, String> {
    parser
        .value()
        .map_err(|_| format!("{name} needs a value"))?
        .into_string()
        .map_err(|_| format!("{name} takes text"))
}
