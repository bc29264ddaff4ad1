//! The vending core over the in-memory adapters and an in-memory platform,
//! on Tokio's paused clock: each test crosses leases, expiries and the
//! 30-minute token life in milliseconds, without the emulator.

mod platforms;

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use self::platforms::InMemoryPlatforms;
use crate::ids::{ShopRef, ShoptetEshopId};
use crate::model::{
    InstallationStatus, Origin, ShoptetInstallation, ShoptetInstallationRecord, StatusChange,
};
use crate::secret::{ExposeSecret, OAuthAccessToken};
use crate::storage::memory::{MemoryInstallationStore, MemoryRegistry, MemoryTokenCache};
use crate::storage::{InstallationRegistry, InstallationStore, LeaseAttempt, Stores, TokenCache};
use crate::{Source, TokenVendor, TokioClock, VendError, VendRequest, VendTiming, Vended};
use broker_runtime::metrics::{Metrics, Service};

type MemoryStores = Stores<MemoryInstallationStore, MemoryTokenCache, MemoryRegistry>;
type Vendor = TokenVendor<MemoryInstallationStore, MemoryTokenCache, MemoryRegistry>;

const ESHOP: u64 = 222_651;

/// Shared stores, one platform, and as many function instances as a test
/// starts over them, all on one paused clock.
struct World {
    stores: MemoryStores,
    platforms: Arc<InMemoryPlatforms>,
    clock: Arc<TokioClock>,
    timing: VendTiming,
}

impl World {
    /// A Shoptet e-shop that installed the add-on: its OAuth token is stored
    /// and the registry knows it as active.
    async fn with_installed_shop() -> Self {
        let clock =
            TokioClock::starting_at(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000));
        let world = Self {
            stores: Stores::default(),
            platforms: InMemoryPlatforms::new(clock.clone()),
            clock,
            timing: VendTiming::default(),
        };
        world.install("oauth-first").await;
        world
    }

    async fn install(&self, oauth: &str) {
        let record = ShoptetInstallationRecord {
            installation: ShoptetInstallation {
                oauth_access_token: OAuthAccessToken::new(oauth),
                eshop_id: eshop(),
                eshop_url: "https://shop.example/".to_owned(),
                contact_email: None,
                trial: None,
            },
            installed_at: "2027-01-15T08:00:00Z".to_owned(),
        };
        self.stores
            .installations
            .save_shoptet_installation(&record)
            .await
            .unwrap();
        self.platforms.grant_installation(oauth);
        self.stores
            .registry
            .record(
                &shop(),
                &StatusChange::installed(self.now(), Origin::Import),
            )
            .await
            .unwrap();
    }

    /// A new function instance: its own L1, the shared L2 and registry.
    fn instance(&self) -> Vendor {
        TokenVendor::new(
            Arc::clone(&self.platforms),
            None.into(),
            self.stores.clone(),
            self.timing,
            NonZeroUsize::new(100).unwrap(),
        )
        .with_clock(self.clock.clone())
        .with_metrics(Arc::new(Metrics::new(
            Service::TokenVendor,
            "test",
            std::io::sink(),
        )))
    }

    fn now(&self) -> SystemTime {
        use crate::Clock;
        self.clock.now()
    }

    async fn registry_says(&self, status: InstallationStatus, recheck_at: Option<SystemTime>) {
        let change = StatusChange {
            recheck_at,
            ..StatusChange::to(status, self.now(), Origin::Operator)
        };
        self.stores.registry.record(&shop(), &change).await.unwrap();
    }
}

fn eshop() -> ShoptetEshopId {
    ShoptetEshopId::new(ESHOP).unwrap()
}

fn shop() -> ShopRef {
    ShopRef::Shoptet(eshop())
}

fn vend_request() -> VendRequest {
    VendRequest {
        shop: shop(),
        min_ttl: None,
        stale_token: None,
    }
}

fn reporting_stale(vended: &Vended) -> VendRequest {
    VendRequest {
        stale_token: Some(vended.token.access_token.clone()),
        ..vend_request()
    }
}

fn token_of(vended: &Vended) -> String {
    vended.token.access_token.expose_secret().to_owned()
}

#[tokio::test(start_paused = true)]
async fn a_storm_of_256_callers_over_8_instances_mints_once() {
    let world = World::with_installed_shop().await;
    world
        .platforms
        .take_time_to_mint(Duration::from_millis(800));
    let instances: Vec<Arc<Vendor>> = (0..8).map(|_| Arc::new(world.instance())).collect();

    let callers: Vec<_> = (0..256)
        .map(|caller| {
            let instance = Arc::clone(&instances[caller % instances.len()]);
            tokio::spawn(async move { instance.vend(&vend_request()).await })
        })
        .collect();
    let mut tokens = Vec::new();
    for caller in callers {
        tokens.push(token_of(
            &caller.await.unwrap().expect("every caller is served"),
        ));
    }

    assert_eq!(world.platforms.mints(), 1);
    tokens.dedup();
    assert_eq!(
        tokens,
        ["shoptet-api-1"],
        "every caller got the one minted token"
    );
}

#[tokio::test(start_paused = true)]
async fn shoptets_cap_of_five_live_tokens_holds_however_often_tokens_are_reported_stale() {
    let world = World::with_installed_shop().await;
    let instance = world.instance();
    let mut vended = instance.vend(&vend_request()).await.unwrap();
    for _ in 1..5 {
        vended = instance.vend(&reporting_stale(&vended)).await.unwrap();
        assert_eq!(vended.source, Source::Minted);
    }
    assert_eq!(world.platforms.mints(), 5);

    let refused = instance.vend(&reporting_stale(&vended)).await.unwrap_err();

    assert_eq!(world.platforms.mints(), 5, "no sixth getAccessToken");
    assert_eq!(
        world.platforms.cap_refusals(),
        0,
        "the broker stopped first"
    );
    let VendError::TokenCapReached { retry_after } = refused else {
        panic!("expected token_cap_reached, got {refused:?}");
    };
    // All five were minted at the same paused instant: the first expires in 30 min.
    assert_eq!(retry_after, Duration::from_secs(1800));

    tokio::time::advance(Duration::from_secs(1801)).await;
    let after_expiry = instance.vend(&reporting_stale(&vended)).await.unwrap();
    assert_eq!(after_expiry.source, Source::Minted);
    assert_eq!(world.platforms.mints(), 6);
}

#[tokio::test(start_paused = true)]
async fn a_stale_token_is_replaced_once_however_many_instances_report_it() {
    let world = World::with_installed_shop().await;
    world
        .platforms
        .take_time_to_mint(Duration::from_millis(300));
    let first = world.instance().vend(&vend_request()).await.unwrap();
    let instances: Vec<Arc<Vendor>> = (0..4).map(|_| Arc::new(world.instance())).collect();

    let reports: Vec<_> = instances
        .iter()
        .map(|instance| {
            let (instance, request) = (Arc::clone(instance), reporting_stale(&first));
            tokio::spawn(async move { instance.vend(&request).await })
        })
        .collect();
    let mut replacements = Vec::new();
    for report in reports {
        replacements.push(token_of(&report.await.unwrap().unwrap()));
    }

    assert_eq!(world.platforms.mints(), 2, "one mint for the stale report");
    replacements.dedup();
    assert_eq!(replacements, ["shoptet-api-2"]);
    let shared = world.stores.tokens.load(&shop()).await.unwrap().unwrap();
    assert_eq!(
        shared.token.unwrap().access_token.expose_secret(),
        "shoptet-api-2",
        "the shared cache holds the replacement"
    );
    assert_eq!(
        shared.ledger.len(),
        2,
        "both minted tokens count toward the cap"
    );
}

#[tokio::test(start_paused = true)]
async fn a_dead_holders_lease_is_taken_over_when_it_expires() {
    let world = World::with_installed_shop().await;
    let now = world.now();
    let dead = world
        .stores
        .tokens
        .try_lease(&shop(), "dead-instance", now, now + world.timing.lease)
        .await
        .unwrap();
    assert!(matches!(dead, LeaseAttempt::Acquired(_)));
    let started = Instant::now();

    let vended = world.instance().vend(&vend_request()).await.unwrap();

    assert_eq!(vended.source, Source::Minted);
    assert_eq!(world.platforms.mints(), 1);
    let waited = started.elapsed();
    assert!(
        waited >= world.timing.lease && waited < world.timing.lease_wait,
        "taken over after the lease ran out, before the wait bound: {waited:?}"
    );
    let entry = world.stores.tokens.load(&shop()).await.unwrap().unwrap();
    assert_eq!(entry.lease, None, "the new holder released the lease");
}

#[tokio::test(start_paused = true)]
async fn a_live_holder_that_never_stores_makes_waiters_give_up_as_upstream_unavailable() {
    let world = World::with_installed_shop().await;
    let now = world.now();
    // A holder whose lease outlasts every waiter's bound.
    let long = now + world.timing.lease_wait + Duration::from_secs(60);
    world
        .stores
        .tokens
        .try_lease(&shop(), "slow-instance", now, long)
        .await
        .unwrap();

    let refused = world.instance().vend(&vend_request()).await.unwrap_err();

    assert_eq!(refused, VendError::UpstreamUnavailable);
    assert_eq!(world.platforms.mints(), 0);
}

#[tokio::test(start_paused = true)]
async fn l1_is_trusted_for_thirty_seconds_then_the_shared_state_is_read_again() {
    let world = World::with_installed_shop().await;
    let instance = world.instance();
    instance.vend(&vend_request()).await.unwrap();
    // An uninstall elsewhere: the registry learns it, the shared entry goes.
    world
        .registry_says(InstallationStatus::Uninstalled, None)
        .await;
    world.stores.tokens.forget(&shop()).await.unwrap();

    tokio::time::advance(world.timing.l1_trust - Duration::from_secs(1)).await;
    let within_trust = instance.vend(&vend_request()).await.unwrap();
    assert_eq!(within_trust.source, Source::L1);

    tokio::time::advance(Duration::from_secs(2)).await;
    let after_trust = instance.vend(&vend_request()).await.unwrap_err();
    assert_eq!(after_trust, VendError::NotInstalled);
    assert_eq!(world.platforms.mints(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_shop_of_a_platform_the_stack_does_not_serve_is_not_configured() {
    // The in-memory platforms serve Shoptet only, as a Shoptet-only stack.
    let world = World::with_installed_shop().await;
    let request = VendRequest {
        shop: ShopRef::Shoprenter("demo-shop".parse().unwrap()),
        ..vend_request()
    };

    let refused = world.instance().vend(&request).await.unwrap_err();

    assert_eq!(refused, VendError::NotConfigured);
    assert_eq!(world.platforms.mints(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_registry_refuses_uninstalled_shops_without_asking_the_platform() {
    let world = World::with_installed_shop().await;
    world
        .registry_says(InstallationStatus::Uninstalled, None)
        .await;

    let refused = world.instance().vend(&vend_request()).await.unwrap_err();

    assert_eq!(refused, VendError::NotInstalled);
    assert_eq!(world.platforms.mints(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_suspended_shop_is_refused_until_its_recheck_is_due_then_asked_once() {
    let world = World::with_installed_shop().await;
    let recheck_at = world.now() + world.timing.suspended_recheck;
    world
        .registry_says(InstallationStatus::Suspended, Some(recheck_at))
        .await;
    let instance = world.instance();

    let refused = instance.vend(&vend_request()).await.unwrap_err();
    assert_eq!(refused, VendError::AddonSuspended);
    assert_eq!(world.platforms.mints(), 0);

    // Re-approved on the platform while the approve webhook was lost.
    tokio::time::advance(world.timing.suspended_recheck).await;
    let vended = instance.vend(&vend_request()).await.unwrap();

    assert_eq!(vended.source, Source::Minted);
    assert_eq!(world.platforms.mints(), 1);
    let registration = world.stores.registry.registration(&shop()).await.unwrap();
    assert_eq!(registration.unwrap().status, InstallationStatus::Active);
}

#[tokio::test(start_paused = true)]
async fn a_mint_the_platform_refuses_as_suspended_teaches_the_registry() {
    let world = World::with_installed_shop().await;
    world.platforms.suspend();

    let refused = world.instance().vend(&vend_request()).await.unwrap_err();

    assert_eq!(refused, VendError::AddonSuspended);
    let registration = world
        .stores
        .registry
        .registration(&shop())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(registration.status, InstallationStatus::Suspended);
    assert_eq!(
        registration.recheck_at,
        Some(world.now() + world.timing.suspended_recheck)
    );
}

#[tokio::test(start_paused = true)]
async fn a_reinstall_replaces_the_oauth_token_an_instance_remembered() {
    let world = World::with_installed_shop().await;
    let instance = world.instance();
    let first = instance.vend(&vend_request()).await.unwrap();
    // Reinstalled: Shoptet revokes the old OAuth token, the new one is stored.
    world.platforms.revoke_installation("oauth-first");
    world.install("oauth-second").await;

    let vended = instance.vend(&reporting_stale(&first)).await.unwrap();

    assert_eq!(vended.source, Source::Minted);
    assert_eq!(world.platforms.mints_with("oauth-second"), 1);
}

#[tokio::test(start_paused = true)]
async fn tokens_are_served_from_l2_to_a_new_instance_and_refreshed_before_they_expire() {
    let world = World::with_installed_shop().await;
    world.instance().vend(&vend_request()).await.unwrap();

    let cold = world.instance().vend(&vend_request()).await.unwrap();
    assert_eq!(cold.source, Source::L2);

    // Within the refresh margin of its expiry, the token is not served.
    let margin = world.timing.refresh_margin;
    tokio::time::advance(Duration::from_secs(1800) - margin + Duration::from_secs(1)).await;
    let refreshed = world.instance().vend(&vend_request()).await.unwrap();
    assert_eq!(refreshed.source, Source::Minted);
    assert_eq!(world.platforms.mints(), 2);
}

mod confirmations {
    use super::*;
    use crate::limits::SHOPTET_LIVE_TOKEN_CAP;
    use crate::{CONFIRMATION_MINT_INTERVAL, Confirmation, Doubt, Provenance};

    /// A freshly dated event, as a forger sends it, received now.
    async fn confirm_fresh(
        instance: &Vendor,
        world: &World,
        provenance: Provenance,
    ) -> Confirmation {
        let now = world.now();
        instance
            .confirm(&shop(), now, now, provenance)
            .await
            .unwrap()
    }

    async fn live_in_ledger(world: &World) -> usize {
        let entry = world
            .stores
            .tokens
            .load(&shop())
            .await
            .unwrap()
            .unwrap_or_default();
        let now = world.now();
        entry.ledger.iter().filter(|at| **at > now).count()
    }

    #[tokio::test(start_paused = true)]
    async fn forged_unsigned_events_every_second_for_two_hours_mint_at_most_once_a_minute_and_never_fill_the_cap()
     {
        let world = World::with_installed_shop().await;
        let (webhooks, consumers) = (world.instance(), world.instance());
        let seconds = 2 * 3600;
        let mut most_live = 0;
        for second in 0..seconds {
            confirm_fresh(&webhooks, &world, Provenance::Unsigned).await;
            if second % 10 == 0 {
                consumers
                    .vend(&vend_request())
                    .await
                    .expect("consumers are served during the stream");
            }
            most_live = most_live.max(live_in_ledger(&world).await);
            tokio::time::advance(Duration::from_secs(1)).await;
        }

        let bound = seconds / CONFIRMATION_MINT_INTERVAL.as_secs() as usize + 1;
        assert!(
            world.platforms.mints() <= bound,
            "{} mints",
            world.platforms.mints()
        );
        assert!(
            most_live <= SHOPTET_LIVE_TOKEN_CAP - 2,
            "two slots stay free for stale reports: {most_live} live"
        );
        assert_eq!(world.platforms.cap_refusals(), 0);
        // A consumer that reports its token stale still gets a new one.
        let vended = consumers.vend(&vend_request()).await.unwrap();
        let replaced = consumers.vend(&reporting_stale(&vended)).await.unwrap();
        assert_eq!(replaced.source, Source::Minted);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unsigned_confirmation_right_after_a_mint_asks_nothing_and_settles_nothing() {
        let world = World::with_installed_shop().await;
        let instance = world.instance();
        instance.vend(&vend_request()).await.unwrap();

        tokio::time::advance(CONFIRMATION_MINT_INTERVAL - Duration::from_secs(1)).await;
        let within = confirm_fresh(&world.instance(), &world, Provenance::Unsigned).await;
        assert_eq!(within, Confirmation::Inconclusive(Doubt::MintedRecently));
        assert_eq!(world.platforms.mints(), 1);

        tokio::time::advance(Duration::from_secs(1)).await;
        let after = confirm_fresh(&world.instance(), &world, Provenance::Unsigned).await;
        assert_eq!(after, Confirmation::Live);
        assert_eq!(world.platforms.mints(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_signed_confirmation_mints_at_once_but_never_takes_the_last_free_slot() {
        let world = World::with_installed_shop().await;
        let instance = world.instance();
        let mut vended = instance.vend(&vend_request()).await.unwrap();
        let signed = confirm_fresh(&world.instance(), &world, Provenance::Signed).await;
        assert_eq!(signed, Confirmation::Live);
        assert_eq!(
            world.platforms.mints(),
            2,
            "no interval for a verified event"
        );

        // Consumers replace their token until four are live.
        while live_in_ledger(&world).await < 4 {
            vended = instance.vend(&reporting_stale(&vended)).await.unwrap();
        }
        tokio::time::advance(CONFIRMATION_MINT_INTERVAL).await;

        let unsigned = confirm_fresh(&world.instance(), &world, Provenance::Unsigned).await;
        assert_eq!(unsigned, Confirmation::Inconclusive(Doubt::ConsumerReserve));
        let now = world.now();
        let signed = world
            .instance()
            .confirm(&shop(), now, now, Provenance::Signed)
            .await;
        assert!(
            matches!(signed, Err(VendError::TokenCapReached { .. })),
            "a signed event is worth Shoptet's retry: {signed:?}"
        );
        assert_eq!(world.platforms.mints(), 4);
        // The free slot is the consumers'.
        let fifth = instance.vend(&reporting_stale(&vended)).await.unwrap();
        assert_eq!(fifth.source, Source::Minted);
        assert_eq!(world.platforms.cap_refusals(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_bare_401_settles_a_signed_uninstall_but_never_an_unsigned_one() {
        let world = World::with_installed_shop().await;
        world.platforms.answer_bare_401(1);

        let unsigned = confirm_fresh(&world.instance(), &world, Provenance::Unsigned).await;
        assert_eq!(
            unsigned,
            Confirmation::Inconclusive(Doubt::UnexplainedRefusal)
        );

        world.platforms.answer_bare_401(1);
        let signed = confirm_fresh(&world.instance(), &world, Provenance::Signed).await;
        assert_eq!(signed, Confirmation::Uninstalled);
        // Neither touched the registry: the caller records what it learns.
        let registration = world.stores.registry.registration(&shop()).await.unwrap();
        assert_eq!(registration.unwrap().status, InstallationStatus::Active);
    }

    #[tokio::test(start_paused = true)]
    async fn unsigned_confirmations_for_a_shop_without_an_installation_mint_nothing() {
        let world = World::with_installed_shop().await;
        let stranger = ShopRef::Shoptet(ShoptetEshopId::new(424_242).unwrap());
        let instance = world.instance();
        for _ in 0..100 {
            let now = world.now();
            let answer = instance
                .confirm(&stranger, now, now, Provenance::Unsigned)
                .await
                .unwrap();
            assert_eq!(answer, Confirmation::Unknown);
        }
        assert_eq!(world.platforms.mints(), 0);
    }
}
