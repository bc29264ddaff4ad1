//! The e-shop webhooks' core over the in-memory stores and bus, against the
//! platform double: registration, receiving, reconciliation. What only
//! AWS can show (the stores on moto, the bus on EventBridge, the handlers)
//! is in `functions/install-callback/tests/eshop_webhooks.rs`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use broker_domain::bus::{EventBus, MemoryBus};
use broker_domain::events::{DeliveryPath, EshopWebhookEvent};
use broker_domain::ids::{ShopRef, ShoptetEshopId};
use broker_domain::lazy_secret::LazySecret;
use broker_domain::model::{Origin, ShoptetInstallationRecord, StatusChange};
use broker_domain::secret::{ClientSecret, EshopSignatureKey, ExposeSecret, InstallCode};
use broker_domain::storage::memory::{MemoryInstallationStore, MemoryRegistry, MemoryTokenCache};
use broker_domain::storage::{
    InstallationRegistry, InstallationStore, RecoveryWindow, Stores, TokenCache,
};
use broker_platforms::minting::PlatformMinter;
use broker_platforms::shoprenter::ShoprenterClient;
use broker_platforms::shoptet::{AddonCredentials, ShoptetClient, ShoptetConfig};
use broker_platforms::shoptet_eshop_webhooks::{Subscription, sign};
use broker_platforms::upstream::{HttpSettings, UpstreamUrl};
use broker_runtime::metrics::{Metrics, Service};
use broker_shoptet_webhooks::{
    EshopWebhooks, KeyRenewal, Received, Receiver, Reconciler, Refused, Registrar, WebhookFailure,
};
use broker_vending::{REMEMBERED_SHOPS, TokenVendor, VendTiming};
use platform_double::{DoubleConfig, Endpoint, PlatformDouble};

type Vendor = TokenVendor<MemoryInstallationStore, MemoryTokenCache, MemoryRegistry>;

/// The route Shoptet is told to call; nothing listens on it, so the
/// double's attempts fail (what the reconciliation tests need).
const URL: &str = "http://127.0.0.1:9/shoptet/eshop-webhook";
const ESHOP: u64 = 222651;

struct World {
    double: PlatformDouble,
    vendor: Vendor,
    bus: MemoryBus,
    webhooks: EshopWebhooks,
}

fn client(double: &PlatformDouble) -> ShoptetClient {
    ShoptetClient::new(
        HttpSettings::default().build_client(),
        ShoptetConfig {
            oauth_url: UpstreamUrl::parse(&double.shoptet_oauth_url()).unwrap(),
            api_url: UpstreamUrl::parse(&double.shoptet_api_url()).unwrap(),
        },
    )
}

impl World {
    async fn new(events: &str) -> Self {
        Self::with(
            events,
            DoubleConfig {
                webhook_retry_gap: Duration::from_millis(20),
                ..DoubleConfig::default()
            },
        )
        .await
    }

    async fn with(events: &str, config: DoubleConfig) -> Self {
        let double = PlatformDouble::start_with(config).await;
        let vendor = TokenVendor::new(
            PlatformMinter::new(
                Some(client(&double)),
                ShoprenterClient::new(
                    HttpSettings::default().build_client(),
                    UpstreamUrl::parse(&double.shoprenter_oauth_url()).unwrap(),
                ),
            ),
            LazySecret::default(),
            Stores {
                installations: MemoryInstallationStore::default(),
                tokens: MemoryTokenCache::default(),
                registry: MemoryRegistry::default(),
            },
            VendTiming::default(),
            REMEMBERED_SHOPS,
        );
        let bus = MemoryBus::default();
        let subscription = Subscription::parse(events, "none").unwrap().unwrap();
        let webhooks = EshopWebhooks::new(
            Registrar::new(subscription, URL.to_owned(), client(&double)),
            Reconciler::new(client(&double)),
            Arc::new(bus.clone()),
            Arc::new(Metrics::new(
                Service::ShoptetWebhooks,
                "BrokerTest",
                std::io::sink(),
            )),
        );
        Self {
            double,
            vendor,
            bus,
            webhooks,
        }
    }

    /// The e-shop installs the add-on: its OAuth token stored, the registry
    /// told, as the install callback does.
    async fn install(&self, eshop_id: u64) -> ShoptetEshopId {
        let code = InstallCode::new(self.double.issue_install_code(eshop_id));
        let addon = AddonCredentials {
            client_id: self.double.config().shoptet_client_id.clone(),
            client_secret: self
                .double
                .config()
                .shoptet_client_secret
                .clone()
                .map(ClientSecret::new),
        };
        let installation = client(&self.double)
            .exchange_code(&code, &addon, "https://broker.example/shoptet/install")
            .await
            .unwrap();
        let id = installation.eshop_id;
        let stores = self.vendor.stores();
        stores
            .installations
            .save_shoptet_installation(&ShoptetInstallationRecord {
                installation,
                installed_at: "2026-12-06T10:00:00Z".into(),
            })
            .await
            .unwrap();
        // As the install callback does: the old installation's token goes.
        let shop = ShopRef::Shoptet(id);
        stores.tokens.forget(&shop).await.unwrap();
        self.vendor.forget_locally(&shop);
        stores
            .registry
            .record(
                &shop,
                &StatusChange::installed(SystemTime::now(), Origin::Operator),
            )
            .await
            .unwrap();
        id
    }

    /// Installs the add-on in `eshop_id` and registers its webhooks, as an
    /// install event does.
    async fn installed_and_registered(&self, eshop_id: u64) -> ShoptetEshopId {
        let eshop = self.install(eshop_id).await;
        self.webhooks
            .register(&self.vendor, eshop, KeyRenewal::Always, true)
            .await
            .unwrap();
        eshop
    }

    async fn key(&self, eshop_id: ShoptetEshopId) -> Option<EshopSignatureKey> {
        self.vendor
            .stores()
            .installations
            .load_signature_key(eshop_id)
            .await
            .unwrap()
    }

    async fn receive(
        &self,
        receiver: &Receiver,
        signature: &str,
        body: &[u8],
    ) -> Result<Received, Refused> {
        let stores = self.vendor.stores();
        receiver
            .receive(
                &stores.installations,
                &stores.registry,
                &stores.tokens,
                &self.bus as &dyn EventBus,
                Some(signature.as_bytes()),
                body,
                SystemTime::now(),
            )
            .await
    }

    fn forwarded(&self) -> Vec<EshopWebhookEvent> {
        self.bus
            .entries()
            .iter()
            .filter(|entry| entry.detail_type == "Shoptet Webhook")
            .map(|entry| serde_json::from_str(&entry.detail).unwrap())
            .collect()
    }
}

fn body(eshop_id: u64, instance: &str) -> Vec<u8> {
    format!(r#"{{"eshopId":{eshop_id},"event":"order:create","eventCreated":"2026-12-06T10:00:00+0100","eventInstance":"{instance}"}}"#).into_bytes()
}

#[tokio::test]
async fn an_install_registers_exactly_the_configured_events_and_keeps_the_installations_key() {
    let world = World::new("order:create,job:finished").await;
    let eshop = world.install(ESHOP).await;

    let registered = world
        .webhooks
        .register(&world.vendor, eshop, KeyRenewal::Always, true)
        .await
        .unwrap();

    let mut events: Vec<_> = world
        .double
        .webhooks(ESHOP)
        .into_iter()
        .map(|w| (w.event, w.url))
        .collect();
    events.sort();
    assert_eq!(
        events,
        [
            ("job:finished".to_owned(), URL.to_owned()),
            ("order:create".to_owned(), URL.to_owned())
        ]
    );
    assert_eq!(registered.added.len(), 2);
    assert!(registered.key_renewed);
    let key = world.key(eshop).await.expect("the key is kept");
    assert_eq!(
        Some(key.expose_secret().to_owned()),
        world.double.webhook_signature_key(ESHOP)
    );
    let announced: Vec<_> = world.bus.entries().iter().map(|e| e.detail_type).collect();
    assert_eq!(announced, ["Shoptet Webhooks Registered"]);
    assert!(
        !world.bus.entries()[0].detail.contains(key.expose_secret()),
        "the key is in no event"
    );
}

#[tokio::test]
async fn registering_again_registers_nothing_twice_and_keeps_the_key() {
    let world = World::new("order:create").await;
    let eshop = world.installed_and_registered(ESHOP).await;
    let key = world.key(eshop).await.unwrap();

    let again = world
        .webhooks
        .register(&world.vendor, eshop, KeyRenewal::IfMissing, true)
        .await
        .unwrap();

    assert!(again.added.is_empty() && !again.key_renewed && again.present == 1);
    assert_eq!(
        world
            .double
            .calls(Endpoint::ShoptetWebhookRegister, &ESHOP.to_string()),
        1
    );
    assert_eq!(world.key(eshop).await, Some(key));
}

#[tokio::test]
async fn concurrent_registrations_of_one_installation_both_succeed_and_register_each_event_once() {
    let world = World::new("order:create,order:paid").await;
    let eshop = world.install(ESHOP).await;

    let (a, b) = tokio::join!(
        world
            .webhooks
            .register(&world.vendor, eshop, KeyRenewal::IfMissing, true),
        world
            .webhooks
            .register(&world.vendor, eshop, KeyRenewal::IfMissing, true),
    );

    assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
    assert_eq!(world.double.webhooks(ESHOP).len(), 2);
}

#[tokio::test]
async fn an_event_registered_at_another_url_is_left_alone_and_reported_permanent() {
    let world = World::new("order:create").await;
    let eshop = world.install(ESHOP).await;
    let other = Registrar::new(
        Subscription::parse("order:create", "none")
            .unwrap()
            .unwrap(),
        "http://127.0.0.1:9/legacy".into(),
        client(&world.double),
    );
    other
        .register(&world.vendor, eshop, KeyRenewal::IfMissing, false)
        .await
        .unwrap();

    let failure = world
        .webhooks
        .register(&world.vendor, eshop, KeyRenewal::Always, true)
        .await
        .unwrap_err();

    assert_eq!(failure, WebhookFailure::RegisteredElsewhere("order:create"));
    assert!(failure.is_permanent());
    assert_eq!(
        world.double.webhooks(ESHOP)[0].url,
        "http://127.0.0.1:9/legacy"
    );
    let announced = &world.bus.entries()[0];
    assert_eq!(
        announced.detail_type,
        "Shoptet Webhooks Registration Failed"
    );
    assert!(announced.detail.contains(r#""will_retry":false"#));
}

#[tokio::test]
async fn a_genuine_delivery_is_forwarded_once_with_its_body_byte_for_byte() {
    let world = World::new("order:create").await;
    let eshop = world.installed_and_registered(ESHOP).await;
    let key = world.key(eshop).await.unwrap();
    let receiver = Receiver::new();
    let body = body(ESHOP, "2026000001");
    let signature = sign(&key, &body);

    let first = world.receive(&receiver, &signature, &body).await;
    let retries = [
        world.receive(&receiver, &signature, &body).await,
        world.receive(&receiver, &signature, &body).await,
    ];

    assert_eq!(first, Ok(Received::Forwarded));
    assert_eq!(retries, [Ok(Received::Duplicate), Ok(Received::Duplicate)]);
    let forwarded = world.forwarded();
    assert_eq!(forwarded.len(), 1);
    assert_eq!(forwarded[0].body.as_bytes(), body.as_slice());
    assert_eq!(forwarded[0].delivery, DeliveryPath::Live);
    assert_eq!(
        (forwarded[0].shop.as_str(), forwarded[0].event.as_str()),
        ("222651", "order:create")
    );
}

#[tokio::test]
async fn forged_replayed_unknown_and_oversized_deliveries_are_refused_and_forward_nothing() {
    let world = World::new("order:create").await;
    let eshop = world.install(ESHOP).await;
    let other = world.install(333444).await;
    for shop in [eshop, other] {
        world
            .webhooks
            .register(&world.vendor, shop, KeyRenewal::Always, true)
            .await
            .unwrap();
    }
    let key = world.key(eshop).await.unwrap();
    let others_key = world.key(other).await.unwrap();
    let receiver = Receiver::new();
    let genuine = body(ESHOP, "2026000001");
    let replayed_elsewhere = body(333444, "2026000001");
    let unknown = body(999999, "2026000001");
    let mut oversized = body(ESHOP, "2026000001");
    oversized.splice(
        1..1,
        format!(r#""pad":"{}","#, "x".repeat(210 * 1024)).into_bytes(),
    );

    let refusals = [
        world
            .receive(
                &receiver,
                &sign(&EshopSignatureKey::new("wrong"), &genuine),
                &genuine,
            )
            .await,
        world
            .receive(&receiver, &sign(&others_key, &genuine), &genuine)
            .await,
        world
            .receive(&receiver, &sign(&key, &genuine), &replayed_elsewhere)
            .await,
        world
            .receive(&receiver, &sign(&key, &unknown), &unknown)
            .await,
        world
            .receive(&receiver, &sign(&key, &oversized), &oversized)
            .await,
    ];

    assert_eq!(
        refusals,
        [
            Err(Refused::BadSignature),
            Err(Refused::BadSignature),
            Err(Refused::BadSignature),
            Err(Refused::BadSignature),
            Err(Refused::TooLarge),
        ]
    );
    assert!(world.forwarded().is_empty());
}

#[tokio::test]
async fn missed_deliveries_are_reconciled_once_and_not_again_nor_after_a_live_copy() {
    let world = World::new("order:create").await;
    let eshop = world.installed_and_registered(ESHOP).await;
    // The route is down (nothing listens on the URL): every attempt fails.
    let first = world
        .double
        .deliver_webhook(ESHOP, "order:create", "2026000001")
        .await;
    world
        .double
        .deliver_webhook(ESHOP, "order:create", "2026000002")
        .await;
    assert!(
        !first.notifications[0]
            .attempts
            .iter()
            .any(|a| a.succeeded())
    );

    let run = world
        .webhooks
        .reconcile(&world.vendor, eshop)
        .await
        .unwrap();
    let next = world
        .webhooks
        .reconcile(&world.vendor, eshop)
        .await
        .unwrap();

    assert_eq!((run.forwarded, run.duplicates), (2, 0));
    assert_eq!((next.forwarded, next.duplicates), (0, 2));
    let forwarded = world.forwarded();
    assert_eq!(forwarded.len(), 2);
    assert!(
        forwarded
            .iter()
            .all(|e| e.delivery == DeliveryPath::Reconciliation)
    );
    // The live copy of a reconciled notification (a late retry) is a duplicate.
    let key = world.key(eshop).await.unwrap();
    let late = first.notifications[0].body.to_vec();
    let receiver = Receiver::new();
    assert_eq!(
        world.receive(&receiver, &sign(&key, &late), &late).await,
        Ok(Received::Duplicate)
    );
    assert_eq!(forwarded[0].id.len(), 36);
}

#[tokio::test]
async fn a_reinstall_renews_the_key_and_deliveries_verify_with_the_new_one_only() {
    let world = World::new("order:create").await;
    let eshop = world.installed_and_registered(ESHOP).await;
    let old_key = world.key(eshop).await.unwrap();
    let receiver = Receiver::new();
    let first = body(ESHOP, "2026000001");
    assert_eq!(
        world
            .receive(&receiver, &sign(&old_key, &first), &first)
            .await,
        Ok(Received::Forwarded)
    );

    world.install(ESHOP).await;
    world
        .webhooks
        .register(&world.vendor, eshop, KeyRenewal::Always, true)
        .await
        .unwrap();
    let new_key = world.key(eshop).await.unwrap();
    // The old key, remembered, is read again once it is a second old.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = body(ESHOP, "2026000002");

    assert_ne!(new_key, old_key);
    assert_eq!(
        world
            .receive(&receiver, &sign(&new_key, &second), &second)
            .await,
        Ok(Received::Forwarded)
    );
    assert_eq!(
        world
            .receive(&receiver, &sign(&old_key, &second), &second)
            .await,
        Err(Refused::BadSignature)
    );
    assert_eq!(world.double.webhooks(ESHOP).len(), 1);
}

#[tokio::test]
async fn an_uninstall_removes_the_key_and_its_deliveries_are_refused() {
    let world = World::new("order:create").await;
    let eshop = world.installed_and_registered(ESHOP).await;
    let key = world.key(eshop).await.unwrap();

    world
        .vendor
        .stores()
        .installations
        .schedule_deletion(&ShopRef::Shoptet(eshop), RecoveryWindow::DEFAULT)
        .await
        .unwrap();

    assert_eq!(world.key(eshop).await, None);
    let body = body(ESHOP, "2026000001");
    assert_eq!(
        world
            .receive(&Receiver::new(), &sign(&key, &body), &body)
            .await,
        Err(Refused::BadSignature)
    );
}

/// Whether Shoptet's signature key is per installation or per add-on is
/// unconfirmed. If it is per add-on, renewing it for one installation
/// replaces every other's: their live deliveries then fail the signature
/// check, Shoptet marks them failed, and the reconciliation (which reads
/// the history with the installation's own token, no signature needed)
/// forwards them. Nothing is lost either way.
#[tokio::test]
async fn with_one_key_per_add_on_a_replaced_key_loses_no_delivery_the_reconciliation_forwards_it() {
    let world = World::with(
        "order:create",
        DoubleConfig {
            signature_key_per_addon: true,
            webhook_retry_gap: Duration::from_millis(20),
            ..DoubleConfig::default()
        },
    )
    .await;
    let first = world.installed_and_registered(ESHOP).await;
    let second = world.installed_and_registered(333444).await;
    assert_ne!(
        world.key(first).await,
        world.key(second).await,
        "the first key went stale"
    );

    let report = world
        .double
        .deliver_webhook(ESHOP, "order:create", "2026000001")
        .await;
    let notification = &report.notifications[0];
    let signature = notification.attempts[0].signature.clone().unwrap();
    let live = world
        .receive(&Receiver::new(), &signature, &notification.body)
        .await;
    let reconciled = world
        .webhooks
        .reconcile(&world.vendor, first)
        .await
        .unwrap();

    assert_eq!(live, Err(Refused::BadSignature));
    assert_eq!(reconciled.forwarded, 1);
    assert_eq!(world.forwarded().len(), 1);
}
