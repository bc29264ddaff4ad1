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
//!
//! An instance that has seen other instances' refreshes land knows about
//! how long one takes at the least (from the holder taking the lease,
//! which the lease's expiry tells, to the token being read; the shortest
//! seen lately, creeping up when none is that short any more). A wait
//! sleeps through nine tenths of that, counted from when the lease was
//! taken, and only then starts the schedule above: its reads before the
//! token lands fall to a handful, and a token landing as fast as that is
//! read within 5 ms for a 100 ms mint, 10 ms for a 400 ms one. Clocks that
//! differ between instances shift the lease's start and the estimate alike,
//! so they cost accuracy, not correctness; a wait never sleeps past the
//! lease's end, and a new instance (nothing seen) polls at once.

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

    /// The share of a refresh's expected length a waiter sleeps through
    /// before its first poll.
    pub const SLEEP_THROUGH: f64 = 0.9;

    /// The pauses of one wait, jittered by `rng`: `head_start` (see
    /// [`Self::head_start`]) if any, then the schedule.
    pub fn pauses(&self, head_start: Duration, rng: fastrand::Rng) -> Pauses {
        Pauses {
            schedule: *self,
            head_start: Some(head_start).filter(|pause| !pause.is_zero()),
            nominal: self.first.min(self.cap),
            rng,
        }
    }

    /// How long a waiter sleeps before its first poll: until
    /// [`Self::SLEEP_THROUGH`] of the `expected` refresh has passed since
    /// the lease was taken (`since_taken` ago), never past the lease's end
    /// (`lease_left`); at once when nothing is expected yet.
    pub fn head_start(
        expected: Option<Duration>,
        since_taken: Duration,
        lease_left: Duration,
    ) -> Duration {
        expected.map_or(Duration::ZERO, |expected| {
            expected
                .mul_f64(Self::SLEEP_THROUGH)
                .saturating_sub(since_taken)
                .min(lease_left)
        })
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
    head_start: Option<Duration>,
    nominal: Duration,
    rng: fastrand::Rng,
}

impl Iterator for Pauses {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if let Some(head_start) = self.head_start.take() {
            return Some(head_start);
        }
        let pause = self
            .nominal
            .mul_f64(1.0 - self.schedule.jitter * self.rng.f64());
        self.nominal = self.schedule.grown(self.nominal);
        Some(pause)
    }
}

/// How long other instances' refreshes take at the least, as this
/// instance saw them land: the shortest seen, rising by an eighth with each
/// longer one (so a slower upstream is followed within a few refreshes).
#[derive(Debug, Default)]
pub(super) struct RefreshEstimate {
    /// 0: none seen yet.
    micros: AtomicU64,
}

impl RefreshEstimate {
    pub(super) fn observe(&self, took: Duration) {
        let took = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        let _ = self
            .micros
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |shortest| {
                Some(match shortest {
                    0 => took,
                    shortest => took.min(shortest.saturating_add(shortest / 8)),
                })
            });
    }

    pub(super) fn expected(&self) -> Option<Duration> {
        Some(self.micros.load(Ordering::Relaxed))
            .filter(|micros| *micros > 0)
            .map(Duration::from_micros)
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
            .pauses(Duration::ZERO, fastrand::Rng::with_seed(seed))
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
            .pauses(Duration::ZERO, fastrand::Rng::with_seed(7))
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
    fn with_nothing_expected_yet_the_wait_starts_polling_at_once() {
        let head_start = PollSchedule::head_start(None, Duration::ZERO, Duration::from_secs(5));
        assert_eq!(head_start, Duration::ZERO);
        let first = PollSchedule::DEFAULT
            .pauses(head_start, fastrand::Rng::with_seed(1))
            .next();
        assert!(first.unwrap() <= 2 * MS);
    }

    #[test]
    fn a_waiter_expecting_a_200_ms_refresh_sleeps_to_180_ms_after_the_lease_was_taken_then_polls_tightly()
     {
        let lease_left = Duration::from_secs(5);
        let expected = Some(200 * MS);
        let joined_at_once = PollSchedule::head_start(expected, Duration::ZERO, lease_left);
        let joined_late = PollSchedule::head_start(expected, 100 * MS, lease_left);
        let joined_after = PollSchedule::head_start(expected, 190 * MS, lease_left);
        assert_eq!(
            (joined_at_once, joined_late, joined_after),
            (180 * MS, 80 * MS, Duration::ZERO)
        );
        let pauses: Vec<_> = PollSchedule::DEFAULT
            .pauses(joined_at_once, fastrand::Rng::with_seed(1))
            .take(3)
            .collect();
        assert_eq!(pauses[0], 180 * MS);
        assert!(pauses[1] <= 2 * MS && pauses[2] <= 3 * MS, "{pauses:?}");
    }

    #[test]
    fn a_refresh_as_fast_as_expected_is_read_within_5_ms_of_a_100_ms_mint_and_10_ms_of_a_400_ms_one()
     {
        for (mint, lag) in [(100 * MS, 5 * MS), (400 * MS, 10 * MS)] {
            let head_start = PollSchedule::head_start(Some(mint), Duration::ZERO, 10 * mint);
            for seed in 0..100 {
                let mut at = Duration::ZERO;
                let seen = PollSchedule::DEFAULT
                    .pauses(head_start, fastrand::Rng::with_seed(seed))
                    .map(|pause| {
                        at += pause;
                        at
                    })
                    .find(|at| *at >= mint)
                    .unwrap();
                assert!(seen - mint <= lag, "{mint:?}: seen at {seen:?}");
            }
        }
    }

    #[test]
    fn a_wait_never_sleeps_past_the_end_of_the_lease() {
        let head_start = PollSchedule::head_start(
            Some(Duration::from_secs(4)),
            Duration::ZERO,
            Duration::from_secs(1),
        );
        assert_eq!(head_start, Duration::from_secs(1));
    }

    #[test]
    fn the_estimate_drops_at_once_to_a_shorter_refresh_and_creeps_up_an_eighth_per_longer_one() {
        let estimate = RefreshEstimate::default();
        assert_eq!(estimate.expected(), None);
        estimate.observe(400 * MS);
        assert_eq!(estimate.expected(), Some(400 * MS));
        estimate.observe(200 * MS);
        assert_eq!(estimate.expected(), Some(200 * MS));
        estimate.observe(600 * MS);
        assert_eq!(estimate.expected(), Some(225 * MS));
        estimate.observe(210 * MS);
        assert_eq!(estimate.expected(), Some(210 * MS));
    }

    #[test]
    fn at_most_12_reads_come_in_the_first_100_ms() {
        let bound = PollSchedule::DEFAULT.most_reads_within(100 * MS);
        assert!((10..=12).contains(&bound), "{bound}");
    }
}
