//! Counts the AWS requests the store adapters make: an HTTP client for the
//! SDK that passes every request on to the real one and logs it by service,
//! operation and table first. Counted on the wire, so retries count too (AWS
//! bills them), and nothing in the adapters changes for a test or a bench.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use aws_config::SdkConfig;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

/// Requests by kind, e.g. `dynamodb:GetItem(tokens)`, `kms:Decrypt`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestCounts(pub BTreeMap<String, u64>);

impl RequestCounts {
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// What `self` counts beyond `earlier` (a snapshot of the same counter).
    pub fn since(&self, earlier: &Self) -> Self {
        Self(
            self.0
                .iter()
                .map(|(kind, n)| (kind.clone(), n - earlier.0.get(kind).copied().unwrap_or(0)))
                .filter(|(_, n)| *n > 0)
                .collect(),
        )
    }

    pub fn add(&mut self, other: &Self) {
        for (kind, n) in &other.0 {
            *self.0.entry(kind.clone()).or_default() += n;
        }
    }

    /// `kind=n,kind=n` (`-` when empty): one word of a worker's line.
    pub fn to_word(&self) -> String {
        if self.0.is_empty() {
            return "-".into();
        }
        self.0
            .iter()
            .map(|(kind, n)| format!("{kind}={n}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn from_word(word: &str) -> Result<Self, String> {
        if word == "-" {
            return Ok(Self::default());
        }
        word.split(',')
            .map(|pair| {
                let (kind, n) = pair
                    .rsplit_once('=')
                    .ok_or_else(|| format!("bad request count {pair:?}"))?;
                let n = n
                    .parse()
                    .map_err(|_| format!("bad request count {pair:?}"))?;
                Ok((kind.to_owned(), n))
            })
            .collect::<Result<_, String>>()
            .map(Self)
    }
}

impl fmt::Display for RequestCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return write!(f, "none");
        }
        let parts: Vec<_> = self.0.iter().map(|(k, n)| format!("{n} {k}")).collect();
        write!(f, "{}", parts.join(" + "))
    }
}

/// Which table a DynamoDB request names, by the fleet's table names.
#[derive(Debug, Clone, Default)]
pub struct TableRoles(Vec<(String, &'static str)>);

impl TableRoles {
    pub fn with(mut self, table: &str, role: &'static str) -> Self {
        self.0.push((table.to_owned(), role));
        self
    }

    fn role(&self, table: &str) -> &str {
        self.0
            .iter()
            .find(|(name, _)| name == table)
            .map_or("other", |(_, role)| role)
    }
}

/// The requests sent through an SDK configuration made by [`counting`]:
/// totals by kind, and the kinds in order since the last [`Self::take`].
#[derive(Clone, Default)]
pub struct RequestCounter(Arc<Mutex<Tally>>);

#[derive(Default)]
struct Tally {
    totals: RequestCounts,
    recent: Vec<String>,
}

impl RequestCounter {
    /// Every request so far, by kind.
    pub fn snapshot(&self) -> RequestCounts {
        self.tally().totals.clone()
    }

    /// The kinds of the requests since the last call, in order.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.tally().recent)
    }

    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn count(&self, kind: String) {
        let mut tally = self.tally();
        *tally.totals.0.entry(kind.clone()).or_default() += 1;
        tally.recent.push(kind);
    }
}

/// `aws` with every request counted and then sent on through `transport`
/// (give it the functions' own, `broker_aws::sdk_http::http_client()`);
/// clients built from it share the counter.
pub fn counting(
    aws: &SdkConfig,
    transport: SharedHttpClient,
    roles: TableRoles,
) -> (SdkConfig, RequestCounter) {
    let counter = RequestCounter::default();
    let client = CountingClient {
        inner: transport,
        roles: Arc::new(roles),
        counter: counter.clone(),
    };
    let config = aws
        .to_builder()
        .http_client(SharedHttpClient::new(client))
        .build();
    (config, counter)
}

#[derive(Debug, Clone)]
struct CountingClient {
    inner: SharedHttpClient,
    roles: Arc<TableRoles>,
    counter: RequestCounter,
}

impl fmt::Debug for RequestCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RequestCounter")
    }
}

impl HttpClient for CountingClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(CountingConnector {
            inner: self.inner.http_connector(settings, components),
            roles: self.roles.clone(),
            counter: self.counter.clone(),
        })
    }
}

#[derive(Debug)]
struct CountingConnector {
    inner: SharedHttpConnector,
    roles: Arc<TableRoles>,
    counter: RequestCounter,
}

impl HttpConnector for CountingConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        self.counter.count(kind(&request, &self.roles));
        self.inner.call(request)
    }
}

/// `service:Operation`, with the table's role for DynamoDB. All three
/// services speak JSON 1.x: the operation is in `X-Amz-Target`
/// (`DynamoDB_20120810.GetItem`, `secretsmanager.GetSecretValue`,
/// `TrentService.Decrypt`).
fn kind(request: &HttpRequest, roles: &TableRoles) -> String {
    let target = request
        .headers()
        .get("x-amz-target")
        .unwrap_or("unknown.Unknown");
    let (service, operation) = target.split_once('.').unwrap_or(("unknown", target));
    let service = match service {
        s if s.starts_with("DynamoDB") => "dynamodb",
        "secretsmanager" => "secretsmanager",
        "TrentService" => "kms",
        other => other,
    };
    if service != "dynamodb" {
        return format!("{service}:{operation}");
    }
    let table = request
        .body()
        .bytes()
        .and_then(|body| serde_json::from_slice::<serde_json::Value>(body).ok())
        .and_then(|body| body.get("TableName")?.as_str().map(str::to_owned))
        .unwrap_or_default();
    format!("dynamodb:{operation}({})", roles.role(&table))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_round_trip_through_a_word_and_subtract() {
        let mut before = RequestCounts::default();
        before.0.insert("dynamodb:GetItem(tokens)".into(), 2);
        let mut after = before.clone();
        after.0.insert("dynamodb:GetItem(tokens)".into(), 3);
        after.0.insert("kms:Decrypt".into(), 1);

        let delta = after.since(&before);
        assert_eq!(delta.to_word(), "dynamodb:GetItem(tokens)=1,kms:Decrypt=1");
        assert_eq!(
            RequestCounts::from_word(&delta.to_word()),
            Ok(delta.clone())
        );
        assert_eq!(delta.total(), 2);
        assert_eq!(RequestCounts::from_word("-"), Ok(RequestCounts::default()));
    }
}
