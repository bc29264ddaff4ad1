//! Secrets read on first use and kept for the life of the instance.
//!
//! Reading a secret during init puts a network round trip before the
//! runtime's first poll of every cold start, for a value most requests never
//! need. Configuration that can be checked without a network is still checked
//! at start-up (see `broker_runtime::env`); only the read itself waits for the
//! first request that needs the value. A failed read is not kept: that request
//! fails with `store_unavailable` and the log names the variable. Requests
//! in the next [`FIRST_BACK_OFF`] (doubling per failure, up to
//! [`MAX_BACK_OFF`]) fail the same way without a read, so a flood of
//! requests (anonymous ones included) while the store fails costs one read
//! per back-off, not one per request; the first request after it reads again.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::storage::StoreError;

/// How long requests fail without a read after a failed read.
pub const FIRST_BACK_OFF: Duration = Duration::from_secs(1);

/// The longest back-off, however many reads failed in a row.
pub const MAX_BACK_OFF: Duration = Duration::from_secs(30);

type Load<T> =
    Box<dyn Fn() -> Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send>> + Send + Sync>;

/// A secret the function may need: absent (not configured), known (passed in
/// directly, as the local server and tests do), or read on first use.
/// Clones share one read.
pub struct LazySecret<T>(Arc<State<T>>);

enum State<T> {
    Absent,
    Known(T),
    OnFirstUse {
        /// The variable that names the secret: what an operator fixes.
        variable: &'static str,
        load: Load<T>,
        value: OnceCell<T>,
        /// The last failed read: until when no read is tried, and the
        /// back-off it set.
        failed: Mutex<Option<(Instant, Duration)>>,
    },
}

/// A configured secret could not be read (the store failed or the secret is
/// unusable). Holds only the variable's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the secret named by {variable} could not be read")]
pub struct SecretUnavailable {
    pub variable: &'static str,
}

impl<T> LazySecret<T> {
    pub fn absent() -> Self {
        Self(Arc::new(State::Absent))
    }

    pub fn known(value: T) -> Self {
        Self(Arc::new(State::Known(value)))
    }

    /// `load` runs when a request first needs the value, and again after a
    /// failure; once it succeeds the value is kept.
    pub fn on_first_use<F, Fut>(variable: &'static str, load: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let load: Load<T> = Box::new(move || Box::pin(load()));
        Self(Arc::new(State::OnFirstUse {
            variable,
            load,
            value: OnceCell::new(),
            failed: Mutex::new(None),
        }))
    }

    /// Whether a value is (or will be) there, without reading it.
    pub fn is_configured(&self) -> bool {
        !matches!(*self.0, State::Absent)
    }

    /// Whether the value is in memory (known, or already read).
    pub fn is_loaded(&self) -> bool {
        match &*self.0 {
            State::Absent => false,
            State::Known(_) => true,
            State::OnFirstUse { value, .. } => value.initialized(),
        }
    }

    /// The value, reading it first if this is the first use. Concurrent first
    /// uses share one read.
    pub async fn get(&self) -> Result<Option<&T>, SecretUnavailable> {
        match &*self.0 {
            State::Absent => Ok(None),
            State::Known(value) => Ok(Some(value)),
            State::OnFirstUse {
                variable,
                load,
                value,
                failed,
            } => {
                if let Some(value) = value.get() {
                    return Ok(Some(value));
                }
                let failed_lock = || failed.lock().unwrap_or_else(PoisonError::into_inner);
                let backing_off = || failed_lock().is_some_and(|(until, _)| Instant::now() < until);
                if backing_off() {
                    return Err(SecretUnavailable { variable });
                }
                value
                    .get_or_try_init(|| async {
                        // Callers that queued behind a read that just failed
                        // find the back-off here, not another read each.
                        if backing_off() {
                            return Err(SecretUnavailable { variable });
                        }
                        let read = load().await;
                        let mut failed = failed_lock();
                        match read {
                            Ok(value) => {
                                *failed = None;
                                Ok(value)
                            }
                            Err(error) => {
                                let back_off = failed.map_or(FIRST_BACK_OFF, |(_, last)| {
                                    (last * 2).min(MAX_BACK_OFF)
                                });
                                *failed = Some((Instant::now() + back_off, back_off));
                                tracing::error!(
                                    variable,
                                    %error,
                                    back_off_ms = back_off.as_millis() as u64,
                                    "a configured secret could not be read; requests fail without a read until the back-off ends"
                                );
                                Err(SecretUnavailable { variable })
                            }
                        }
                    })
                    .await
                    .map(Some)
            }
        }
    }
}

impl<T> Clone for LazySecret<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T> Default for LazySecret<T> {
    fn default() -> Self {
        Self::absent()
    }
}

impl<T> From<Option<T>> for LazySecret<T> {
    fn from(value: Option<T>) -> Self {
        value.map_or_else(Self::absent, Self::known)
    }
}

/// Never the value: only whether there is one.
impl<T> fmt::Debug for LazySecret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.0 {
            State::Absent => f.write_str("LazySecret(absent)"),
            State::Known(_) => f.write_str("LazySecret(known)"),
            State::OnFirstUse {
                variable, value, ..
            } => {
                let state = if value.initialized() {
                    "read"
                } else {
                    "unread"
                };
                write!(f, "LazySecret({variable}, {state})")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::secret::{ClientSecret, ExposeSecret};

    /// A secret whose first `failures` reads fail; counts every read.
    fn counted(failures: usize) -> (LazySecret<ClientSecret>, Arc<AtomicUsize>) {
        let reads = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&reads);
        let secret = LazySecret::on_first_use("SHOPTET_CLIENT_SECRET_ID", move || {
            let read = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if read < failures {
                    Err(StoreError::Unavailable("throttled".to_owned()))
                } else {
                    Ok(ClientSecret::new("s3cr3t-value"))
                }
            }
        });
        (secret, reads)
    }

    #[tokio::test]
    async fn nothing_is_read_until_the_first_use_and_then_only_once() {
        let (secret, reads) = counted(0);
        assert_eq!(reads.load(Ordering::SeqCst), 0);
        assert!(!secret.is_loaded());
        for _ in 0..3 {
            let value = secret.get().await.unwrap().unwrap();
            assert_eq!(value.expose_secret(), "s3cr3t-value");
        }
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        assert!(secret.is_loaded());
    }

    #[tokio::test]
    async fn concurrent_first_uses_share_one_read() {
        let (secret, reads) = counted(0);
        let clone = secret.clone();
        let (a, b) = tokio::join!(secret.get(), clone.get());
        assert!(a.unwrap().is_some() && b.unwrap().is_some());
        assert_eq!(reads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_read_names_the_variable_and_the_first_use_after_the_back_off_reads_again() {
        let (secret, reads) = counted(1);
        let error = secret.get().await.unwrap_err();
        assert_eq!(error.variable, "SHOPTET_CLIENT_SECRET_ID");
        assert!(!secret.is_loaded());
        for _ in 0..100 {
            assert_eq!(secret.get().await.unwrap_err(), error);
        }
        assert_eq!(
            reads.load(Ordering::SeqCst),
            1,
            "no read during the back-off"
        );
        tokio::time::advance(FIRST_BACK_OFF).await;
        assert!(secret.get().await.unwrap().is_some());
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_of_concurrent_uses_while_the_store_fails_makes_one_read() {
        // A read that takes a while: every use arrives while it is in flight.
        let reads = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&reads);
        let secret =
            LazySecret::<ClientSecret>::on_first_use("SHOPTET_CLIENT_SECRET_ID", move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Err(StoreError::Unavailable("throttled".to_owned()))
                }
            });
        let uses: Vec<_> = (0..50)
            .map(|_| {
                let secret = secret.clone();
                tokio::spawn(async move { secret.get().await.map(|_| ()) })
            })
            .collect();
        for using in uses {
            assert!(using.await.unwrap().is_err());
        }
        assert_eq!(reads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_back_off_doubles_per_failure_up_to_its_maximum() {
        let (secret, reads) = counted(usize::MAX);
        let mut waits = Vec::new();
        for _ in 0..8 {
            secret.get().await.unwrap_err();
            let read_at = reads.load(Ordering::SeqCst);
            let started = Instant::now();
            while reads.load(Ordering::SeqCst) == read_at {
                tokio::time::advance(Duration::from_millis(250)).await;
                secret.get().await.unwrap_err();
            }
            waits.push(started.elapsed());
        }
        let seconds: Vec<u64> = waits.iter().map(|wait| wait.as_secs()).collect();
        assert_eq!(seconds, [1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[tokio::test]
    async fn debug_output_never_shows_the_value() {
        let (secret, _) = counted(0);
        assert_eq!(
            format!("{secret:?}"),
            "LazySecret(SHOPTET_CLIENT_SECRET_ID, unread)"
        );
        secret.get().await.unwrap();
        let shown = format!(
            "{secret:?} {:?}",
            LazySecret::known(ClientSecret::new("x1"))
        );
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("x1"),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn an_absent_secret_is_none_and_a_known_one_is_served_as_given() {
        let absent = LazySecret::<ClientSecret>::from(None);
        assert!(!absent.is_configured());
        assert!(absent.get().await.unwrap().is_none());
        let known = LazySecret::from(Some(ClientSecret::new("given")));
        assert_eq!(known.get().await.unwrap().unwrap().expose_secret(), "given");
    }
}
