//! Shoptet's ordinary webhooks, the e-shop's own events (`order:create`,
//! `job:finished`, …) an add-on registers per installation through the
//! API: which events exist and which may not be registered together, what
//! an add-on asks for (its [`Subscription`]), the API calls that register
//! them, renew the signature key and read the notification history, and a
//! delivery's body and signature. Platform facts, with sources:
//! `docs/platforms.md` ("Ordinary webhooks").

use std::fmt;

use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::ids::ShoptetEshopId;
use crate::model::DeliveryFingerprint;
use crate::secret::{ApiAccessToken, EshopSignatureKey, ExposeSecret};
use crate::shoptet::{API_TOKEN_HEADER, ShoptetClient, ShoptetError, api_failure};
use crate::upstream::{self, UpstreamFailure, UpstreamResponse};

/// The header a delivery's signature comes in: lowercase hex
/// HMAC-SHA1 of the raw body with the installation's signature key.
pub use crate::shoptet_webhook::SIGNATURE_HEADER;
use crate::shoptet_webhook::{hmac_sha1_hex, hmac_sha1_matches};

/// A delivery is four short fields, and with `sendPayload: full` the
/// matching GET endpoint's answer (an order with its items). Larger than
/// this is not a delivery worth reading: refused before anything else.
/// Leaves room under EventBridge's 256 KB event for the event around it.
pub const MAX_DELIVERY_BYTES: usize = 200 * 1024;

/// The events an add-on may register (the official PHP SDK's `Event` enum,
/// 2026, and the API description's later additions), without the four
/// `addon:*` system events, which are set in the partner administration.
pub const EVENTS: &[&str] = &[
    "brand:create",
    "brand:update",
    "brand:delete",
    "creditNote:create",
    "creditNote:update",
    "creditNote:delete",
    "customer:create",
    "customer:update",
    "customer:delete",
    "customer:import",
    "customer:enableOrders",
    "customer:disableOrders",
    "deliveryNote:create",
    "deliveryNote:update",
    "deliveryNote:delete",
    "discountCoupon:create",
    "discountCoupon:delete",
    "discountCoupon:massCreate",
    "discountCoupon:massDelete",
    "eshop:currencies",
    "eshop:billingInformation",
    "eshop:design",
    "eshop:mandatoryFields",
    "eshop:projectDomain",
    "invoice:create",
    "invoice:update",
    "invoice:delete",
    "invoice:massUpdate",
    "job:finished",
    "mailingListEmail:create",
    "mailingListEmail:delete",
    "order:create",
    "order:update",
    "order:cancel",
    "order:delete",
    "order:paid",
    "order:massCreate",
    "order:massUpdate",
    "order:massPaid",
    "orderStatusesList:change",
    "paymentMethod:change",
    "product:create",
    "product:update",
    "product:delete",
    "proformaInvoice:create",
    "proformaInvoice:update",
    "proformaInvoice:delete",
    "proofPayment:create",
    "proofPayment:update",
    "proofPayment:delete",
    "shipment:create",
    "shipment:update",
    "shipment:fail",
    "shippingMethod:change",
    "shippingRequest:cancelled",
    "shippingRequest:confirmed",
    "stock:movement",
    "stock:inStock",
    "stock:soldOut",
    "stock:minStockSupplyReached",
];

/// Pairs one installation may not have both of: Shoptet answers 409.
pub const CONFLICTS: [(&str, &str); 3] = [
    ("order:update", "order:cancel"),
    ("customer:update", "customer:enableOrders"),
    ("customer:update", "customer:disableOrders"),
];

/// One of [`EVENTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EshopEvent(&'static str);

impl EshopEvent {
    pub fn parse(name: &str) -> Option<Self> {
        EVENTS
            .iter()
            .find(|event| **event == name)
            .map(|event| Self(event))
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for EshopEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// What the add-on asks Shoptet to send for every installation: a set of
/// events that Shoptet accepts together (checked when the configuration
/// is read, so a 409 can only come from webhooks registered outside the
/// broker), and whether notifications carry the full payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    events: Vec<EshopEvent>,
    full_payload: bool,
}

/// Why a configured event list cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSubscription {
    #[error(
        "{0:?} is not a Shoptet webhook event (addon:* events are set in the partner administration, not registered)"
    )]
    UnknownEvent(String),
    #[error("{0} is listed twice")]
    Repeated(&'static str),
    #[error(
        "{0} and {1} cannot be registered together (Shoptet answers 409): keep one; {0} covers what {1} announces"
    )]
    Conflict(&'static str, &'static str),
    #[error("the payload setting is {0:?}; it is `none` or `full`")]
    Payload(String),
}

impl Subscription {
    /// `events`: comma-separated names (blank: no webhooks, `None`);
    /// `payload`: `none` (or blank) or `full`.
    pub fn parse(events: &str, payload: &str) -> Result<Option<Self>, InvalidSubscription> {
        let full_payload = match payload.trim() {
            "" | "none" => false,
            "full" => true,
            other => return Err(InvalidSubscription::Payload(other.to_owned())),
        };
        let mut parsed: Vec<EshopEvent> = Vec::new();
        for name in events.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let event = EshopEvent::parse(name)
                .ok_or_else(|| InvalidSubscription::UnknownEvent(name.to_owned()))?;
            if parsed.contains(&event) {
                return Err(InvalidSubscription::Repeated(event.as_str()));
            }
            parsed.push(event);
        }
        for (a, b) in CONFLICTS {
            let has = |name| parsed.iter().any(|e| e.as_str() == name);
            if has(a) && has(b) {
                return Err(InvalidSubscription::Conflict(a, b));
            }
        }
        if parsed.is_empty() {
            return Ok(None);
        }
        Ok(Some(Self {
            events: parsed,
            full_payload,
        }))
    }

    pub fn events(&self) -> &[EshopEvent] {
        &self.events
    }

    pub fn full_payload(&self) -> bool {
        self.full_payload
    }
}

/// A webhook the installation has, as `GET /api/webhooks` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RegisteredWebhook {
    pub id: Value,
    pub event: String,
    pub url: String,
}

/// How `POST /api/webhooks` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// Every item was registered (201).
    Registered,
    /// 422: one of them exists already (another registration got there
    /// first); nothing of this call was registered, list again.
    AlreadyExists,
    /// 409: an event conflicts with one the installation has (registered
    /// outside the broker, as the configuration refuses conflicting sets).
    Conflict,
}

/// One notification of the installation's history, as
/// `GET /api/webhooks/notifications` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryNotification {
    pub event: String,
    pub event_instance: Value,
    pub event_created: String,
    /// The body sent (or to be sent), as JSON.
    #[serde(default)]
    pub data: Value,
}

/// The two statuses the reconciliation reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationStatus {
    /// Every attempt failed; Shoptet sends it no more.
    Failed,
    /// Not delivered yet; Shoptet will try again.
    New,
}

impl NotificationStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Failed => "failed",
            Self::New => "new",
        }
    }
}

/// One page of the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    pub notifications: Vec<HistoryNotification>,
    pub page_count: u32,
}

/// How many notifications one history page asks for (Shoptet's largest page).
pub const HISTORY_PAGE_SIZE: u32 = 1000;

impl ShoptetClient {
    /// `GET /api/webhooks`: the installation's webhooks (this add-on's only).
    pub async fn list_webhooks(
        &self,
        token: &ApiAccessToken,
    ) -> Result<Vec<RegisteredWebhook>, ShoptetError> {
        #[derive(Deserialize)]
        struct Listed {
            webhooks: Vec<RegisteredWebhook>,
        }
        let data = self.get_api(token, &["webhooks"]).await?;
        serde_json::from_value::<Listed>(data)
            .map(|listed| listed.webhooks)
            .map_err(|_| ShoptetError::Upstream(UpstreamFailure::MalformedResponse { status: 200 }))
    }

    /// `POST /api/webhooks` for `events`, all at `url`.
    pub async fn register_webhooks(
        &self,
        token: &ApiAccessToken,
        events: &[EshopEvent],
        url: &str,
        full_payload: bool,
    ) -> Result<Registration, ShoptetError> {
        let items: Vec<Value> = events
            .iter()
            .map(|event| {
                let mut item = json!({ "event": event.as_str(), "url": url });
                if full_payload {
                    item["sendPayload"] = json!("full");
                }
                item
            })
            .collect();
        let response = self
            .send_api(
                token,
                reqwest::Method::POST,
                &["webhooks"],
                Some(json!({ "data": items })),
            )
            .await?;
        match response.status {
            status if status.is_success() => Ok(Registration::Registered),
            StatusCode::UNPROCESSABLE_ENTITY => Ok(Registration::AlreadyExists),
            StatusCode::CONFLICT => Ok(Registration::Conflict),
            _ => Err(api_failure(&response)),
        }
    }

    /// `POST /api/webhooks/renew-signature-key`: a new key (the old one
    /// stops verifying).
    pub async fn renew_signature_key(
        &self,
        token: &ApiAccessToken,
    ) -> Result<EshopSignatureKey, ShoptetError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Data {
            signature_key: String,
        }
        #[derive(Deserialize)]
        struct Envelope {
            data: Data,
        }
        let response = self
            .send_api(
                token,
                reqwest::Method::POST,
                &["webhooks", "renew-signature-key"],
                None,
            )
            .await?;
        if !response.status.is_success() {
            return Err(api_failure(&response));
        }
        serde_json::from_slice::<Envelope>(&response.body)
            .ok()
            .map(|envelope| envelope.data.signature_key)
            .filter(|key| !key.is_empty())
            .map(EshopSignatureKey::new)
            .ok_or_else(|| UpstreamFailure::malformed(&response).into())
    }

    /// One page (from 1) of the installation's notifications in `status`.
    pub async fn webhook_history(
        &self,
        token: &ApiAccessToken,
        status: NotificationStatus,
        page: u32,
    ) -> Result<HistoryPage, ShoptetError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Paginator {
            page_count: u32,
        }
        #[derive(Deserialize)]
        struct Data {
            notifications: Vec<HistoryNotification>,
            paginator: Paginator,
        }
        let page = page.to_string();
        let per_page = HISTORY_PAGE_SIZE.to_string();
        let query = [
            ("status", status.as_str()),
            ("page", page.as_str()),
            ("itemsPerPage", per_page.as_str()),
        ];
        let data = self
            .get_api_with_query(token, &["webhooks", "notifications"], &query)
            .await?;
        serde_json::from_value::<Data>(data)
            .map(|data| HistoryPage {
                notifications: data.notifications,
                page_count: data.paginator.page_count,
            })
            .map_err(|_| ShoptetError::Upstream(UpstreamFailure::MalformedResponse { status: 200 }))
    }

    async fn send_api(
        &self,
        token: &ApiAccessToken,
        method: reqwest::Method,
        path: &[&str],
        body: Option<Value>,
    ) -> Result<UpstreamResponse, ShoptetError> {
        let url = self.api_url(path);
        let mut request = self
            .http
            .request(method, url)
            .header(API_TOKEN_HEADER, token.expose_secret());
        if let Some(body) = body {
            request = request.json(&body);
        }
        Ok(upstream::send(request).await?)
    }
}

/// A delivery's body: `{"eshopId","event","eventCreated","eventInstance"}`
/// (and `payload` with `sendPayload: full`). Nothing in it is trusted
/// before its signature is verified with the e-shop's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EshopDelivery {
    pub eshop_id: ShoptetEshopId,
    pub event: String,
    pub event_created: String,
    pub event_instance: String,
}

/// Why a body is not a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidDelivery {
    #[error("the body is not a JSON object")]
    NotAnObject,
    #[error("eshopId is missing or not a valid e-shop id")]
    EshopId,
    #[error("event, eventCreated or eventInstance is missing")]
    Fields,
}

impl EshopDelivery {
    /// The e-shop a body claims to be from: enough to find the key that
    /// verifies it (the rest is read once it is verified).
    pub fn claimed_eshop(body: &[u8]) -> Result<ShoptetEshopId, InvalidDelivery> {
        #[derive(Deserialize)]
        struct Claim {
            #[serde(rename = "eshopId")]
            eshop_id: Value,
        }
        let claim: Claim =
            serde_json::from_slice(body).map_err(|_| InvalidDelivery::NotAnObject)?;
        ShoptetEshopId::from_json(&claim.eshop_id).ok_or(InvalidDelivery::EshopId)
    }

    pub fn parse(body: &[u8]) -> Result<Self, InvalidDelivery> {
        let value: Value =
            serde_json::from_slice(body).map_err(|_| InvalidDelivery::NotAnObject)?;
        Self::from_json(&value)
    }

    /// From a body as JSON (a history notification's `data`).
    pub fn from_json(value: &Value) -> Result<Self, InvalidDelivery> {
        let object = value.as_object().ok_or(InvalidDelivery::NotAnObject)?;
        let eshop_id = object
            .get("eshopId")
            .and_then(ShoptetEshopId::from_json)
            .ok_or(InvalidDelivery::EshopId)?;
        let text = |name: &str| match object.get(name) {
            Some(Value::String(text)) if !text.is_empty() => Some(text.clone()),
            Some(Value::Number(number)) => Some(number.to_string()),
            _ => None,
        };
        Ok(Self {
            eshop_id,
            event: text("event").ok_or(InvalidDelivery::Fields)?,
            event_created: text("eventCreated").ok_or(InvalidDelivery::Fields)?,
            event_instance: text("eventInstance").ok_or(InvalidDelivery::Fields)?,
        })
    }

    /// The notification's name: the same for every attempt, for its copy
    /// in the history, and for nothing else (Shoptet sends no id).
    pub fn fingerprint(&self) -> DeliveryFingerprint {
        fingerprint_of(&[
            self.eshop_id.to_string().as_str(),
            &self.event,
            &self.event_instance,
            &self.event_created,
        ])
    }
}

/// A digest naming a list of fields (length-prefixed, so no two lists hash
/// alike): a notification's, or an occasion the delivery log records.
pub fn fingerprint_of(fields: &[&str]) -> DeliveryFingerprint {
    let mut digest = Sha256::new();
    for field in fields {
        digest.update((field.len() as u64).to_be_bytes());
        digest.update(field.as_bytes());
    }
    DeliveryFingerprint::new(digest.finalize().into())
}

/// Whether `signature` (the header's value) is the key's HMAC-SHA1 of the
/// raw body, compared in constant time.
pub fn signature_matches(key: &EshopSignatureKey, body: &[u8], signature: &[u8]) -> bool {
    hmac_sha1_matches(key.expose_secret().as_bytes(), body, signature)
}

/// The header a key gives a body (tests and benchmarks sign with it).
pub fn sign(key: &EshopSignatureKey, body: &[u8]) -> String {
    hmac_sha1_hex(key.expose_secret().as_bytes(), body)
}

/// For the history's `data`: the body a notification had, as text.
pub fn body_text(data: &Value) -> String {
    serde_json::to_string(data).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscription_takes_known_events_and_refuses_the_rest_by_name() {
        let subscription = Subscription::parse(" order:create, job:finished ", "full")
            .unwrap()
            .unwrap();
        let names: Vec<_> = subscription.events().iter().map(|e| e.as_str()).collect();
        assert_eq!(names, ["order:create", "job:finished"]);
        assert!(subscription.full_payload());
        assert_eq!(Subscription::parse("", ""), Ok(None));
        assert_eq!(
            Subscription::parse("order:create,addon:uninstall", "none"),
            Err(InvalidSubscription::UnknownEvent("addon:uninstall".into()))
        );
        assert_eq!(
            Subscription::parse("order:create,order:create", "none"),
            Err(InvalidSubscription::Repeated("order:create"))
        );
        assert_eq!(
            Subscription::parse("order:create", "some"),
            Err(InvalidSubscription::Payload("some".into()))
        );
    }

    #[test]
    fn the_pairs_shoptet_refuses_together_are_refused_at_configuration() {
        for (a, b) in CONFLICTS {
            assert_eq!(
                Subscription::parse(&format!("{b},{a}"), "none"),
                Err(InvalidSubscription::Conflict(a, b))
            );
        }
        assert!(Subscription::parse("order:update,customer:enableOrders", "none").is_ok());
    }

    #[test]
    fn a_delivery_is_named_by_its_fields_and_verified_by_its_key() {
        let body = br#"{"eshopId":222651,"event":"order:create","eventCreated":"2026-12-06T10:00:00+0100","eventInstance":"2026000001"}"#;
        let delivery = EshopDelivery::parse(body).unwrap();
        assert_eq!(EshopDelivery::claimed_eshop(body), Ok(delivery.eshop_id));
        let again = EshopDelivery::from_json(&serde_json::from_slice(body).unwrap()).unwrap();
        assert_eq!(delivery.fingerprint(), again.fingerprint());
        let other = EshopDelivery {
            event_instance: "2026000002".into(),
            ..delivery.clone()
        };
        assert_ne!(delivery.fingerprint(), other.fingerprint());

        let key = EshopSignatureKey::new("k".repeat(40));
        let signature = sign(&key, body);
        assert!(signature_matches(&key, body, signature.as_bytes()));
        assert!(!signature_matches(
            &EshopSignatureKey::new("x"),
            body,
            signature.as_bytes()
        ));
        assert!(!signature_matches(&key, b"{}", signature.as_bytes()));
        assert!(!signature_matches(&key, body, b"not hex"));
    }
}
