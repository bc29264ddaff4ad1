//! Delivering lifecycle events ([`broker_domain::events`]): what an event is
//! on EventBridge ([`BusEntry`]), and signed HTTPS deliveries to the
//! add-on's backend ([`WebhookSender`]), signed as Standard Webhooks
//! (<https://www.standardwebhooks.com/>) sign them, with the receiver's
//! check ([`verify`]) written once for our tests and Rust receivers.
//!
//! Used by the cloud publisher (`functions/event-publisher`) and by
//! `broker-local`, so both deliver the same bytes signed the same way.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use broker_domain::secret::{EventSigningSecret, ExposeSecret};
use shop_token_protocol::loopback::scheme_allowed;

/// A delivery signed more than this far from the receiver's clock is
/// refused (a replay, or a clock badly off): Standard Webhooks' tolerance.
pub const TIMESTAMP_TOLERANCE: Duration = Duration::from_secs(300);

/// How long an endpoint may take to answer before the delivery is retried.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The headers of a signed delivery.
pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";

pub mod eventbridge;

pub use broker_domain::bus::{BusEntry, body_of};
use broker_domain::events::InstallationEvent;

/// `v1,<base64 of HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>`.
pub fn sign(secret: &EventSigningSecret, id: &str, timestamp: u64, body: &[u8]) -> String {
    format!("v1,{}", STANDARD.encode(mac(secret, id, timestamp, body)))
}

fn mac(secret: &EventSigningSecret, id: &str, timestamp: u64, body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// Why a delivery is not genuine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Forged {
    #[error("a signing header is missing or malformed")]
    Malformed,
    #[error("the timestamp is outside the tolerance (a replay, or a clock far off)")]
    Stale,
    #[error("no signature matches")]
    BadSignature,
}

/// The receiver's check: the timestamp within [`TIMESTAMP_TOLERANCE`] of
/// `now`, then any `v1` signature of the (space-separated) header matching,
/// compared in constant time. Only then is the body worth parsing.
pub fn verify(
    secret: &EventSigningSecret,
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: SystemTime,
) -> Result<(), Forged> {
    let signed_at: u64 = timestamp.parse().map_err(|_| Forged::Malformed)?;
    let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    if now.abs_diff(signed_at) > TIMESTAMP_TOLERANCE.as_secs() {
        return Err(Forged::Stale);
    }
    let expected = mac(secret, id, signed_at, body);
    let genuine = signatures
        .split(' ')
        .filter_map(|signature| signature.strip_prefix("v1,"))
        .filter_map(|encoded| STANDARD.decode(encoded).ok())
        .any(|candidate| bool::from(candidate.ct_eq(&expected)));
    if genuine {
        Ok(())
    } else {
        Err(Forged::BadSignature)
    }
}

/// Where deliveries go: `https://`, or `http://` to a loopback host only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointUrl(url::Url);

impl EndpointUrl {
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let url = url::Url::parse(text).map_err(|_| "is not a URL")?;
        let host = url.host_str().ok_or("has no host")?;
        if !scheme_allowed(url.scheme(), host) {
            return Err("must be https:// (http:// only to a loopback host)");
        }
        Ok(Self(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// Why a delivery did not land; the endpoint is never named (its URL may
/// carry a credential of the add-on's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    #[error("the endpoint answered {0}")]
    Refused(u16),
    #[error("the endpoint could not be reached or did not answer in time")]
    Unreachable,
}

/// Signs and POSTs events to the add-on's endpoint. Redirects are not
/// followed: a delivery goes where the configuration says, nowhere else.
#[derive(Clone)]
pub struct WebhookSender {
    client: reqwest::Client,
    url: EndpointUrl,
}

impl std::fmt::Debug for WebhookSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSender").finish_non_exhaustive()
    }
}

impl WebhookSender {
    /// `client` should not follow redirects ([`WebhookSender::client`]).
    pub fn new(client: reqwest::Client, url: EndpointUrl) -> Self {
        Self { client, url }
    }

    /// A client for deliveries: no redirects, [`DELIVERY_TIMEOUT`].
    pub fn client(builder: reqwest::ClientBuilder) -> reqwest::Client {
        builder
            .redirect(reqwest::redirect::Policy::none())
            .timeout(DELIVERY_TIMEOUT)
            .build()
            .expect("a reqwest client with static settings always builds")
    }

    /// One delivery, signed now (a retry is signed anew, so its timestamp
    /// passes the receiver's tolerance).
    pub async fn deliver(
        &self,
        secret: &EventSigningSecret,
        event: &InstallationEvent,
    ) -> Result<(), DeliveryError> {
        self.deliver_body(secret, &event.id, body_of(event)).await
    }

    /// One delivery of any event's JSON (`id` is the event's), signed now.
    pub async fn deliver_body(
        &self,
        secret: &EventSigningSecret,
        id: &str,
        body: String,
    ) -> Result<(), DeliveryError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let signature = sign(secret, id, now, body.as_bytes());
        let answer = self
            .client
            .post(self.url.as_str())
            .header("content-type", "application/json")
            .header(
                "user-agent",
                concat!("shop-token-broker/", env!("CARGO_PKG_VERSION")),
            )
            .header(ID_HEADER, id)
            .header(TIMESTAMP_HEADER, now.to_string())
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await
            .map_err(|_| DeliveryError::Unreachable)?;
        let status = answer.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(DeliveryError::Refused(status.as_u16()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> EventSigningSecret {
        EventSigningSecret::new("an-events-secret-for-tests")
    }

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn a_signature_verifies_and_any_change_to_what_it_covers_does_not() {
        let body = br#"{"kind":"installed"}"#;
        let signature = sign(&secret(), "msg_1", 1_800_000_000, body);
        let now = at(1_800_000_100);
        let check =
            |id: &str, ts: &str, sig: &str, body: &[u8]| verify(&secret(), id, ts, sig, body, now);
        assert_eq!(check("msg_1", "1800000000", &signature, body), Ok(()));
        assert_eq!(
            check(
                "msg_1",
                "1800000000",
                &signature,
                br#"{"kind":"uninstalled"}"#
            ),
            Err(Forged::BadSignature)
        );
        assert_eq!(
            check("msg_2", "1800000000", &signature, body),
            Err(Forged::BadSignature)
        );
        assert_eq!(
            check("msg_1", "1800000001", &signature, body),
            Err(Forged::BadSignature)
        );
        let other = EventSigningSecret::new("another-secret");
        assert_eq!(
            verify(&other, "msg_1", "1800000000", &signature, body, now),
            Err(Forged::BadSignature)
        );
        // A rotation's header holds several; one genuine is enough.
        let both = format!("v1,AAAA {signature}");
        assert_eq!(check("msg_1", "1800000000", &both, body), Ok(()));
        assert_eq!(
            check("msg_1", "soon", &signature, body),
            Err(Forged::Malformed)
        );
    }

    #[test]
    fn a_delivery_signed_outside_the_tolerance_is_stale_either_way() {
        let body = b"{}";
        let signature = sign(&secret(), "msg_1", 1_800_000_000, body);
        for now in [at(1_800_000_301), at(1_799_999_699)] {
            assert_eq!(
                verify(&secret(), "msg_1", "1800000000", &signature, body, now),
                Err(Forged::Stale)
            );
        }
    }

    #[test]
    fn the_signature_is_what_the_documented_check_computes() {
        // Python: base64.b64encode(hmac.new(b"k", b"id.1.b", sha256).digest())
        assert_eq!(
            sign(&EventSigningSecret::new("k"), "id", 1, b"b"),
            "v1,GDgMCBPox1mAEYNmPnLBnO9FUIR79pcgqz+HEZOwS1k="
        );
    }

    #[test]
    fn endpoints_are_https_or_loopback_http() {
        assert!(EndpointUrl::parse("https://backend.example/hooks").is_ok());
        assert!(EndpointUrl::parse("http://127.0.0.1:9000/hooks").is_ok());
        assert!(EndpointUrl::parse("http://backend.example/hooks").is_err());
        assert!(EndpointUrl::parse("not a url").is_err());
    }
}
