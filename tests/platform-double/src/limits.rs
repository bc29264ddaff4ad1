//! The platforms' API rate limits, and what the double observed of them.
//!
//! - Shoptet: at most [`SHOPTET_CONNECTIONS_PER_TOKEN`] requests in flight
//!   per API access token, and a leaky bucket per e-shop.
//! - Shoprenter: at most `n` requests per sliding second per shop.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::HeaderValue;

use crate::config::DoubleConfig;
use crate::endpoint::Endpoint;

/// Shoptet's documented limit of concurrent connections per API token.
pub(crate) const SHOPTET_CONNECTIONS_PER_TOKEN: usize = 3;

const NANOS_PER_SECOND: u128 = 1_000_000_000;
const ONE_SECOND: Duration = Duration::from_secs(1);

/// What the Shoptet limits decided about an arriving API request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Within the limits: the request now holds one of its token's slots.
    Accepted,
    /// Its token already had every slot taken: refused, holds no slot.
    TooManyConnections,
    /// The e-shop's bucket is full: refused, yet holds a slot (it is a
    /// connection like any other until answered). `retry_after` is when the
    /// level will be below capacity; `None` when the bucket never drains.
    BucketFull { retry_after: Option<Instant> },
}

/// Limiter state and observations, for both platforms.
#[derive(Debug, Default)]
pub(crate) struct Limits {
    /// Shoptet API token → requests in flight. Entries at zero are removed.
    in_flight: HashMap<String, usize>,
    /// e-shop → most requests ever attempted at once on one of its tokens.
    max_concurrent: HashMap<u64, usize>,
    buckets: HashMap<u64, Bucket>,
    /// Shoprenter shop → arrival times of accepted requests in the last second.
    windows: HashMap<String, VecDeque<Instant>>,
    /// Shoprenter shop → most accepted requests seen within one second.
    max_per_second: HashMap<String, usize>,
    /// 429s answered from these limits (injected faults excluded).
    refusals: HashMap<(Endpoint, String), u64>,
}

impl Limits {
    /// A Shoptet API request of `eshop_id` to `endpoint` (any of the API's,
    /// see [`Endpoint`]) arrives carrying `token`. The limits are the API's
    /// as a whole; a refusal is recorded against `endpoint`.
    ///
    /// The connection limit is checked before the bucket, as the connection
    /// is refused before the request is looked at; a request refused by
    /// either still counts as attempted towards the observed concurrency.
    pub(crate) fn shoptet_arrive(
        &mut self,
        endpoint: Endpoint,
        token: &str,
        eshop_id: u64,
        config: &DoubleConfig,
        now: Instant,
    ) -> Admission {
        let in_flight = self.in_flight.get(token).copied().unwrap_or(0);
        let attempted = in_flight + 1;
        let max = self.max_concurrent.entry(eshop_id).or_default();
        *max = (*max).max(attempted);
        if attempted > SHOPTET_CONNECTIONS_PER_TOKEN {
            self.refused(endpoint, eshop_id.to_string());
            return Admission::TooManyConnections;
        }
        self.in_flight.insert(token.to_owned(), attempted);

        let bucket = self.buckets.entry(eshop_id).or_default();
        let per_second = config.shoptet_bucket_drain_per_second;
        bucket.drain(now, per_second);
        if bucket.level >= config.shoptet_bucket_capacity {
            let retry_after = bucket.below_capacity_at(config.shoptet_bucket_capacity, per_second);
            self.refused(endpoint, eshop_id.to_string());
            return Admission::BucketFull { retry_after };
        }
        Admission::Accepted
    }

    /// Frees the slot an accepted (or bucket-refused) request held.
    pub(crate) fn shoptet_leave(&mut self, token: &str) {
        if let Some(count) = self.in_flight.get_mut(token) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.in_flight.remove(token);
            }
        }
    }

    /// An answer to a Shoptet API request of `eshop_id` is produced; returns
    /// the bucket's whole-number level for `X-RateLimit-Bucket-Filling`.
    /// `costs_a_drop` is false only for the bucket's own refusals, which
    /// would otherwise keep a full bucket full forever.
    pub(crate) fn shoptet_answered(
        &mut self,
        eshop_id: u64,
        costs_a_drop: bool,
        config: &DoubleConfig,
        now: Instant,
    ) -> u32 {
        let bucket = self.buckets.entry(eshop_id).or_default();
        bucket.drain(now, config.shoptet_bucket_drain_per_second);
        if costs_a_drop {
            bucket.add(now);
        }
        bucket.level
    }

    /// A Shoprenter API request to `shop` arrives; true when accepted.
    /// Refused requests do not enter the window, so a client backing off
    /// is not punished for the attempts it made while over the limit.
    pub(crate) fn shoprenter_arrive(&mut self, shop: &str, per_second: u32, now: Instant) -> bool {
        let window = self.windows.entry(shop.to_owned()).or_default();
        while window
            .front()
            .is_some_and(|&arrived| now.saturating_duration_since(arrived) >= ONE_SECOND)
        {
            window.pop_front();
        }
        if window.len() >= per_second as usize {
            self.refused(Endpoint::ShoprenterApi, shop.to_owned());
            return false;
        }
        window.push_back(now);
        let seen = window.len();
        let max = self.max_per_second.entry(shop.to_owned()).or_default();
        *max = (*max).max(seen);
        true
    }

    pub(crate) fn max_concurrent(&self, eshop_id: u64) -> usize {
        self.max_concurrent.get(&eshop_id).copied().unwrap_or(0)
    }

    pub(crate) fn max_per_second(&self, shop: &str) -> usize {
        self.max_per_second.get(shop).copied().unwrap_or(0)
    }

    pub(crate) fn refusals(&self, endpoint: Endpoint, shop: &str) -> u64 {
        self.refusals
            .get(&(endpoint, shop.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// Forgets what was observed; the limiters themselves keep their state,
    /// since requests in flight and recent arrivals are still real.
    pub(crate) fn reset_observations(&mut self) {
        self.max_concurrent.clear();
        self.max_per_second.clear();
        self.refusals.clear();
    }

    fn refused(&mut self, endpoint: Endpoint, shop: String) {
        *self.refusals.entry((endpoint, shop)).or_default() += 1;
    }
}

/// A leaky bucket counting whole drops: one leaks every `1/per_second`
/// seconds, measured from the moment the bucket last stopped being empty.
/// Whole drops keep the level (and the header showing it) exact instead of
/// slipping below an integer a few microseconds after every request.
#[derive(Debug, Clone)]
struct Bucket {
    level: u32,
    /// When leaking started; drops leak at `origin + k / per_second`.
    origin: Instant,
    /// Drops leaked since `origin`.
    leaked: u64,
}

impl Default for Bucket {
    fn default() -> Self {
        Bucket {
            level: 0,
            origin: Instant::now(),
            leaked: 0,
        }
    }
}

impl Bucket {
    fn drain(&mut self, now: Instant, per_second: u32) {
        if self.level == 0 || per_second == 0 {
            return;
        }
        let elapsed = now.saturating_duration_since(self.origin).as_nanos();
        let due =
            u64::try_from(elapsed * u128::from(per_second) / NANOS_PER_SECOND).unwrap_or(u64::MAX);
        let leaking = due.saturating_sub(self.leaked).min(u64::from(self.level));
        self.level -= u32::try_from(leaking).unwrap_or(self.level);
        self.leaked = due;
    }

    fn add(&mut self, now: Instant) {
        if self.level == 0 {
            self.origin = now;
            self.leaked = 0;
        }
        self.level = self.level.saturating_add(1);
    }

    /// When enough drops will have leaked for the level to be below
    /// `capacity`; `None` if it never drains.
    fn below_capacity_at(&self, capacity: u32, per_second: u32) -> Option<Instant> {
        if per_second == 0 {
            return None;
        }
        let to_leak = u128::from(self.level.saturating_sub(capacity)) + 1;
        let nanos = ((u128::from(self.leaked) + to_leak) * NANOS_PER_SECOND)
            .div_ceil(u128::from(per_second));
        let after = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        self.origin.checked_add(after)
    }
}

/// `Retry-After` as an HTTP-date no earlier than `moment`: HTTP-dates have
/// whole seconds, and rounding down would send the client back too early.
pub(crate) fn retry_after_date(moment: SystemTime) -> HeaderValue {
    let secs = moment
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
        + 1;
    let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs));
    HeaderValue::from_str(&date).expect("an HTTP-date is a valid header value")
}

/// The wall-clock time of `instant`, for an HTTP-date.
pub(crate) fn wall_clock(instant: Instant) -> SystemTime {
    let now = Instant::now();
    let wall = SystemTime::now();
    match instant.checked_duration_since(now) {
        Some(ahead) => wall + ahead,
        None => wall - now.duration_since(instant),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(capacity: u32, per_second: u32) -> DoubleConfig {
        DoubleConfig {
            shoptet_bucket_capacity: capacity,
            shoptet_bucket_drain_per_second: per_second,
            ..DoubleConfig::default()
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_bucket_leaks_whole_drops_from_when_it_stopped_being_empty() {
        let start = Instant::now();
        let mut bucket = Bucket::default();
        bucket.add(start);
        bucket.add(start + ms(50));
        bucket.add(start + ms(60));

        bucket.drain(start + ms(99), 10);
        assert_eq!(bucket.level, 3);
        bucket.drain(start + ms(100), 10);
        assert_eq!(bucket.level, 2);
        bucket.drain(start + ms(250), 10);
        assert_eq!(bucket.level, 1);
        bucket.drain(start + ms(10_000), 10);
        assert_eq!(bucket.level, 0);

        bucket.add(start + ms(10_050));
        bucket.drain(start + ms(10_149), 10);
        assert_eq!(bucket.level, 1, "leaking restarts with the first drop");
    }

    #[test]
    fn a_full_bucket_is_below_capacity_at_the_announced_moment_and_not_before() {
        let start = Instant::now();
        let mut bucket = Bucket::default();
        for _ in 0..4 {
            bucket.add(start);
        }
        // Over capacity (calls admitted together add their drops later):
        // two drops must leak for the level to be below 3.
        let at = bucket.below_capacity_at(3, 10).unwrap();
        assert_eq!(at, start + ms(200));

        let mut early = bucket.clone();
        early.drain(at - Duration::from_nanos(1), 10);
        assert_eq!(early.level, 3);
        bucket.drain(at, 10);
        assert_eq!(bucket.level, 2);
        assert_eq!(bucket.below_capacity_at(3, 0), None);
    }

    #[test]
    fn the_fourth_request_on_a_token_is_refused_and_observed_as_four() {
        let mut limits = Limits::default();
        let config = config(200, 10);
        let now = Instant::now();

        for _ in 0..3 {
            assert_eq!(
                limits.shoptet_arrive(Endpoint::ShoptetApi, "t", 1, &config, now),
                Admission::Accepted
            );
        }
        assert_eq!(
            limits.shoptet_arrive(Endpoint::ShoptetApi, "t", 1, &config, now),
            Admission::TooManyConnections
        );
        assert_eq!(
            limits.shoptet_arrive(Endpoint::ShoptetApi, "other", 1, &config, now),
            Admission::Accepted
        );
        limits.shoptet_leave("t");

        assert_eq!(
            limits.shoptet_arrive(Endpoint::ShoptetApi, "t", 1, &config, now),
            Admission::Accepted
        );
        assert_eq!(limits.max_concurrent(1), 4);
        assert_eq!(limits.refusals(Endpoint::ShoptetApi, "1"), 1);
    }

    #[test]
    fn a_full_bucket_refuses_for_free_and_announces_when_it_has_room() {
        let mut limits = Limits::default();
        let config = config(2, 1);
        let start = Instant::now();

        for _ in 0..2 {
            assert_eq!(
                limits.shoptet_arrive(Endpoint::ShoptetApi, "t", 1, &config, start),
                Admission::Accepted
            );
            limits.shoptet_answered(1, true, &config, start);
            limits.shoptet_leave("t");
        }
        let refusal = limits.shoptet_arrive(Endpoint::ShoptetApi, "t", 1, &config, start + ms(10));
        assert_eq!(
            refusal,
            Admission::BucketFull {
                retry_after: Some(start + ONE_SECOND)
            }
        );
        assert_eq!(
            limits.shoptet_answered(1, false, &config, start + ms(10)),
            2
        );
        limits.shoptet_leave("t");

        assert_eq!(
            limits.shoptet_arrive(Endpoint::ShoptetApi, "t", 1, &config, start + ONE_SECOND),
            Admission::Accepted
        );
        assert_eq!(limits.refusals(Endpoint::ShoptetApi, "1"), 1);
    }

    #[test]
    fn the_shoprenter_window_slides_and_ignores_refused_requests() {
        let mut limits = Limits::default();
        let start = Instant::now();

        assert!(limits.shoprenter_arrive("shop", 3, start));
        assert!(limits.shoprenter_arrive("shop", 3, start + ms(400)));
        assert!(limits.shoprenter_arrive("shop", 3, start + ms(800)));
        assert!(!limits.shoprenter_arrive("shop", 3, start + ms(999)));
        assert!(limits.shoprenter_arrive("other", 3, start + ms(999)));
        // The first arrival has left the window; the refused one never entered.
        assert!(limits.shoprenter_arrive("shop", 3, start + ms(1000)));
        assert!(!limits.shoprenter_arrive("shop", 3, start + ms(1399)));
        assert!(limits.shoprenter_arrive("shop", 3, start + ms(1400)));

        assert_eq!(limits.max_per_second("shop"), 3);
        assert_eq!(limits.max_per_second("other"), 1);
        assert_eq!(limits.refusals(Endpoint::ShoprenterApi, "shop"), 2);
    }

    #[test]
    fn retry_after_dates_round_up_to_the_next_whole_second() {
        let moment = UNIX_EPOCH + Duration::from_millis(1_720_000_000_250);
        let date = retry_after_date(moment);
        let parsed = httpdate::parse_http_date(date.to_str().unwrap()).unwrap();
        assert_eq!(parsed, UNIX_EPOCH + Duration::from_secs(1_720_000_001));

        let whole = UNIX_EPOCH + Duration::from_secs(1_720_000_000);
        let parsed = httpdate::parse_http_date(retry_after_date(whole).to_str().unwrap()).unwrap();
        assert!(parsed > whole);
    }
}
