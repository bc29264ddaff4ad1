//! What the table adapters (DynamoDB, SQLite) have in common: a cache entry
//! as plain values with times in epoch milliseconds, and its one conversion
//! to a [`CacheEntry`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::StoreError;
use crate::model::{CacheEntry, CachedToken, Lease};
use crate::secret::ApiAccessToken;

/// A token cache entry as a table stores it. Each adapter reads its own
/// representation (attribute values, columns) into this.
#[derive(Debug, Default)]
pub(crate) struct RawEntry {
    pub token: Option<String>,
    pub token_expires_ms: Option<i64>,
    pub scopes: Option<Vec<String>>,
    pub ledger_ms: Option<Vec<i64>>,
    pub lease_owner: Option<String>,
    pub lease_until_ms: Option<i64>,
}

impl RawEntry {
    pub fn into_entry(self) -> Result<CacheEntry, StoreError> {
        let token = match self.token {
            None => None,
            Some(value) => Some(CachedToken {
                access_token: ApiAccessToken::new(value),
                expires_at: self
                    .token_expires_ms
                    .and_then(from_millis)
                    .ok_or_else(|| corrupt("token expiry"))?,
                scopes: self.scopes.unwrap_or_default(),
            }),
        };
        let lease = match (self.lease_owner, self.lease_until_ms) {
            (Some(owner), Some(until)) => Some(Lease {
                owner,
                expires_at: from_millis(until).ok_or_else(|| corrupt("lease expiry"))?,
            }),
            _ => None,
        };
        let ledger = self
            .ledger_ms
            .unwrap_or_default()
            .into_iter()
            .map(|ms| from_millis(ms).ok_or_else(|| corrupt("ledger")))
            .collect::<Result<_, _>>()?;
        Ok(CacheEntry {
            token,
            lease,
            ledger,
        })
    }
}

/// The adapters name only the field: a value could be a token.
pub(crate) fn corrupt(field: &str) -> StoreError {
    StoreError::Corrupt(format!("token cache entry: bad {field}"))
}

/// Epoch milliseconds, as both tables store times.
pub(crate) fn millis(at: SystemTime) -> i64 {
    let ms = at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    i64::try_from(ms).unwrap_or(i64::MAX)
}

pub(crate) fn from_millis(ms: i64) -> Option<SystemTime> {
    let ms = u64::try_from(ms).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_millis(ms))
}

/// Epoch seconds, as DynamoDB's TTL reads them.
pub(crate) fn epoch_seconds(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_through_milliseconds() {
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(from_millis(millis(at)), Some(at));
        assert_eq!(from_millis(-1), None);
    }

    #[test]
    fn an_empty_entry_is_the_default_entry() {
        assert_eq!(RawEntry::default().into_entry(), Ok(CacheEntry::default()));
    }

    #[test]
    fn a_token_without_an_expiry_is_corrupt_and_the_message_holds_no_value() {
        let raw = RawEntry {
            token: Some("tok-secret-value".into()),
            ..RawEntry::default()
        };
        let error = raw.into_entry().unwrap_err();
        assert!(matches!(error, StoreError::Corrupt(_)));
        assert!(!error.to_string().contains("tok-secret-value"));
    }
}
