//! What the table adapters (DynamoDB, SQLite) have in common: a cache entry
//! and a registration as plain values with times in epoch milliseconds, and
//! their one conversion to a [`CacheEntry`] and a [`Registration`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::StoreError;
use crate::events::InstallationEvent;
use crate::ids::ShopRef;
use crate::model::{CacheEntry, CachedToken, InstallationStatus, Lease, Registration};
use crate::secret::ApiAccessToken;

/// A token cache entry as a table stores it. Each adapter reads its own
/// representation (attribute values, columns) into this.
#[derive(Debug, Default)]
pub struct RawEntry {
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
pub fn corrupt(field: &str) -> StoreError {
    StoreError::Corrupt(format!("token cache entry: bad {field}"))
}

/// A registry row as a table stores it, read by each adapter from its own
/// representation. `key` is [`ShopRef::key`].
#[derive(Debug, Default)]
pub struct RawRegistration {
    pub key: Option<String>,
    pub platform: Option<String>,
    pub status: Option<String>,
    pub installed_ms: Option<i64>,
    pub updated_ms: Option<i64>,
    pub recheck_ms: Option<i64>,
    /// Absent in rows written before lifecycle events: 0.
    pub sequence: Option<i64>,
    /// Absent in rows written before lifecycle events: 0.
    pub mint_failures: Option<i64>,
}

impl RawRegistration {
    pub fn into_registration(self) -> Result<Registration, StoreError> {
        let key = self
            .key
            .ok_or_else(|| StoreError::Corrupt("a registration has no shop key".into()))?;
        let shop = ShopRef::from_key(&key)
            .map_err(|_| StoreError::Corrupt("a registration's shop key is unreadable".into()))?;
        let bad = |field: &str| corrupt_registration(&key, field);
        if self.platform.as_deref() != Some(shop.platform().as_str()) {
            return Err(bad("platform"));
        }
        let status = self
            .status
            .as_deref()
            .and_then(|status| status.parse::<InstallationStatus>().ok())
            .ok_or_else(|| bad("status"))?;
        let time =
            |ms: Option<i64>, field: &str| ms.and_then(from_millis).ok_or_else(|| bad(field));
        Ok(Registration {
            status,
            installed_at: time(self.installed_ms, "installed_at")?,
            updated_at: time(self.updated_ms, "updated_at")?,
            recheck_at: self
                .recheck_ms
                .map(|ms| from_millis(ms).ok_or_else(|| bad("recheck_at")))
                .transpose()?,
            sequence: u64::try_from(self.sequence.unwrap_or(0)).map_err(|_| bad("sequence"))?,
            mint_failures: u32::try_from(self.mint_failures.unwrap_or(0))
                .map_err(|_| bad("mint_failures"))?,
            shop,
        })
    }
}

/// Names the shop and the field only, never a value.
pub fn corrupt_registration(key: &str, field: &str) -> StoreError {
    StoreError::Corrupt(format!(
        "the registration of {key} is unreadable: bad {field}"
    ))
}

/// An event as the adapters store it beside the registration: JSON.
pub fn to_stored(event: &InstallationEvent) -> String {
    serde_json::to_string(event).expect("an event always serializes")
}

/// A stored event read back; the error names no value.
pub fn from_stored(json: &str) -> Result<InstallationEvent, StoreError> {
    serde_json::from_str(json)
        .map_err(|_| StoreError::Corrupt("a stored lifecycle event is unreadable".into()))
}

/// Epoch milliseconds, as both tables store times.
pub fn millis(at: SystemTime) -> i64 {
    let ms = at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    i64::try_from(ms).unwrap_or(i64::MAX)
}

pub fn from_millis(ms: i64) -> Option<SystemTime> {
    let ms = u64::try_from(ms).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_millis(ms))
}

/// Epoch seconds, as DynamoDB's TTL reads them.
pub fn epoch_seconds(at: SystemTime) -> u64 {
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
    fn a_registration_reads_back_from_its_raw_values() {
        let raw = RawRegistration {
            key: Some("shoprenter#demo".into()),
            platform: Some("shoprenter".into()),
            status: Some("suspended".into()),
            installed_ms: Some(1_700_000_000_001),
            updated_ms: Some(1_700_000_000_002),
            recheck_ms: Some(1_700_000_000_003),
            sequence: Some(4),
            mint_failures: None,
        };
        let registration = raw.into_registration().unwrap();
        assert_eq!(
            registration.shop,
            ShopRef::from_key("shoprenter#demo").unwrap()
        );
        assert_eq!(registration.status, InstallationStatus::Suspended);
        assert_eq!(millis(registration.installed_at), 1_700_000_000_001);
        assert_eq!(millis(registration.updated_at), 1_700_000_000_002);
        assert_eq!(registration.recheck_at.map(millis), Some(1_700_000_000_003));
        assert_eq!((registration.sequence, registration.mint_failures), (4, 0));
    }

    #[test]
    fn an_unreadable_registration_is_corrupt_and_names_only_its_key() {
        let good = || RawRegistration {
            key: Some("shoptet#1".into()),
            platform: Some("shoptet".into()),
            status: Some("active".into()),
            installed_ms: Some(1),
            updated_ms: Some(2),
            recheck_ms: None,
            sequence: None,
            mint_failures: None,
        };
        assert!(good().into_registration().is_ok());
        let broken = [
            RawRegistration {
                status: Some("value-that-must-not-leak".into()),
                ..good()
            },
            RawRegistration {
                platform: Some("shoprenter".into()),
                ..good()
            },
            RawRegistration {
                installed_ms: None,
                ..good()
            },
            RawRegistration {
                recheck_ms: Some(-1),
                ..good()
            },
        ];
        for raw in broken {
            let error = raw.into_registration().unwrap_err();
            assert!(matches!(error, StoreError::Corrupt(_)), "{error}");
            assert!(error.to_string().contains("shoptet#1"), "{error}");
            assert!(!error.to_string().contains("must-not-leak"), "{error}");
        }
        let error = RawRegistration {
            key: Some("nonsense".into()),
            ..good()
        }
        .into_registration()
        .unwrap_err();
        assert!(matches!(error, StoreError::Corrupt(_)));
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
