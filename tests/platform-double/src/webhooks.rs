//! Shoptet's ordinary webhooks, the e-shop's own events an add-on
//! registers through the API: registrations, signature keys, the
//! notification history and the asynchronous jobs that announce themselves
//! with `job:finished`. Rules and data only; the HTTP handlers are in
//! [`crate::shoptet`], the sending in [`crate::delivery`].
//!
//! Everything here belongs to one installation (e-shop × add-on; the double
//! plays one add-on, so an e-shop id names it) and ends with it: an
//! uninstall or a new install of the same e-shop forgets its webhooks, its
//! signature key and its history. Shoptet does not document what happens to
//! them; an add-on that registers again after every install is right either
//! way.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::http::StatusCode;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{Value, json};
use sha1::Sha1;

use crate::random;

/// Shoptet's header carrying the webhook signature.
pub(crate) const SIGNATURE_HEADER: &str = "Shoptet-Webhook-Signature";
/// Attempts per notification, the first included (Shoptet's, second-hand).
pub(crate) const ATTEMPTS: usize = 3;
/// How long a receiver may take to answer one attempt (Shoptet's,
/// second-hand); slower counts as a failed attempt.
pub(crate) const DELIVERY_TIMEOUT: Duration = Duration::from_secs(4);
/// Items one `POST /api/webhooks` may carry.
const MAX_ITEMS: usize = 50;
/// Longest `url` Shoptet accepts, in characters.
const MAX_URL_CHARS: usize = 2000;
/// The only ports Shoptet delivers to.
const ALLOWED_PORTS: [u16; 4] = [80, 8080, 443, 8443];
/// How long the notification history reaches back.
const HISTORY: Duration = Duration::from_secs(7 * 24 * 3600);
/// How many times a job's detail may be asked before it is done; the next
/// ask answers 403.
const JOB_DETAIL_ASKS: u32 = 10;
/// The event that announces a finished job, and that starting one needs.
pub(crate) const JOB_FINISHED: &str = "job:finished";

/// The events an add-on may register: the official PHP SDK's `Event` enum
/// (2026) without the four `addon:*` system events (set in the partner
/// administration, never through the API), plus those the API description
/// added later (`order:paid`, `shipment:*`, `product:*`, `order:massPaid`).
const EVENTS: &[&str] = &[
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
    JOB_FINISHED,
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

/// Pairs one installation may not have both of (409).
const CONFLICTS: [(&str, &str); 3] = [
    ("order:update", "order:cancel"),
    ("customer:update", "customer:enableOrders"),
    ("customer:update", "customer:disableOrders"),
];

/// The double's errorCodes for webhook and job refusals. Shoptet documents
/// the statuses and the 422 message, not these codes: they are the double's
/// choice, each naming what went wrong.
pub(crate) mod code {
    /// 400: the body is not `{"data":[…]}` of 1 to 50 objects with string
    /// `event` and `url`, or `sendPayload` is other than `"full"`.
    pub(crate) const INVALID_REQUEST: &str = "invalid-request-data";
    /// 400: no such event, or a system `addon:*` event.
    pub(crate) const UNKNOWN_EVENT: &str = "webhook-unknown-event";
    /// 400: `url` not an absolute http(s) URL, over 2000 characters, or on a
    /// port other than 80, 8080, 443, 8443.
    pub(crate) const INVALID_URL: &str = "webhook-invalid-url";
    /// 422: the installation already has a webhook for the event.
    pub(crate) const EXISTS: &str = "webhook-exists";
    /// 409: `order:update` with `order:cancel`, or `customer:update` with
    /// `customer:enableOrders` / `customer:disableOrders`.
    pub(crate) const CONFLICT: &str = "webhook-conflict";
    /// 404: no webhook of that id in the installation.
    pub(crate) const WEBHOOK_NOT_FOUND: &str = "webhook-not-found";
    /// 400: a `status` filter other than `new`, `failed`, `success`, or a
    /// `page` / `itemsPerPage` that is not a positive number.
    pub(crate) const INVALID_QUERY: &str = "invalid-query-parameter";
    /// 403: an asynchronous request without `job:finished` registered.
    pub(crate) const JOB_WEBHOOK_MISSING: &str = "job-finished-webhook-missing";
    /// 403: a job's detail asked more than 10 times before it is done.
    pub(crate) const JOB_ASKED_TOO_OFTEN: &str = "job-detail-limit-exceeded";
    /// 404: no job of that id in the installation.
    pub(crate) const JOB_NOT_FOUND: &str = "job-not-found";
}

/// One error of the API's error envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) code: &'static str,
    pub(crate) message: String,
    /// What the error is about, e.g. `data[1].url`.
    pub(crate) instance: String,
}

/// A refused request: its status and every error found (Shoptet's envelope
/// carries a list; the double reports all items that failed the check that
/// decided the status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    pub(crate) errors: Vec<ApiError>,
}

impl Refusal {
    fn one(status: StatusCode, code: &'static str, message: &str, instance: &str) -> Self {
        Refusal {
            status,
            errors: vec![ApiError {
                code,
                message: message.to_owned(),
                instance: instance.to_owned(),
            }],
        }
    }
}

/// A registered webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Unique within the double.
    pub id: u64,
    /// The event, e.g. `order:create`.
    pub event: String,
    /// Where its notifications go.
    pub url: String,
    /// Registered with `"sendPayload": "full"`: notifications carry `payload`.
    pub send_payload_full: bool,
    /// When it was registered, in Shoptet's form.
    pub created: String,
}

impl Webhook {
    /// As the API lists it.
    pub(crate) fn to_json(&self) -> Value {
        let mut webhook = json!({
            "id": self.id,
            "event": self.event,
            "url": self.url,
            "created": self.created,
            "updated": null,
        });
        if self.send_payload_full {
            webhook["sendPayload"] = json!("full");
        }
        webhook
    }
}

/// Where a notification stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationStatus {
    /// Not delivered yet; another attempt is due (the API's `active: true`).
    New,
    /// A receiver answered 2xx.
    Success,
    /// Every attempt failed; no more are made.
    Failed,
}

impl NotificationStatus {
    /// The API's name: `new`, `success`, `failed`.
    pub fn name(self) -> &'static str {
        match self {
            NotificationStatus::New => "new",
            NotificationStatus::Success => "success",
            NotificationStatus::Failed => "failed",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        [Self::New, Self::Success, Self::Failed]
            .into_iter()
            .find(|status| status.name() == name)
    }
}

/// One delivery attempt of a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The receiver's HTTP status; `None` when there was no answer.
    pub status: Option<u16>,
    /// Why there was no answer (timeout, connection refused, …).
    pub error: Option<String>,
    /// The `Shoptet-Webhook-Signature` sent; `None` while the installation
    /// has no signature key.
    pub signature: Option<String>,
}

impl Attempt {
    /// A 2xx answer.
    pub fn succeeded(&self) -> bool {
        self.status
            .is_some_and(|status| (200..300).contains(&status))
    }
}

/// One event sent (or to be sent) to one webhook: the history Shoptet keeps
/// 7 days and answers at `GET /api/webhooks/notifications`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Unique within the double.
    pub id: u64,
    /// The webhook it was sent for.
    pub webhook_id: u64,
    /// Where it was sent.
    pub url: String,
    /// The event.
    pub event: String,
    /// The event's `eventInstance`.
    pub event_instance: String,
    /// The event's `eventCreated`, in Shoptet's form.
    pub event_created: String,
    /// Where it stands.
    pub status: NotificationStatus,
    /// Every attempt so far, oldest first.
    pub attempts: Vec<Attempt>,
    /// The exact bytes every attempt sends.
    pub body: Bytes,
}

impl Notification {
    /// Another attempt is due.
    pub fn active(&self) -> bool {
        self.status == NotificationStatus::New
    }

    /// The body as text (it is always JSON).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// As the API lists it (and the control API reports it).
    pub(crate) fn to_json(&self) -> Value {
        let data = serde_json::from_slice::<Value>(&self.body).unwrap_or(Value::Null);
        json!({
            "id": self.id,
            "webhookId": self.webhook_id,
            "webhookUrl": self.url,
            "event": self.event,
            "eventInstance": self.event_instance,
            "eventCreated": self.event_created,
            "created": self.event_created,
            "attempts": self.attempts.len(),
            "status": self.status.name(),
            "active": self.active(),
            "data": data,
            "deliveries": self.attempts.iter().map(|attempt| json!({
                "status": attempt.status,
                "error": attempt.error,
            })).collect::<Vec<_>>(),
        })
    }
}

/// What one [`crate::PlatformDouble::deliver_webhook`] sent: a notification
/// per webhook of the installation registered for the event (none when
/// there is no such webhook).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    /// The e-shop.
    pub eshop_id: u64,
    /// The event.
    pub event: String,
    /// The event's `eventInstance`.
    pub event_instance: String,
    /// The notifications as they stood when the report was made.
    pub notifications: Vec<Notification>,
}

impl DeliveryReport {
    /// As the control API answers it.
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "eshopId": self.eshop_id,
            "event": self.event,
            "eventInstance": self.event_instance,
            "notifications": self.notifications.iter().map(Notification::to_json).collect::<Vec<_>>(),
        })
    }
}

/// What an attempt needs, read under the lock and sent without it.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) url: String,
    pub(crate) body: Bytes,
    pub(crate) signature: Option<String>,
}

/// The delivery body, fields in Shoptet's order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    eshop_id: u64,
    event: &'a str,
    event_created: &'a str,
    event_instance: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<Value>,
}

#[derive(Debug)]
struct Job {
    eshop_id: u64,
    created: String,
    finished: Option<String>,
    /// Detail requests answered while it was not done.
    asked: u32,
}

#[derive(Debug, Default)]
struct Installation {
    webhooks: Vec<Webhook>,
    /// Its own key; unused under [`crate::DoubleConfig::signature_key_per_addon`].
    key: Option<String>,
    /// With the moment each was created, to keep 7 days of them.
    notifications: Vec<(Instant, Notification)>,
}

/// Every installation's webhooks, keys, history and jobs.
#[derive(Debug, Default)]
pub(crate) struct Webhooks {
    installations: HashMap<u64, Installation>,
    /// The add-on's one key, under [`crate::DoubleConfig::signature_key_per_addon`].
    addon_key: Option<String>,
    /// Every key ever made, for the secrets a test scans logs for.
    issued_keys: Vec<String>,
    last_webhook_id: u64,
    last_notification_id: u64,
    jobs: HashMap<String, Job>,
}

impl Webhooks {
    /// `POST /api/webhooks`: all or nothing. A request with any bad item
    /// registers none of them (the double's choice: Shoptet does not say,
    /// and a partial success would leave the add-on guessing which ones
    /// exist). Checks in order, the first failing one decides the status
    /// and reports every item failing it: the body's shape (400), event
    /// names and URLs (400), events already registered or repeated in the
    /// request (422), conflicting events together with those registered
    /// (409).
    pub(crate) fn register(
        &mut self,
        eshop_id: u64,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Vec<Webhook>, Refusal> {
        let items = parse_registration(body)?;

        let mut bad = Vec::new();
        for (index, item) in items.iter().enumerate() {
            if !EVENTS.contains(&item.event.as_str()) {
                bad.push(ApiError {
                    code: code::UNKNOWN_EVENT,
                    message: format!("Unknown webhook event `{}`.", item.event),
                    instance: format!("data[{index}].event"),
                });
            }
            if let Err(message) = check_url(&item.url) {
                bad.push(ApiError {
                    code: code::INVALID_URL,
                    message,
                    instance: format!("data[{index}].url"),
                });
            }
        }
        if !bad.is_empty() {
            return Err(Refusal {
                status: StatusCode::BAD_REQUEST,
                errors: bad,
            });
        }

        let installation = self.installations.entry(eshop_id).or_default();
        let mut events: Vec<&str> = installation
            .webhooks
            .iter()
            .map(|w| w.event.as_str())
            .collect();
        let mut exists = Vec::new();
        for (index, item) in items.iter().enumerate() {
            if events.contains(&item.event.as_str()) {
                exists.push(ApiError {
                    code: code::EXISTS,
                    message: "Webhook already exists for this event".to_owned(),
                    instance: format!("data[{index}].event"),
                });
            } else {
                events.push(&item.event);
            }
        }
        if !exists.is_empty() {
            return Err(Refusal {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                errors: exists,
            });
        }

        let conflicts: Vec<ApiError> = CONFLICTS
            .iter()
            .filter(|(a, b)| events.contains(a) && events.contains(b))
            .map(|(a, b)| ApiError {
                code: code::CONFLICT,
                message: format!("Webhook `{a}` cannot be registered together with `{b}`."),
                instance: "data".to_owned(),
            })
            .collect();
        if !conflicts.is_empty() {
            return Err(Refusal {
                status: StatusCode::CONFLICT,
                errors: conflicts,
            });
        }

        let created = shoptet_time(now);
        let mut registered = Vec::new();
        for item in items {
            self.last_webhook_id += 1;
            registered.push(Webhook {
                id: self.last_webhook_id,
                event: item.event,
                url: item.url,
                send_payload_full: item.send_payload_full,
                created: created.clone(),
            });
        }
        installation.webhooks.extend(registered.iter().cloned());
        Ok(registered)
    }

    /// The installation's webhooks, oldest first.
    pub(crate) fn list(&self, eshop_id: u64) -> Vec<Webhook> {
        self.installations
            .get(&eshop_id)
            .map(|i| i.webhooks.clone())
            .unwrap_or_default()
    }

    /// Whether the installation has a webhook for `event`.
    pub(crate) fn has(&self, eshop_id: u64, event: &str) -> bool {
        self.installations
            .get(&eshop_id)
            .is_some_and(|i| i.webhooks.iter().any(|w| w.event == event))
    }

    /// `DELETE /api/webhooks/{id}`: only the installation's own.
    pub(crate) fn delete(&mut self, eshop_id: u64, id: &str) -> Result<(), Refusal> {
        let not_found = || {
            Refusal::one(
                StatusCode::NOT_FOUND,
                code::WEBHOOK_NOT_FOUND,
                "Webhook not found.",
                "id",
            )
        };
        let id: u64 = id.parse().map_err(|_| not_found())?;
        let installation = self
            .installations
            .get_mut(&eshop_id)
            .ok_or_else(not_found)?;
        let before = installation.webhooks.len();
        installation.webhooks.retain(|w| w.id != id);
        if installation.webhooks.len() == before {
            return Err(not_found());
        }
        Ok(())
    }

    /// `POST /api/webhooks/renew-signature-key`: a new key every call, the
    /// installation's own, or the add-on's one when `per_addon`.
    pub(crate) fn renew_key(&mut self, eshop_id: u64, per_addon: bool) -> String {
        let key = hex::encode(random::bytes(20));
        self.issued_keys.push(key.clone());
        if per_addon {
            self.addon_key = Some(key.clone());
        } else {
            self.installations.entry(eshop_id).or_default().key = Some(key.clone());
        }
        key
    }

    /// The key deliveries of the installation are signed with now; `None`
    /// until a renew made one.
    pub(crate) fn key(&self, eshop_id: u64, per_addon: bool) -> Option<String> {
        if per_addon {
            self.addon_key.clone()
        } else {
            self.installations.get(&eshop_id)?.key.clone()
        }
    }

    /// Every signature key ever made.
    pub(crate) fn issued_keys(&self) -> impl Iterator<Item = &str> {
        self.issued_keys.iter().map(String::as_str)
    }

    /// The installation ended: its webhooks, key, history and jobs go.
    /// Pending retries find their notification gone and stop.
    pub(crate) fn forget(&mut self, eshop_id: u64) {
        self.installations.remove(&eshop_id);
        self.jobs.retain(|_, job| job.eshop_id != eshop_id);
    }

    /// An event happened: one new notification per webhook of the
    /// installation registered for it, its body fixed now. Their ids.
    pub(crate) fn notify(
        &mut self,
        eshop_id: u64,
        event: &str,
        event_instance: &str,
        now: SystemTime,
    ) -> Vec<u64> {
        let Some(installation) = self.installations.get_mut(&eshop_id) else {
            return Vec::new();
        };
        let event_created = shoptet_time(now);
        let mut ids = Vec::new();
        let webhooks: Vec<Webhook> = installation
            .webhooks
            .iter()
            .filter(|w| w.event == event)
            .cloned()
            .collect();
        for webhook in webhooks {
            let payload = webhook
                .send_payload_full
                .then(|| fake_payload(eshop_id, event, event_instance, &event_created))
                .flatten();
            let body = serde_json::to_vec(&Body {
                eshop_id,
                event,
                event_created: &event_created,
                event_instance,
                payload,
            })
            .unwrap_or_default();
            self.last_notification_id += 1;
            let id = self.last_notification_id;
            installation.notifications.push((
                Instant::now(),
                Notification {
                    id,
                    webhook_id: webhook.id,
                    url: webhook.url,
                    event: event.to_owned(),
                    event_instance: event_instance.to_owned(),
                    event_created: event_created.clone(),
                    status: NotificationStatus::New,
                    attempts: Vec::new(),
                    body: Bytes::from(body),
                },
            ));
            ids.push(id);
        }
        ids
    }

    /// The next attempt of notification `id`, signed with the key current
    /// now (a renew between attempts changes the signature, never the
    /// body). `None` when it is settled or gone.
    pub(crate) fn target(&self, id: u64, per_addon: bool) -> Option<Target> {
        let (eshop_id, notification) = self.find(id)?;
        if !notification.active() {
            return None;
        }
        let signature = self
            .key(eshop_id, per_addon)
            .map(|key| webhook_signature(&key, &notification.body));
        Some(Target {
            url: notification.url.clone(),
            body: notification.body.clone(),
            signature,
        })
    }

    /// Records an attempt of notification `id`; true when it is settled
    /// (succeeded, or the last attempt failed).
    pub(crate) fn record(&mut self, id: u64, attempt: Attempt) -> bool {
        let Some(notification) = self
            .installations
            .values_mut()
            .flat_map(|i| i.notifications.iter_mut())
            .map(|(_, n)| n)
            .find(|n| n.id == id)
        else {
            return true;
        };
        let succeeded = attempt.succeeded();
        notification.attempts.push(attempt);
        if succeeded {
            notification.status = NotificationStatus::Success;
        } else if notification.attempts.len() >= ATTEMPTS {
            notification.status = NotificationStatus::Failed;
        }
        !notification.active()
    }

    /// Notification `id` as it stands.
    pub(crate) fn notification(&self, id: u64) -> Option<Notification> {
        self.find(id).map(|(_, n)| n.clone())
    }

    /// The installation's history of the last 7 days, oldest first.
    pub(crate) fn history(&mut self, eshop_id: u64, now: Instant) -> Vec<Notification> {
        let Some(installation) = self.installations.get_mut(&eshop_id) else {
            return Vec::new();
        };
        installation
            .notifications
            .retain(|(at, _)| now.saturating_duration_since(*at) < HISTORY);
        installation
            .notifications
            .iter()
            .map(|(_, n)| n.clone())
            .collect()
    }

    /// `GET /api/webhooks/notifications`: the history filtered by `status`
    /// and `event`, newest first, paginated as Shoptet's lists are (`page`
    /// from 1, `itemsPerPage` default 50, at most 1000 — the double's
    /// choice of Shoptet's usual numbers).
    pub(crate) fn notifications_page(
        &mut self,
        eshop_id: u64,
        query: &HashMap<String, String>,
        now: Instant,
    ) -> Result<Value, Refusal> {
        let bad = |name: &str| {
            Refusal::one(
                StatusCode::BAD_REQUEST,
                code::INVALID_QUERY,
                &format!("Invalid value of query parameter `{name}`."),
                name,
            )
        };
        let status = match query.get("status").map(String::as_str) {
            None | Some("") => None,
            Some(name) => Some(NotificationStatus::from_name(name).ok_or_else(|| bad("status"))?),
        };
        let positive = |name: &str, default: usize| match query.get(name) {
            None => Ok(default),
            Some(value) => value
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| bad(name)),
        };
        let page = positive("page", 1)?;
        let per_page = positive("itemsPerPage", 50)?.min(1000);
        let event = query.get("event").filter(|e| !e.is_empty());

        let mut matching: Vec<Notification> = self
            .history(eshop_id, now)
            .into_iter()
            .filter(|n| status.is_none_or(|s| n.status == s))
            .filter(|n| event.is_none_or(|e| &n.event == e))
            .collect();
        matching.reverse();
        let total = matching.len();
        let items: Vec<Value> = matching
            .iter()
            .skip((page - 1).saturating_mul(per_page))
            .take(per_page)
            .map(Notification::to_json)
            .collect();
        Ok(json!({
            "notifications": items,
            "paginator": {
                "totalCount": total,
                "page": page,
                "pageCount": total.div_ceil(per_page),
                "itemsOnPage": items.len(),
                "itemsPerPage": per_page,
            },
        }))
    }

    /// Starts an asynchronous job: refused (403, nothing queued) unless the
    /// installation has `job:finished` registered. Its id.
    pub(crate) fn start_job(&mut self, eshop_id: u64, now: SystemTime) -> Result<String, Refusal> {
        if !self.has(eshop_id, JOB_FINISHED) {
            return Err(Refusal::one(
                StatusCode::FORBIDDEN,
                code::JOB_WEBHOOK_MISSING,
                "Asynchronous requests need the job:finished webhook registered.",
                "webhook",
            ));
        }
        let id = random::lower_alnum(12);
        self.jobs.insert(
            id.clone(),
            Job {
                eshop_id,
                created: shoptet_time(now),
                finished: None,
                asked: 0,
            },
        );
        Ok(id)
    }

    /// The job is done; false when it is gone (the installation ended).
    pub(crate) fn finish_job(&mut self, id: &str, now: SystemTime) -> bool {
        match self.jobs.get_mut(id) {
            Some(job) => {
                job.finished = Some(shoptet_time(now));
                true
            }
            None => false,
        }
    }

    /// `GET /api/system/jobs/{jobId}`: the job's detail; the 11th ask (and
    /// later ones) before it is done answers 403.
    pub(crate) fn job_detail(&mut self, eshop_id: u64, id: &str) -> Result<Value, Refusal> {
        let Some(job) = self.jobs.get_mut(id).filter(|j| j.eshop_id == eshop_id) else {
            return Err(Refusal::one(
                StatusCode::NOT_FOUND,
                code::JOB_NOT_FOUND,
                "Job not found.",
                "jobId",
            ));
        };
        if job.finished.is_none() {
            job.asked += 1;
            if job.asked > JOB_DETAIL_ASKS {
                return Err(Refusal::one(
                    StatusCode::FORBIDDEN,
                    code::JOB_ASKED_TOO_OFTEN,
                    "Job detail asked too many times before it finished; wait for job:finished.",
                    "jobId",
                ));
            }
        }
        Ok(json!({
            "job": {
                "jobId": id,
                "status": if job.finished.is_some() { "completed" } else { "pending" },
                "created": job.created,
                "completed": job.finished,
                "endpoint": "/api/products/snapshot",
                "resultUrl": job.finished.as_ref().map(|_| format!("https://api.myshoptet.test/jobs/{id}/result.json.gz")),
            },
        }))
    }

    fn find(&self, id: u64) -> Option<(u64, &Notification)> {
        self.installations.iter().find_map(|(eshop_id, i)| {
            i.notifications
                .iter()
                .find(|(_, n)| n.id == id)
                .map(|(_, n)| (*eshop_id, n))
        })
    }
}

/// One item of a registration request.
struct Item {
    event: String,
    url: String,
    send_payload_full: bool,
}

fn parse_registration(body: &[u8]) -> Result<Vec<Item>, Refusal> {
    let invalid = |message: &str, instance: &str| {
        Refusal::one(
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            message,
            instance,
        )
    };
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| invalid("The request body is not valid JSON.", "body"))?;
    let Some(items) = value.get("data").and_then(Value::as_array) else {
        return Err(invalid("The body must be {\"data\":[…]}.", "data"));
    };
    if items.is_empty() || items.len() > MAX_ITEMS {
        return Err(invalid(
            &format!("Between 1 and {MAX_ITEMS} webhooks can be registered at once."),
            "data",
        ));
    }
    let mut parsed = Vec::new();
    let mut errors = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let field = |name: &str| item.get(name).and_then(Value::as_str).map(str::to_owned);
        let (Some(event), Some(url)) = (field("event"), field("url")) else {
            errors.push(ApiError {
                code: code::INVALID_REQUEST,
                message: "Each item needs string `event` and `url`.".to_owned(),
                instance: format!("data[{index}]"),
            });
            continue;
        };
        let send_payload_full = match item.get("sendPayload") {
            None | Some(Value::Null) => false,
            Some(Value::String(s)) if s == "full" => true,
            Some(_) => {
                errors.push(ApiError {
                    code: code::INVALID_REQUEST,
                    message: "`sendPayload` can only be \"full\".".to_owned(),
                    instance: format!("data[{index}].sendPayload"),
                });
                continue;
            }
        };
        parsed.push(Item {
            event,
            url,
            send_payload_full,
        });
    }
    if errors.is_empty() {
        Ok(parsed)
    } else {
        Err(Refusal {
            status: StatusCode::BAD_REQUEST,
            errors,
        })
    }
}

/// Shoptet's URL rules: absolute http(s), at most 2000 characters, port 80,
/// 8080, 443 or 8443.
///
/// Test-only relaxation: a loopback host (`127.0.0.0/8`, `::1`,
/// `localhost`) may use any port, since a test's receiver listens on an
/// ephemeral loopback port and could never meet the real rule. Every other
/// host keeps the port rule.
fn check_url(raw: &str) -> Result<(), String> {
    if raw.chars().count() > MAX_URL_CHARS {
        return Err(format!(
            "The url is longer than {MAX_URL_CHARS} characters."
        ));
    }
    let url = url::Url::parse(raw).map_err(|_| "The url is not an absolute URL.".to_owned())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("The url must be http or https.".to_owned());
    }
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        None => return Err("The url has no host.".to_owned()),
    };
    let port = url.port_or_known_default().unwrap_or(0);
    if !loopback && !ALLOWED_PORTS.contains(&port) {
        return Err(format!(
            "The url's port must be one of 80, 8080, 443, 8443, not {port}."
        ));
    }
    Ok(())
}

/// The `payload` of a webhook registered with `sendPayload: "full"`: what
/// the matching GET endpoint would answer, here a small fake order for
/// `order:*` events and the bare identifier for others. Mass events and
/// `job:finished` never carry one (Shoptet sends none for them).
fn fake_payload(eshop_id: u64, event: &str, instance: &str, created: &str) -> Option<Value> {
    let (entity, action) = event.split_once(':')?;
    if action.starts_with("mass") || event == JOB_FINISHED {
        return None;
    }
    Some(if entity == "order" {
        json!({
            "order": {
                "code": instance,
                "creationTime": created,
                "status": { "id": -1, "name": "Nevyřízená" },
                "email": format!("customer-of-{eshop_id}@example.test"),
                "price": { "withVat": "121.00", "withoutVat": "100.00", "currencyCode": "CZK" },
                "items": [{ "code": "DOUBLE-1", "name": "Double's product", "amount": "1.000" }],
            }
        })
    } else {
        json!({ entity: { "id": instance } })
    })
}

/// Lowercase hex HMAC-SHA1 of the body: `Shoptet-Webhook-Signature`.
pub(crate) fn webhook_signature(key: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Shoptet's `eventCreated` form, `2019-01-08T15:13:39+0100`, here in UTC.
pub(crate) fn shoptet_time(at: SystemTime) -> String {
    let seconds = at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let (days, second_of_day) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}+0000",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for dates on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn event_times_are_in_shoptets_form() {
        assert_eq!(shoptet_time(at(0)), "1970-01-01T00:00:00+0000");
        // Shoptet's documented example, 2019-01-08T15:13:39+0100.
        assert_eq!(shoptet_time(at(1_546_956_819)), "2019-01-08T14:13:39+0000");
        // A leap day, and the last second of a year.
        assert_eq!(shoptet_time(at(1_709_164_800)), "2024-02-29T00:00:00+0000");
        assert_eq!(shoptet_time(at(1_735_689_599)), "2024-12-31T23:59:59+0000");
    }

    #[test]
    fn signatures_are_lowercase_hex_of_the_right_length() {
        let signature = webhook_signature("key", b"{}");
        assert_eq!(signature.len(), 40);
        assert!(
            signature
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
    }

    #[test]
    fn urls_keep_shoptets_ports_except_on_loopback() {
        assert!(check_url("https://broker.example.test/hook").is_ok());
        assert!(check_url("http://broker.example.test:8080/hook").is_ok());
        assert!(check_url("https://broker.example.test:8443/hook").is_ok());
        assert!(check_url("https://broker.example.test:9000/hook").is_err());
        assert!(check_url("http://127.0.0.1:54321/hook").is_ok());
        assert!(check_url("http://[::1]:54321/hook").is_ok());
        assert!(check_url("http://localhost:54321/hook").is_ok());
        assert!(check_url("ftp://broker.example.test/hook").is_err());
        assert!(check_url("/hook").is_err());
        let long = format!("https://broker.example.test/{}", "a".repeat(2000));
        assert!(check_url(&long).is_err());
    }

    #[test]
    fn a_notification_fails_after_three_failed_attempts() {
        let mut hooks = Webhooks::default();
        let body = br#"{"data":[{"event":"order:create","url":"https://b.example.test/"}]}"#;
        hooks.register(1, body, at(0)).unwrap();
        let [id] = hooks.notify(1, "order:create", "2024000001", at(0))[..] else {
            panic!("one notification");
        };
        let failed = Attempt {
            status: Some(500),
            error: None,
            signature: None,
        };
        assert!(!hooks.record(id, failed.clone()));
        assert!(!hooks.record(id, failed.clone()));
        assert!(hooks.record(id, failed));
        let notification = hooks.notification(id).unwrap();
        assert_eq!(notification.status, NotificationStatus::Failed);
        assert!(hooks.target(id, false).is_none());
    }
}
