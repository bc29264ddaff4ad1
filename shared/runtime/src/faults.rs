//! Crashes and timeouts as the function itself counts them, so that an
//! alarm on them never sees an answered refusal. Lambda's own `Errors`
//! metric cannot tell them apart: over direct invocation a refusal such as
//! `not_installed` is a function error too.
//!
//! - A panic anywhere in the process writes [`Metric::Crashes`] at once
//!   ([`count_panics`]); `lambda_runtime` turns a handler's panic into an
//!   error answer and the instance serves on.
//! - An invocation still running [`DEADLINE_MARGIN`] before its Lambda
//!   deadline writes [`Metric::Timeouts`] ([`watch_deadline`]): Lambda stops
//!   it moments later and no code of ours runs then. The invocation itself
//!   goes on untouched.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::metrics::{Dimensions, Metric, Metrics};

/// How long before its deadline a still-running invocation counts as timed
/// out: enough for one line to reach stdout before Lambda stops it.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(250);

/// Writes [`Metric::Crashes`] to `metrics` on every panic, then runs the
/// hook that was installed before (which prints the panic's message).
/// Process-wide: the binaries call it once, at start-up.
pub fn count_panics(metrics: Arc<Metrics>) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        metrics.event(Metric::Crashes, Dimensions::default());
        previous(info);
    }));
}

/// A Lambda deadline (milliseconds since the epoch, as the runtime API
/// gives it); `None` for 0, which is what a request outside Lambda (the
/// local server, a test) carries.
pub fn lambda_deadline(deadline_ms: u64) -> Option<SystemTime> {
    (deadline_ms > 0).then(|| UNIX_EPOCH + Duration::from_millis(deadline_ms))
}

/// Runs `work` to its end; if it is still running [`DEADLINE_MARGIN`]
/// before `deadline`, writes one [`Metric::Timeouts`] first. Without a
/// deadline, just runs `work`.
pub async fn watch_deadline<F: Future>(
    metrics: &Metrics,
    deadline: Option<SystemTime>,
    work: F,
) -> F::Output {
    let Some(deadline) = deadline else {
        return work.await;
    };
    let left = deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        .saturating_sub(DEADLINE_MARGIN);
    let mut work = std::pin::pin!(work);
    tokio::select! {
        biased;
        output = &mut work => output,
        () = tokio::time::sleep(left) => {
            metrics.event(Metric::Timeouts, Dimensions::default());
            tracing::error!(margin_ms = DEADLINE_MARGIN.as_millis() as u64, "invocation still running at its deadline: Lambda stops it");
            work.await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Service;

    fn metrics() -> (Arc<Metrics>, test_support::CapturedLogs) {
        let out = test_support::CapturedLogs::default();
        let metrics = Metrics::new(Service::TokenVendor, "Test", out.clone());
        (Arc::new(metrics), out)
    }

    fn timeouts(out: &test_support::CapturedLogs) -> usize {
        out.text().matches("\"Timeouts\":1").count()
    }

    #[tokio::test(start_paused = true)]
    async fn an_invocation_that_ends_before_the_margin_counts_no_timeout() {
        let (metrics, out) = metrics();
        let deadline = SystemTime::now() + Duration::from_secs(10);
        let answer = watch_deadline(&metrics, Some(deadline), async {
            tokio::time::sleep(Duration::from_secs(9)).await;
            "answered"
        })
        .await;
        assert_eq!(answer, "answered");
        assert_eq!(timeouts(&out), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_invocation_still_running_at_its_deadline_counts_one_timeout_and_still_answers() {
        let (metrics, out) = metrics();
        let deadline = SystemTime::now() + Duration::from_secs(1);
        let answer = watch_deadline(&metrics, Some(deadline), async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "answered late"
        })
        .await;
        assert_eq!(answer, "answered late", "the invocation is not cut short");
        assert_eq!(timeouts(&out), 1);
    }

    #[tokio::test]
    async fn without_a_deadline_nothing_is_watched() {
        let (metrics, out) = metrics();
        assert_eq!(lambda_deadline(0), None);
        watch_deadline(&metrics, lambda_deadline(0), async {}).await;
        assert!(out.text().is_empty());
    }
}
