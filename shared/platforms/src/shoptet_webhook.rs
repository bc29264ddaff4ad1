//! Shoptet's add-on system webhooks: the four lifecycle events, their body,
//! and the signature header. Platform facts, with sources: `docs/platforms.md`.

use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha1::Sha1;

use crate::ids::ShoptetEshopId;
use crate::secret::{ExposeSecret, WebhookKey};

/// Lowercase hex HMAC-SHA1 of the raw body with the signature key.
pub const SIGNATURE_HEADER: &str = "Shoptet-Webhook-Signature";

/// Shoptet waits this long for an answer *(second-hand)*; we answer sooner.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(4);

/// Bodies are a few hundred bytes; anything much larger is not an event.
pub const MAX_BODY: usize = 4096;

/// The system events an add-on receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddonEventKind {
    Uninstall,
    Terminate,
    Suspend,
    Approve,
}

impl AddonEventKind {
    pub const ALL: [Self; 4] = [
        Self::Uninstall,
        Self::Terminate,
        Self::Suspend,
        Self::Approve,
    ];

    /// The event Shoptet names `name`, spelled as [`as_str`](Self::as_str)
    /// spells it; `None` for one this broker does not know.
    fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// Shoptet's name of the event, as the body carries it; also the
    /// `event` of logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Uninstall => "addon:uninstall",
            Self::Terminate => "addon:terminate",
            Self::Suspend => "addon:suspend",
            Self::Approve => "addon:approve",
        }
    }
}

/// One delivery, as parsed. Nothing in it is trusted: the state it claims
/// is confirmed with the OAuth server before anything changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddonEvent {
    pub eshop_id: ShoptetEshopId,
    /// `None`: an event this broker does not know (acknowledged, ignored).
    pub kind: Option<AddonEventKind>,
    /// `eventCreated`, when it parses; never later than the delivery.
    pub created: Option<SystemTime>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEvent {
    #[error("the body is not a JSON object")]
    NotAnObject,
    #[error("eshopId is missing or not a valid e-shop id")]
    EshopId,
    #[error("eventInstance names another e-shop than eshopId")]
    InstanceMismatch,
    #[error("event is missing or not a string")]
    Event,
}

impl AddonEvent {
    /// `{"eshopId":222651,"event":"addon:uninstall","eventCreated":"…","eventInstance":"222651"}`;
    /// ids may be numbers or strings (both appear in Shoptet's examples).
    pub fn parse(body: &[u8], received: SystemTime) -> Result<Self, InvalidEvent> {
        let value: Value = serde_json::from_slice(body).map_err(|_| InvalidEvent::NotAnObject)?;
        let object = value.as_object().ok_or(InvalidEvent::NotAnObject)?;
        let eshop_id = object
            .get("eshopId")
            .and_then(ShoptetEshopId::from_json)
            .ok_or(InvalidEvent::EshopId)?;
        if let Some(instance) = object.get("eventInstance").filter(|v| !v.is_null())
            && ShoptetEshopId::from_json(instance) != Some(eshop_id)
        {
            return Err(InvalidEvent::InstanceMismatch);
        }
        let kind = object
            .get("event")
            .and_then(Value::as_str)
            .ok_or(InvalidEvent::Event)?;
        let created = object
            .get("eventCreated")
            .and_then(Value::as_str)
            .and_then(parse_event_time)
            .map(|created| created.min(received));
        Ok(Self {
            eshop_id,
            kind: AddonEventKind::parse(kind),
            created,
        })
    }
}

/// `2019-01-08T15:13:39+0100` (Shoptet's form), `+01:00` or `Z`.
fn parse_event_time(text: &str) -> Option<SystemTime> {
    if text.len() < 20 || !text.is_char_boundary(19) {
        return None;
    }
    let (local, zone) = text.split_at(19);
    let naive = humantime::parse_rfc3339(&format!("{local}Z")).ok()?;
    let offset = match zone {
        "Z" => 0,
        _ => {
            let (sign, digits) = match zone.as_bytes()[0] {
                b'+' => (1i64, &zone[1..]),
                b'-' => (-1i64, &zone[1..]),
                _ => return None,
            };
            let digits = digits.replace(':', "");
            if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let hours: i64 = digits[..2].parse().ok()?;
            let minutes: i64 = digits[2..].parse().ok()?;
            sign * (hours * 3600 + minutes * 60)
        }
    };
    // Local time minus its offset is UTC.
    let seconds = offset.unsigned_abs();
    if offset >= 0 {
        naive.checked_sub(Duration::from_secs(seconds))
    } else {
        naive.checked_add(Duration::from_secs(seconds))
    }
}

/// Whether `signature` (the header's value) is the key's HMAC-SHA1 of the
/// raw body. The comparison is constant-time (`hmac`'s `verify_slice`).
pub fn signature_matches(key: &WebhookKey, body: &[u8], signature: &[u8]) -> bool {
    hmac_sha1_matches(key.expose_secret().as_bytes(), body, signature)
}

/// The header a key gives a body (the platform double and tests sign with it).
pub fn sign(key: &WebhookKey, body: &[u8]) -> String {
    hmac_sha1_hex(key.expose_secret().as_bytes(), body)
}

/// Shoptet's one webhook signature (add-on and e-shop webhooks alike):
/// whether `signature`, lowercase hex, is the HMAC-SHA1 of `body` with
/// `key`, compared in constant time.
pub(crate) fn hmac_sha1_matches(key: &[u8], body: &[u8], signature: &[u8]) -> bool {
    let Ok(claimed) = hex::decode(signature) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(key) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&claimed).is_ok()
}

/// The signature `key` gives `body`, lowercase hex.
pub(crate) fn hmac_sha1_hex(key: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> SystemTime {
        humantime::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn shoptets_example_parses_with_numeric_or_string_ids() {
        let now = at("2030-01-01T00:00:00Z");
        for body in [
            r#"{"eshopId":222651,"event":"addon:uninstall","eventCreated":"2019-01-08T15:13:39+0100","eventInstance":"222651"}"#,
            r#"{"eshopId":"222651","event":"addon:uninstall","eventCreated":"2019-01-08T15:13:39+0100","eventInstance":222651}"#,
        ] {
            let event = AddonEvent::parse(body.as_bytes(), now).unwrap();
            assert_eq!(event.eshop_id.get(), 222651);
            assert_eq!(event.kind, Some(AddonEventKind::Uninstall));
            assert_eq!(event.created, Some(at("2019-01-08T14:13:39Z")));
        }
    }

    #[test]
    fn each_event_parses_from_the_name_it_is_logged_by() {
        let names: Vec<&str> = AddonEventKind::ALL.map(AddonEventKind::as_str).to_vec();
        assert_eq!(
            names,
            [
                "addon:uninstall",
                "addon:terminate",
                "addon:suspend",
                "addon:approve"
            ]
        );
        for kind in AddonEventKind::ALL {
            assert_eq!(AddonEventKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(AddonEventKind::parse("addon:Uninstall"), None);
    }

    #[test]
    fn unknown_events_parse_and_future_times_clamp_to_receipt() {
        let now = at("2020-01-01T00:00:00Z");
        let event = AddonEvent::parse(
            br#"{"eshopId":1,"event":"addon:rename","eventCreated":"2099-01-01T00:00:00Z"}"#,
            now,
        )
        .unwrap();
        assert_eq!(event.kind, None);
        assert_eq!(event.created, Some(now));
    }

    #[test]
    fn malformed_bodies_are_refused() {
        let now = SystemTime::now();
        for (body, error) in [
            ("[]", InvalidEvent::NotAnObject),
            ("not json", InvalidEvent::NotAnObject),
            (r#"{"event":"addon:suspend"}"#, InvalidEvent::EshopId),
            (
                r#"{"eshopId":"0x1","event":"addon:suspend"}"#,
                InvalidEvent::EshopId,
            ),
            (r#"{"eshopId":1,"event":7}"#, InvalidEvent::Event),
            (
                r#"{"eshopId":1,"event":"addon:suspend","eventInstance":"2"}"#,
                InvalidEvent::InstanceMismatch,
            ),
        ] {
            assert_eq!(
                AddonEvent::parse(body.as_bytes(), now),
                Err(error),
                "{body}"
            );
        }
    }

    #[test]
    fn odd_times_do_not_parse() {
        for text in [
            "",
            "2019-01-08",
            "2019-01-08T15:13:39+01",
            "2019-01-08T15:13:39 0100",
            "2019-01-08T15:13:3é+0100",
        ] {
            assert_eq!(parse_event_time(text), None, "{text}");
        }
        assert_eq!(
            parse_event_time("2019-01-08T15:13:39-02:30"),
            Some(at("2019-01-08T17:43:39Z"))
        );
    }

    #[test]
    fn a_signature_matches_only_its_body_and_key() {
        let key = WebhookKey::new("key");
        let body = br#"{"eshopId":1}"#;
        let signature = sign(&key, body);
        assert_eq!(signature.len(), 40);
        assert!(signature_matches(&key, body, signature.as_bytes()));
        assert!(!signature_matches(&key, b"{}", signature.as_bytes()));
        assert!(!signature_matches(
            &WebhookKey::new("other"),
            body,
            signature.as_bytes()
        ));
        assert!(!signature_matches(&key, body, b"not hex"));
        assert!(!signature_matches(&key, body, b""));
    }
}
