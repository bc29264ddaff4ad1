//! `Retry-After`: read as delta-seconds or an HTTP-date (what Shoptet's API
//! sends), written by the broker as whole seconds rounded up.

use std::time::{Duration, SystemTime};

/// The wait a `Retry-After` header value asks for, from `now`: delta-seconds
/// (`120`) or an HTTP-date (`Mon, 01 Jul 2024 12:01:11 GMT`). A date
/// already past is no wait (zero); `None` when the value is neither.
/// Surrounding whitespace is ignored.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use shop_token_protocol::retry_after;
///
/// let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_719_835_261);
/// assert_eq!(retry_after::parse("7", now), Some(Duration::from_secs(7)));
/// assert_eq!(
///     retry_after::parse("Mon, 01 Jul 2024 12:01:11 GMT", now),
///     Some(Duration::from_secs(10))
/// );
/// assert_eq!(retry_after::parse("soon", now), None);
/// ```
pub fn parse(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

/// [`parse`] for raw header bytes (a header value need not be UTF-8).
pub fn parse_bytes(value: &[u8], now: SystemTime) -> Option<Duration> {
    parse(std::str::from_utf8(value).ok()?, now)
}

/// The seconds the broker writes for a wait of `after`: whole seconds,
/// rounded up, at least 1, so a caller never retries too early.
///
/// ```
/// use std::time::Duration;
/// use shop_token_protocol::retry_after::to_seconds;
///
/// assert_eq!(to_seconds(Duration::from_millis(1_200)), 2);
/// assert_eq!(to_seconds(Duration::ZERO), 1);
/// ```
pub fn to_seconds(after: Duration) -> u64 {
    let seconds = after.as_millis().div_ceil(1000).max(1);
    u64::try_from(seconds).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_http_dates_are_read_relative_to_now() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_719_835_261);
        assert_eq!(parse("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse(" 0 ", now), Some(Duration::ZERO));
        // Shoptet's form: Mon, 01 Jul 2024 12:01:11 GMT is 10 s after `now`.
        assert_eq!(
            parse("Mon, 01 Jul 2024 12:01:11 GMT", now),
            Some(Duration::from_secs(10))
        );
        // A date already past: no wait.
        assert_eq!(
            parse("Mon, 01 Jul 2024 12:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(parse(&later, now), Some(Duration::from_secs(30)));
        for bad in ["soon", "", "-1", "1.5", "99999999999999999999"] {
            assert_eq!(parse(bad, now), None, "{bad:?}");
        }
        assert_eq!(parse_bytes(b"12", now), Some(Duration::from_secs(12)));
        assert_eq!(parse_bytes(b"\xff", now), None);
    }

    #[test]
    fn the_broker_writes_whole_seconds_rounded_up_at_least_one() {
        assert_eq!(to_seconds(Duration::from_millis(1_200)), 2);
        assert_eq!(to_seconds(Duration::from_secs(60)), 60);
        assert_eq!(to_seconds(Duration::from_millis(60_001)), 61);
        assert_eq!(to_seconds(Duration::ZERO), 1);
        assert_eq!(to_seconds(Duration::from_millis(1)), 1);
        assert_eq!(to_seconds(Duration::MAX), u64::MAX);
    }

    #[test]
    fn what_the_broker_writes_reads_back_at_least_as_long() {
        let now = SystemTime::UNIX_EPOCH;
        for millis in [0, 1, 999, 1_000, 1_001, 59_999, 1_200_000] {
            let after = Duration::from_millis(millis);
            let read = parse(&to_seconds(after).to_string(), now).unwrap();
            assert!(read >= after, "{after:?} read back as {read:?}");
        }
    }
}
