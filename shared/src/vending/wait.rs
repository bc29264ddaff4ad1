//! How a request that lost the race for a shop's refresh lease polls the
//! shared cache until the holder's token lands.
//!
//! Polls start short and back off: the first comes a couple of
//! milliseconds after the lease was found busy, each later pause is 1.25×
//! the one before, up to a cap of 50 ms, and every pause is shortened by a
//! random part of up to a quarter so waiters on different instances spread
//! out. A token that lands `t` into the wait is therefore read by a poll
//! starting at most about `t / 3` (and never more than 50 ms) after it was
//! written, plus that read's own round trip: a token stored 20 ms into the
//! wait is seen by a poll starting within 8 ms.
//!
//! What it costs in DynamoDB reads per waiting request (one consistent
//! GetItem per poll, one read request unit for a token item): at most 12
//! reads in the first 100 ms, then at most 27 a second (at least 37.5 ms
//! apart). A wait for a typical mint (under 0.5 s) makes at most 23 reads;
//! a wait of 9 s (a dead holder's lease outlasted and taken over) at most
//! 250, about 20 a second, where fixed 20–60 ms polls made up to 450. That is per instance, not
//! per caller: the instance's other requests for the shop wait on its
//! single flight and read nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The pauses between a waiter's polls (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PollSchedule {
    /// The pause before the first poll.
    pub first: Duration,
    /// Each nominal pause is this many times the one before…
    pub growth: f64,
    /// …up to this, which no pause exceeds.
    pub cap: Duration,
    /// A random part of up to this fraction is taken off every pause.
    pub jitter: f64,
}

impl PollSchedule {
    /// The schedule the vendor waits with.
    pub const DEFAULT: Self = Self {
        first: Duration::from_millis(2),
        growth: 1.25,
        cap: Duration::from_millis(50),
        jitter: 0.25,
    };

    /// The pauses of one wait, jittered by `rng`.
    pub fn pauses(&self, rng: fastrand::Rng) -> Pauses {
        Pauses {
            schedule: *self,
            nominal: self.first.min(self.cap),
            rng,
        }
    }

    /// The most polls a wait of `wait` can make: every pause at its shortest
    /// (the reads' own round trips, not counted, only make it fewer).
    pub fn most_reads_within(&self, wait: Duration) -> u32 {
        let shortest = |nominal: Duration| nominal.mul_f64(1.0 - self.jitter);
        let mut nominal = self.first.min(self.cap);
        let mut elapsed = shortest(nominal);
        let mut reads = 0;
        while elapsed <= wait {
            reads += 1;
            nominal = self.grown(nominal);
            elapsed += shortest(nominal);
        }
        reads
    }

    fn grown(&self, nominal: Duration) -> Duration {
        nominal.mul_f64(self.growth).min(self.cap)
    }
}

impl Default for PollSchedule {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The pauses of one wait; endless (the caller's deadline ends the wait).
pub struct Pauses {
    schedule: PollSchedule,
    nominal: Duration,
    rng: fastrand::Rng,
}

impl Iterator for Pauses {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let pause = self
            .nominal
            .mul_f64(1.0 - self.schedule.jitter * self.rng.f64());
        self.nominal = self.schedule.grown(self.nominal);
        Some(pause)
    }
}

/// How many lease waits an instance made, and how many token-cache reads
/// they cost (the polls; not the read and the lease attempt before a wait).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WaitCounts {
    pub waits: u64,
    pub reads: u64,
}

#[derive(Debug, Default)]
pub(super) struct WaitCounters {
    waits: AtomicU64,
    reads: AtomicU64,
}

impl WaitCounters {
    pub(super) fn waited(&self) {
        self.waits.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn read(&self) {
        self.reads.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn counts(&self) -> WaitCounts {
        WaitCounts {
            waits: self.waits.load(Ordering::Relaxed),
            reads: self.reads.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// The moments (from the start of the wait) at which one wait polls,
    /// until `until`; the reads themselves are taken as instant.
    fn polls(seed: u64, until: Duration) -> Vec<Duration> {
        let mut at = Duration::ZERO;
        PollSchedule::DEFAULT
            .pauses(fastrand::Rng::with_seed(seed))
            .map(|pause| {
                at += pause;
                at
            })
            .take_while(|at| *at <= until)
            .collect()
    }

    #[test]
    fn the_first_polls_come_within_5_ms() {
        for seed in 0..100 {
            let first = polls(seed, Duration::from_secs(1));
            assert!(first[0] <= 2 * MS, "{first:?}");
            assert!(first[1] <= 5 * MS, "{first:?}");
        }
    }

    #[test]
    fn a_token_landing_20_ms_into_the_wait_is_read_within_8_ms() {
        for seed in 0..100 {
            let landed = 20 * MS;
            let seen = polls(seed, Duration::from_secs(1))
                .into_iter()
                .find(|at| *at >= landed)
                .unwrap();
            assert!(seen - landed <= 8 * MS, "seen at {seen:?}");
        }
    }

    #[test]
    fn pauses_grow_but_never_exceed_50_ms() {
        let pauses: Vec<_> = PollSchedule::DEFAULT
            .pauses(fastrand::Rng::with_seed(7))
            .take(100)
            .collect();
        assert!(pauses.iter().all(|pause| *pause <= 50 * MS));
        assert!(pauses[20..].iter().all(|pause| *pause >= 37 * MS));
    }

    #[test]
    fn a_wait_of_9_s_makes_at_most_250_reads() {
        let bound = PollSchedule::DEFAULT.most_reads_within(Duration::from_secs(9));
        assert!(bound <= 250, "{bound}");
        for seed in 0..20 {
            let made = polls(seed, Duration::from_secs(9)).len() as u32;
            assert!(made <= bound, "{made} > {bound}");
            // Not much fewer either: the cap, not the growth, sets the rate.
            assert!(made >= 180, "{made}");
        }
    }

    #[test]
    fn a_wait_of_half_a_second_makes_at_most_23_reads() {
        let bound = PollSchedule::DEFAULT.most_reads_within(Duration::from_millis(500));
        assert!(bound <= 23, "{bound}");
        for seed in 0..20 {
            assert!(polls(seed, Duration::from_millis(500)).len() as u32 <= bound);
        }
    }

    #[test]
    fn at_most_12_reads_come_in_the_first_100_ms() {
        let bound = PollSchedule::DEFAULT.most_reads_within(100 * MS);
        assert!((10..=12).contains(&bound), "{bound}");
    }
}
