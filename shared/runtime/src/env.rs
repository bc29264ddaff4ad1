//! Reading configuration from the environment: the primitives every reader
//! builds on. The readers themselves sit beside what they build (the
//! platforms' in `broker-platforms`, the stores' in `broker-aws`). Every
//! problem names its variable, so a bad deployment fails at start-up with
//! one clear line.

use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration error: {variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

impl ConfigError {
    pub fn new(variable: &'static str, problem: impl Into<String>) -> Self {
        Self {
            variable,
            problem: problem.into(),
        }
    }
}

/// Where configuration comes from: the process environment in production, a
/// map in tests and in the local server.
pub trait Env {
    fn get(&self, variable: &str) -> Option<String>;
}

pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, variable: &str) -> Option<String> {
        std::env::var(variable).ok()
    }
}

impl<F: Fn(&str) -> Option<String>> Env for F {
    fn get(&self, variable: &str) -> Option<String> {
        self(variable)
    }
}

/// Empty values count as unset: SAM passes empty strings for blank parameters.
pub fn optional(env: &impl Env, variable: &'static str) -> Option<String> {
    env.get(variable)
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

pub fn required(env: &impl Env, variable: &'static str) -> Result<String, ConfigError> {
    optional(env, variable).ok_or_else(|| ConfigError::new(variable, "is required but not set"))
}

/// Two variables that only make sense together: both set, or neither. A
/// half-set pair names the missing one.
pub fn together(
    env: &impl Env,
    first: &'static str,
    second: &'static str,
) -> Result<Option<(String, String)>, ConfigError> {
    match (optional(env, first), optional(env, second)) {
        (Some(a), Some(b)) => Ok(Some((a, b))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(ConfigError::new(
            second,
            format!("{first} and {second} go together"),
        )),
        (None, Some(_)) => Err(ConfigError::new(
            first,
            format!("{first} and {second} go together"),
        )),
    }
}

pub fn parsed<T: FromStr>(
    env: &impl Env,
    variable: &'static str,
    default: T,
) -> Result<T, ConfigError> {
    match optional(env, variable) {
        None => Ok(default),
        Some(raw) => raw
            .parse()
            .map_err(|_| ConfigError::new(variable, format!("{raw:?} is not a valid value"))),
    }
}

pub fn millis(
    env: &impl Env,
    variable: &'static str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let ms = parsed(env, variable, default.as_millis() as u64)?;
    if ms == 0 {
        return Err(ConfigError::new(variable, "must be greater than zero"));
    }
    Ok(Duration::from_millis(ms))
}

/// Start-up failures end the process with one readable line (not a `Debug`
/// dump), which is what Lambda shows for a failed init.
pub fn or_exit<T, E: std::fmt::Display>(result: Result<T, E>) -> T {
    result.unwrap_or_else(|error| {
        eprintln!("{error}");
        std::process::exit(1)
    })
}
