//! The receiving route's work: a delivery is checked in the order that
//! keeps a flood cheap (its size, the signature header, the e-shop it
//! claims, that e-shop's key from memory or one read, the HMAC), and only
//! a genuine one is parsed and forwarded.

use std::time::SystemTime;

use broker_domain::bus::EventBus;
use broker_domain::events::DeliveryPath;
use broker_domain::ids::{ShopRef, ShoptetEshopId};
use broker_domain::model::InstallationStatus;
use broker_domain::secret::EshopSignatureKey;
use broker_domain::storage::{DeliveryLog, InstallationRegistry, InstallationStore, StoreError};
use broker_platforms::shoptet_eshop_webhooks::{
    EshopDelivery, MAX_DELIVERY_BYTES, signature_matches,
};

use crate::forward::{ForwardError, Forwarded, forward};
use crate::keys::{KeyCache, Known, RELOAD_AFTER};

/// What became of a genuine delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    Forwarded,
    /// A copy of one forwarded before (Shoptet's retry): acknowledged.
    Duplicate,
}

/// Why a delivery was not taken. Nothing was forwarded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the body is larger than a delivery")]
    TooLarge,
    #[error("the body is not a Shoptet webhook notification")]
    Malformed,
    /// No signature, a wrong one, or no key for the e-shop (unknown,
    /// uninstalled, webhooks not registered): one answer for all, so the
    /// route tells no one which shops exist.
    #[error("the signature does not verify")]
    BadSignature,
    #[error("the store is unavailable")]
    Store(StoreError),
    #[error("the event bus is unavailable")]
    Bus,
}

impl Refused {
    /// The `Code` of the rejects metric and the log line.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::Malformed => "malformed",
            Self::BadSignature => "invalid_signature",
            Self::Store(_) => "store_unavailable",
            Self::Bus => "bus_unavailable",
        }
    }
}

impl From<ForwardError> for Refused {
    fn from(error: ForwardError) -> Self {
        match error {
            ForwardError::Store(error) => Self::Store(error),
            ForwardError::Bus(_) => Self::Bus,
        }
    }
}

/// Built once per process: it keeps the keys it read.
#[derive(Default)]
pub struct Receiver {
    keys: KeyCache,
}

impl Receiver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Verifies `body` against its e-shop's key and forwards it once.
    /// `signature` is the `Shoptet-Webhook-Signature` header's value.
    #[allow(clippy::too_many_arguments)]
    pub async fn receive(
        &self,
        store: &impl InstallationStore,
        registry: &impl InstallationRegistry,
        log: &impl DeliveryLog,
        bus: &dyn EventBus,
        signature: Option<&[u8]>,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Received, Refused> {
        // Size first: an oversized body costs no parse, no read, no HMAC.
        if body.len() > MAX_DELIVERY_BYTES {
            return Err(Refused::TooLarge);
        }
        let signature = signature.ok_or(Refused::BadSignature)?;
        let eshop_id = EshopDelivery::claimed_eshop(body).map_err(|_| Refused::Malformed)?;
        if !self
            .verifies(store, registry, eshop_id, body, signature)
            .await?
        {
            return Err(Refused::BadSignature);
        }
        let delivery = EshopDelivery::parse(body).map_err(|_| Refused::Malformed)?;
        // The body is the bytes Shoptet signed; it is JSON, so UTF-8.
        let text = String::from_utf8(body.to_vec()).map_err(|_| Refused::Malformed)?;
        Ok(
            match forward(log, bus, &delivery, text, DeliveryPath::Live, now).await? {
                Forwarded::Sent => Received::Forwarded,
                Forwarded::Duplicate => Received::Duplicate,
            },
        )
    }

    /// Whether the e-shop's key signed `body`. A remembered key that fails
    /// is read again (a reinstall renewed it), at most every few seconds.
    async fn verifies(
        &self,
        store: &impl InstallationStore,
        registry: &impl InstallationRegistry,
        eshop_id: ShoptetEshopId,
        body: &[u8],
        signature: &[u8],
    ) -> Result<bool, Refused> {
        let matches = |known: &Known| match known {
            Known::Key(key) => signature_matches(key, body, signature),
            Known::None => false,
        };
        if let Some((known, age)) = self.keys.get(eshop_id) {
            if matches(&known) {
                return Ok(true);
            }
            if age < RELOAD_AFTER {
                return Ok(false);
            }
        }
        let known = match read_key(store, registry, eshop_id).await {
            Ok(Some(key)) => Known::Key(key),
            Ok(None) => Known::None,
            Err(error) => return Err(Refused::Store(error)),
        };
        let verified = matches(&known);
        self.keys.put(eshop_id, known);
        Ok(verified)
    }
}

/// The key of an installation the registry holds as active or suspended;
/// for any other id `None`, without reading the installation store (a
/// registry read costs a fraction of a secret's).
async fn read_key(
    store: &impl InstallationStore,
    registry: &impl InstallationRegistry,
    eshop_id: ShoptetEshopId,
) -> Result<Option<EshopSignatureKey>, StoreError> {
    let registration = registry.registration(&ShopRef::Shoptet(eshop_id)).await?;
    let live = registration.is_some_and(|registration| {
        matches!(
            registration.status,
            InstallationStatus::Active | InstallationStatus::Suspended
        )
    });
    if !live {
        return Ok(None);
    }
    store.load_signature_key(eshop_id).await
}
