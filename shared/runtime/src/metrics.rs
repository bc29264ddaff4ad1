//! Metrics as CloudWatch Embedded Metric Format (EMF) lines: JSON objects
//! on stdout that CloudWatch Logs turns into metrics, with no agent and no
//! API call.
//!
//! Hot-path counters (vends, mints, lease waits) are added up in memory per
//! metric and dimension values, and written at most once per flush interval
//! (a minute): [`Metrics::flush_if_due`] runs at each request, because a
//! Lambda instance is frozen between invocations and no background task
//! would run. Events an alarm watches ([`Metric::MintFailures`],
//! [`Metric::InstallFailures`]) are written at once. An instance shut down
//! loses what it added up since its last flush: at most a minute of its
//! counters.
//!
//! Every metric is published under two dimension sets: `[Service]`, the
//! aggregate alarms use, and `Service` plus the metric's own dimensions.
//! Dimension values are `&'static str`: only names the code itself spells
//! (platforms, sources, error codes, outcomes) can reach a metric line,
//! never a shop id, a token or anything a request carried.
//!
//! Every line carries `"level": "FATAL"` ([`EMF_LOG_LEVEL`]). With JSON logs
//! and an `ApplicationLogLevel`, Lambda reads each line's `level` and drops
//! the lines below the configured one; a line without a level counts as
//! INFO, so at WARN or ERROR an unlevelled metric line would be dropped
//! before CloudWatch extracts its metrics, and every alarm on it would see
//! "no data", i.e. healthy. FATAL is the most severe level Lambda knows:
//! no `ApplicationLogLevel` filters it. Log queries for errors exclude the
//! metric lines with `ispresent(_aws)` (docs/runbooks.md).

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use shop_token_protocol::ids::Platform;

use crate::env::{Env, optional};

/// The namespace when `METRICS_NAMESPACE` is unset.
pub const DEFAULT_NAMESPACE: &str = "ShopTokenBroker";

/// How often an instance writes its added-up counters.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(60);

/// The `level` of every metric line: the one level Lambda's log-level
/// filter passes at every `ApplicationLogLevel` (see the module's docs).
pub const EMF_LOG_LEVEL: &str = "FATAL";

/// EMF accepts at most this many values of one metric in one line.
const MAX_VALUES_PER_LINE: usize = 100;

/// The function a metric comes from (the `Service` dimension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    TokenVendor,
    InstallCallback,
    EventPublisher,
    ShoptetWebhooks,
}

impl Service {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TokenVendor => "token-vendor",
            Self::InstallCallback => "install-callback",
            Self::EventPublisher => "event-publisher",
            Self::ShoptetWebhooks => "shoptet-webhooks",
        }
    }
}

/// Every metric the broker publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Metric {
    Vends,
    VendErrors,
    Mints,
    MintLatency,
    MintFailures,
    CapRefusals,
    LeaseWaits,
    LeaseWaitDuration,
    StoreErrors,
    Installs,
    InstallFailures,
    /// Install calls refused before any platform started an install:
    /// malformed, badly signed, replayed, or a Shoptet code the OAuth
    /// server does not know. Anyone can send them; no alarm pages on them.
    InstallRejects,
    LifecycleEvents,
    /// A panic in the function (the runtime answers the invocation with an
    /// error and the instance carries on).
    Crashes,
    /// An invocation still running when its Lambda deadline was near: Lambda
    /// is about to stop it.
    Timeouts,
    /// Lifecycle events EventBridge accepted.
    EventsPublished,
    /// Publish calls EventBridge refused, failed or did not answer (the
    /// batch is retried from the first event not published).
    PublishFailures,
    /// How long the oldest change of a batch waited for its publish: the
    /// stream record's age when the publisher got it.
    OldestChangeAge,
    /// Events the add-on's HTTPS endpoint acknowledged (2xx).
    WebhookDeliveries,
    /// Deliveries the endpoint refused or did not answer (retried).
    WebhookFailures,
    /// Shoptet e-shop webhooks forwarded to the bus (`Source`: live or
    /// reconciliation).
    EshopWebhooksForwarded,
    /// Copies of a notification already forwarded (a platform retry, a
    /// reconciled copy of a live delivery): acknowledged, not forwarded.
    EshopWebhookDuplicates,
    /// Deliveries refused at the route (`Code`: bad signature, unknown
    /// shop, too large, malformed). Anyone can send them.
    EshopWebhookRejects,
    /// Installations whose webhooks were registered (or found registered).
    WebhookRegistrations,
    /// Registration attempts that failed (`Code`); retried.
    WebhookRegistrationFailures,
    /// Installations whose notification history a reconciliation read.
    Reconciliations,
    /// Reconciliations that failed for an installation (`Code`).
    ReconciliationFailures,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Self::Vends => "Vends",
            Self::VendErrors => "VendErrors",
            Self::Mints => "Mints",
            Self::MintLatency => "MintLatency",
            Self::MintFailures => "MintFailures",
            Self::CapRefusals => "CapRefusals",
            Self::LeaseWaits => "LeaseWaits",
            Self::LeaseWaitDuration => "LeaseWaitDuration",
            Self::StoreErrors => "StoreErrors",
            Self::Installs => "Installs",
            Self::InstallFailures => "InstallFailures",
            Self::InstallRejects => "InstallRejects",
            Self::LifecycleEvents => "LifecycleEvents",
            Self::Crashes => "Crashes",
            Self::Timeouts => "Timeouts",
            Self::EventsPublished => "EventsPublished",
            Self::PublishFailures => "PublishFailures",
            Self::OldestChangeAge => "OldestChangeAge",
            Self::WebhookDeliveries => "WebhookDeliveries",
            Self::WebhookFailures => "WebhookFailures",
            Self::EshopWebhooksForwarded => "EshopWebhooksForwarded",
            Self::EshopWebhookDuplicates => "EshopWebhookDuplicates",
            Self::EshopWebhookRejects => "EshopWebhookRejects",
            Self::WebhookRegistrations => "WebhookRegistrations",
            Self::WebhookRegistrationFailures => "WebhookRegistrationFailures",
            Self::Reconciliations => "Reconciliations",
            Self::ReconciliationFailures => "ReconciliationFailures",
        }
    }

    pub fn unit(self) -> Unit {
        match self {
            Self::MintLatency | Self::LeaseWaitDuration | Self::OldestChangeAge => {
                Unit::Milliseconds
            }
            _ => Unit::Count,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
        }
    }
}

/// A dimension besides `Service`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dimension {
    Platform,
    Source,
    Code,
    Operation,
    Event,
    Outcome,
}

impl Dimension {
    pub fn name(self) -> &'static str {
        match self {
            Self::Platform => "Platform",
            Self::Source => "Source",
            Self::Code => "Code",
            Self::Operation => "Operation",
            Self::Event => "Event",
            Self::Outcome => "Outcome",
        }
    }
}

/// A data point's dimension values (besides `Service`), in a fixed order so
/// that equal sets add up together.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dimensions(Vec<(Dimension, &'static str)>);

impl Dimensions {
    pub fn platform(platform: Platform) -> Self {
        Self::default().with(Dimension::Platform, platform.as_str())
    }

    pub fn of(dimension: Dimension, value: &'static str) -> Self {
        Self::default().with(dimension, value)
    }

    /// Adds (or replaces) one dimension's value.
    pub fn with(mut self, dimension: Dimension, value: &'static str) -> Self {
        match self.0.binary_search_by_key(&dimension, |(d, _)| *d) {
            Ok(at) => self.0[at].1 = value,
            Err(at) => self.0.insert(at, (dimension, value)),
        }
        self
    }
}

/// What one metric has gathered under one set of dimension values.
#[derive(Debug)]
enum Gathered {
    Count(u64),
    Milliseconds(Vec<f64>),
}

impl Gathered {
    fn value(&self) -> Value {
        match self {
            Self::Count(count) => json!(count),
            Self::Milliseconds(values) => json!(values),
        }
    }
}

type Group = BTreeMap<Metric, Gathered>;

struct Pending {
    last_flush: Instant,
    groups: BTreeMap<Dimensions, Group>,
}

/// One function instance's metrics: what it added up since its last flush,
/// and where its lines go (stdout in Lambda, a buffer in tests).
pub struct Metrics {
    service: Service,
    namespace: String,
    flush_interval: Duration,
    pending: Mutex<Pending>,
    out: Mutex<Box<dyn Write + Send>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("service", &self.service)
            .field("namespace", &self.namespace)
            .field("flush_interval", &self.flush_interval)
            .finish_non_exhaustive()
    }
}

fn locked<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `METRICS_NAMESPACE`, [`DEFAULT_NAMESPACE`] when unset.
pub fn namespace_from_env(env: &impl Env) -> String {
    optional(env, "METRICS_NAMESPACE").unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned())
}

impl Metrics {
    /// Lines to stdout, where Lambda's EMF extraction reads them, in
    /// `namespace` (see [`namespace_from_env`]).
    pub fn to_stdout(service: Service, namespace: impl Into<String>) -> Self {
        Self::new(service, namespace, std::io::stdout())
    }

    /// Lines to `out`, flushed every [`FLUSH_INTERVAL`].
    pub fn new(
        service: Service,
        namespace: impl Into<String>,
        out: impl Write + Send + 'static,
    ) -> Self {
        Self {
            service,
            namespace: namespace.into(),
            flush_interval: FLUSH_INTERVAL,
            pending: Mutex::new(Pending {
                last_flush: Instant::now(),
                groups: BTreeMap::new(),
            }),
            out: Mutex::new(Box::new(out)),
        }
    }

    /// How long counters add up before [`Self::flush_if_due`] writes them
    /// (`Duration::ZERO`: at every request).
    pub fn with_flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval;
        self
    }

    pub fn service(&self) -> Service {
        self.service
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Adds one to a counter; written at the next flush.
    pub fn count(&self, metric: Metric, dimensions: Dimensions) {
        self.add(metric, dimensions, 1);
    }

    /// Adds `n` to a counter; written at the next flush.
    pub fn add(&self, metric: Metric, dimensions: Dimensions, n: u64) {
        let mut pending = locked(&self.pending);
        let gathered = pending
            .groups
            .entry(dimensions)
            .or_default()
            .entry(metric)
            .or_insert(Gathered::Count(0));
        if let Gathered::Count(count) = gathered {
            *count += n;
        }
    }

    /// Records one duration; written at the next flush, or at once when a
    /// line's worth of values (100) has gathered.
    pub fn duration(&self, metric: Metric, dimensions: Dimensions, duration: Duration) {
        // Microsecond precision: enough, and short lines.
        let millis = duration.as_micros() as f64 / 1000.0;
        let full = {
            let mut pending = locked(&self.pending);
            let group = pending.groups.entry(dimensions.clone()).or_default();
            let gathered = group
                .entry(metric)
                .or_insert_with(|| Gathered::Milliseconds(Vec::new()));
            match gathered {
                Gathered::Milliseconds(values) => {
                    values.push(millis);
                    values.len() >= MAX_VALUES_PER_LINE
                }
                Gathered::Count(_) => false,
            }
            .then(|| pending.groups.remove(&dimensions))
            .flatten()
        };
        if let Some(group) = full {
            self.write(&[(dimensions, group)]);
        }
    }

    /// Writes one occurrence at once: an event an alarm watches.
    pub fn event(&self, metric: Metric, dimensions: Dimensions) {
        let group = Group::from([(metric, Gathered::Count(1))]);
        self.write(&[(dimensions, group)]);
    }

    /// Writes what has gathered if the flush interval has passed since the
    /// last flush. Called at every request: the first one after the
    /// interval pays for one write.
    pub fn flush_if_due(&self) {
        let due = {
            let mut pending = locked(&self.pending);
            if pending.last_flush.elapsed() < self.flush_interval {
                return;
            }
            pending.last_flush = Instant::now();
            std::mem::take(&mut pending.groups)
        };
        self.write_groups(due);
    }

    /// Writes what has gathered now, whatever the interval.
    pub fn flush(&self) {
        let due = {
            let mut pending = locked(&self.pending);
            pending.last_flush = Instant::now();
            std::mem::take(&mut pending.groups)
        };
        self.write_groups(due);
    }

    fn write_groups(&self, groups: BTreeMap<Dimensions, Group>) {
        if groups.is_empty() {
            return;
        }
        let groups: Vec<(Dimensions, Group)> = groups.into_iter().collect();
        self.write(&groups);
    }

    /// One EMF line per set of dimension values, each holding every
    /// metric gathered under them (at most 15 metrics: far below EMF's 100).
    fn write(&self, groups: &[(Dimensions, Group)]) {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        let mut lines = Vec::new();
        for (dimensions, group) in groups {
            let line = self.line(timestamp, dimensions, group);
            lines.extend_from_slice(line.to_string().as_bytes());
            lines.push(b'\n');
        }
        let mut out = locked(&self.out);
        // Metrics never fail a request: a lost line costs a data point.
        let _ = out.write_all(&lines).and_then(|()| out.flush());
    }

    fn line(&self, timestamp: u64, dimensions: &Dimensions, group: &Group) -> Value {
        let mut detailed = vec!["Service"];
        detailed.extend(dimensions.0.iter().map(|(d, _)| d.name()));
        let mut sets = vec![vec!["Service"]];
        if detailed.len() > 1 {
            sets.push(detailed);
        }
        let definitions: Vec<Value> = group
            .keys()
            .map(|metric| json!({"Name": metric.name(), "Unit": metric.unit().as_str()}))
            .collect();
        let mut root = Map::new();
        root.insert("level".into(), json!(EMF_LOG_LEVEL));
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": sets,
                    "Metrics": definitions,
                }],
            }),
        );
        root.insert("Service".into(), json!(self.service.as_str()));
        for (dimension, value) in &dimensions.0 {
            root.insert(dimension.name().into(), json!(value));
        }
        for (metric, gathered) in group {
            root.insert(metric.name().into(), gathered.value());
        }
        Value::Object(root)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            locked(&self.0).extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buffer {
        fn lines(&self) -> Vec<Value> {
            String::from_utf8(locked(&self.0).clone())
                .unwrap()
                .lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect()
        }
    }

    fn metrics() -> (Metrics, Buffer) {
        let buffer = Buffer::default();
        (
            Metrics::new(Service::TokenVendor, "Test", buffer.clone()),
            buffer,
        )
    }

    fn vends(source: &'static str) -> Dimensions {
        Dimensions::platform(Platform::Shoptet).with(Dimension::Source, source)
    }

    #[test]
    fn counters_add_up_until_a_flush_writes_one_line_per_dimension_values() {
        let (metrics, out) = metrics();
        for _ in 0..42 {
            metrics.count(Metric::Vends, vends("L1"));
        }
        metrics.count(Metric::Vends, vends("Minted"));
        metrics.flush_if_due();
        assert!(out.lines().is_empty(), "a minute has not passed");

        metrics.flush();
        let lines = out.lines();
        assert_eq!(lines.len(), 2);
        let l1 = lines.iter().find(|line| line["Source"] == "L1").unwrap();
        assert_eq!(
            l1["_aws"]["CloudWatchMetrics"],
            json!([{
                "Namespace": "Test",
                "Dimensions": [["Service"], ["Service", "Platform", "Source"]],
                "Metrics": [{"Name": "Vends", "Unit": "Count"}],
            }])
        );
        assert_eq!(l1["Service"], "token-vendor");
        assert_eq!(l1["level"], "FATAL", "no ApplicationLogLevel drops it");
        assert_eq!(l1["Platform"], "shoptet");
        assert_eq!(l1["Vends"], 42);
        assert!(l1["_aws"]["Timestamp"].as_u64().unwrap() > 1_700_000_000_000);

        metrics.flush();
        assert_eq!(out.lines().len(), 2, "nothing new, nothing written");
    }

    #[test]
    fn metrics_under_the_same_dimensions_share_a_line_and_durations_are_value_arrays() {
        let (metrics, out) = metrics();
        let shoptet = || Dimensions::platform(Platform::Shoptet);
        metrics.count(Metric::Mints, shoptet());
        metrics.count(Metric::Mints, shoptet());
        metrics.duration(Metric::MintLatency, shoptet(), Duration::from_millis(120));
        metrics.duration(Metric::MintLatency, shoptet(), Duration::from_millis(80));
        metrics.flush();
        let lines = out.lines();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["Mints"], 2);
        assert_eq!(lines[0]["MintLatency"], json!([120.0, 80.0]));
        assert_eq!(
            lines[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"],
            json!([{"Name": "Mints", "Unit": "Count"}, {"Name": "MintLatency", "Unit": "Milliseconds"}])
        );
    }

    #[test]
    fn a_hundred_durations_are_written_at_once_as_one_line() {
        let (metrics, out) = metrics();
        let shoptet = || Dimensions::platform(Platform::Shoptet);
        for ms in 0..250 {
            metrics.duration(
                Metric::LeaseWaitDuration,
                shoptet(),
                Duration::from_millis(ms),
            );
        }
        let lines = out.lines();
        assert_eq!(lines.len(), 2, "two full lines of 100 values");
        assert!(lines.iter().all(|line| {
            line["LeaseWaitDuration"]
                .as_array()
                .is_some_and(|values| values.len() == 100)
        }));
        metrics.flush();
        assert_eq!(
            out.lines()[2]["LeaseWaitDuration"]
                .as_array()
                .unwrap()
                .len(),
            50
        );
    }

    #[test]
    fn events_are_written_at_once_and_a_zero_interval_flushes_at_every_call() {
        let (metrics, out) = metrics();
        let code =
            Dimensions::platform(Platform::Shoprenter).with(Dimension::Code, "upstream_rejected");
        metrics.event(Metric::MintFailures, code);
        assert_eq!(out.lines().len(), 1);
        assert_eq!(out.lines()[0]["MintFailures"], 1);
        assert_eq!(out.lines()[0]["Code"], "upstream_rejected");

        let metrics = metrics.with_flush_interval(Duration::ZERO);
        metrics.count(Metric::CapRefusals, Dimensions::platform(Platform::Shoptet));
        metrics.flush_if_due();
        assert_eq!(out.lines().len(), 2);
        assert_eq!(out.lines()[1]["CapRefusals"], 1);
    }

    #[test]
    fn a_dimension_given_twice_keeps_its_last_value_and_the_order_is_fixed() {
        let dimensions = Dimensions::of(Dimension::Source, "L1")
            .with(Dimension::Platform, "shoptet")
            .with(Dimension::Source, "L2");
        assert_eq!(
            dimensions,
            Dimensions::platform(Platform::Shoptet).with(Dimension::Source, "L2")
        );
    }
}
