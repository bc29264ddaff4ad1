//! How long tokens are kept before refresh, how refreshes are coordinated,
//! and how often a suspended shop is asked about again. Both functions read
//! the same settings: they take the same leases.

use std::time::Duration;

use crate::limits::SHOPTET_API_TOKEN_LIFETIME;
use broker_runtime::env::{self as config, ConfigError, Env};

/// How long this instance serves its L1 token without looking at L2 again:
/// an uninstall, a suspension or a reinstall (which drop the shared entry)
/// reaches a warm instance within this, at the cost of one L2 read per shop
/// per instance per period.
pub const L1_TRUST: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VendTiming {
    /// A cached token is served only with at least this much life left.
    pub refresh_margin: Duration,
    /// How long one instance may hold a shop's refresh lease.
    pub lease: Duration,
    /// How long a request waits for another instance's refresh.
    pub lease_wait: Duration,
    /// A suspended shop is asked upstream again at most this often (the
    /// approve webhook may have been lost).
    pub suspended_recheck: Duration,
    /// How long an instance serves its L1 token before looking at L2 again
    /// (not read from the environment; [`L1_TRUST`]).
    pub l1_trust: Duration,
}

impl Default for VendTiming {
    fn default() -> Self {
        Self {
            refresh_margin: Duration::from_secs(300),
            lease: Duration::from_secs(5),
            // What `from_env` derives for the default lease and upstream timeout.
            lease_wait: Self::derived_lease_wait(
                Duration::from_secs(5),
                Self::DEFAULT_UPSTREAM_TIMEOUT,
            ),
            suspended_recheck: Duration::from_secs(300),
            l1_trust: L1_TRUST,
        }
    }
}

impl VendTiming {
    /// The upstream request timeout the defaults assume: `broker-platforms`'
    /// `HttpSettings::default()` (a test there keeps the two equal).
    pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_millis(2_500);

    /// The store round trips around a taken-over mint (see
    /// [`Self::derived_lease_wait`]).
    pub const LEASE_WAIT_MARGIN: Duration = Duration::from_secs(1);

    /// `LEASE_WAIT_MS` when unset: a waiter outlasts a dead holder's lease,
    /// then gives whoever takes the lease over time for one upstream call,
    /// plus a second for the store round trips around it. Deriving it keeps a
    /// changed `LEASE_SECONDS` from leaving the wait shorter than the lease.
    pub fn derived_lease_wait(lease: Duration, upstream_timeout: Duration) -> Duration {
        lease + upstream_timeout + Self::LEASE_WAIT_MARGIN
    }

    /// `LEASE_WAIT_MS` defaults to [`Self::derived_lease_wait`]; set explicitly, it
    /// must still exceed the lease.
    pub fn from_env(env: &impl Env, upstream_timeout: Duration) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let seconds = |variable, default: Duration| {
            config::parsed(env, variable, default.as_secs()).map(Duration::from_secs)
        };
        let lease = seconds("LEASE_SECONDS", defaults.lease)?;
        let timing = Self {
            refresh_margin: seconds("REFRESH_MARGIN_SECONDS", defaults.refresh_margin)?,
            lease,
            lease_wait: config::millis(
                env,
                "LEASE_WAIT_MS",
                Self::derived_lease_wait(lease, upstream_timeout),
            )?,
            suspended_recheck: seconds("SUSPENDED_RECHECK_SECONDS", defaults.suspended_recheck)?,
            l1_trust: defaults.l1_trust,
        };
        if timing.refresh_margin >= SHOPTET_API_TOKEN_LIFETIME {
            return Err(ConfigError::new(
                "REFRESH_MARGIN_SECONDS",
                "must be shorter than a Shoptet token's 1800 s lifetime",
            ));
        }
        // A holder must finish its mint before its lease can be taken over.
        if timing.lease <= upstream_timeout + Duration::from_secs(1) {
            return Err(ConfigError::new(
                "LEASE_SECONDS",
                "must exceed UPSTREAM_TIMEOUT_MS by at least a second",
            ));
        }
        // Waiters must outlast a dead holder's lease to take over from it.
        if timing.lease_wait <= timing.lease {
            return Err(ConfigError::new(
                "LEASE_WAIT_MS",
                "must exceed LEASE_SECONDS",
            ));
        }
        if timing.suspended_recheck.is_zero() {
            return Err(ConfigError::new(
                "SUSPENDED_RECHECK_SECONDS",
                "must be at least 1",
            ));
        }
        Ok(timing)
    }
}
