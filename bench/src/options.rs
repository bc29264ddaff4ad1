//! What the scenarios' option parsers share: `--name VALUE` pairs, positive
//! counts, and the installation store's name.

/// Every `--name VALUE` (or `--name=VALUE`) in `args`, in order; a short
/// option or a bare value is refused.
pub fn named_values(args: &[String]) -> Result<Vec<(String, String)>, String> {
    use lexopt::Arg::{Long, Short, Value};
    let mut parser = lexopt::Parser::from_args(args);
    let mut pairs = Vec::new();
    while let Some(arg) = parser.next().map_err(|error| error.to_string())? {
        let name = match arg {
            Long(name) => name.to_owned(),
            Short(name) => return Err(format!("unknown option -{name}")),
            Value(value) => return Err(format!("unexpected argument {value:?}")),
        };
        let value = parser
            .value()
            .map_err(|_| format!("--{name} needs a value"))?
            .into_string()
            .map_err(|value| format!("--{name}: {value:?} is not text"))?;
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// `--name`'s value as a number from 1.
pub fn positive(name: &str, value: &str) -> Result<u64, String> {
    value
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("--{name}: {value:?} is not a positive number"))
}

/// `--store`: whether installations are kept in the DynamoDB store.
pub fn dynamo_installations(value: &str) -> Result<bool, String> {
    match value {
        "SecretsManager" => Ok(false),
        "DynamoDB" => Ok(true),
        _ => Err("--store is SecretsManager or DynamoDB".into()),
    }
}
