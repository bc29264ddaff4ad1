//! Copying every installation from one store to another: what switching a
//! stack's `InstallationStore` needs (the `migrate-installations` command).
//!
//! The source's inventory is read page by page; each listed shop's document
//! is loaded from the source and from the target and saved to the target
//! unless the target already holds the very same document. So a run is
//! idempotent (a second one copies nothing) and may stop anywhere: the
//! cursor of the last finished page resumes it.
//!
//! A target that holds another document for the shop keeps it unless asked
//! to overwrite: once a stack uses the target, the functions write there,
//! so a differing document there is newer than the source's (a reinstall
//! after the switch), and replacing it would bring back revoked credentials. A failure on one shop is
//! counted and named and the run goes on. Documents are secrets: nothing
//! here prints, logs or keeps one longer than the copy takes, and what it
//! reports (shops, counts, [`StoreError`]s, cursors) holds none.

use std::num::NonZeroUsize;

use futures_util::StreamExt;
use zeroize::Zeroizing;

use broker_domain::ids::{ShopRef, ShoptetEshopId};
use broker_domain::model::InstallationStatus;
use broker_domain::secret::EshopSignatureKey;
use broker_domain::storage::{
    InstallationInventory, InstallationRegistry, InstallationStore, InventoryCursor, InventoryPage,
    InventoryQuery, MAX_PAGE, RecoveryWindow, SaveOutcome, StoreError,
};

/// Shops of a page copied at once.
const COPIES_IN_FLIGHT: usize = 8;

/// What to copy, and how much of it in one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// Shops listed per page (capped at [`MAX_PAGE`]); progress is reported
    /// once per page.
    pub page_size: NonZeroUsize,
    /// Continue a run that stopped: the cursor its last finished page
    /// reported. `None` starts from the first shop.
    pub resume_from: Option<InventoryCursor>,
    /// Stop after this many pages (a run in slices); `None` runs to the end.
    pub max_pages: Option<NonZeroUsize>,
    /// Compare only: count what would be copied, write nothing.
    pub dry_run: bool,
    /// Replace a target document that differs from the source's. Off, the
    /// target's is kept and the shop is named (see the module's docs).
    pub overwrite: bool,
}

impl Default for Migration {
    fn default() -> Self {
        Self {
            page_size: NonZeroUsize::new(MAX_PAGE).expect("MAX_PAGE is not zero"),
            resume_from: None,
            max_pages: None,
            dry_run: false,
            overwrite: false,
        }
    }
}

/// How many shops went which way, so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Listed by the source's inventory.
    pub listed: usize,
    /// Saved to the target (in a dry run: would have been).
    pub copied: usize,
    /// The target already held the same document.
    pub already_there: usize,
    /// The target held another document for the shop and kept it (without
    /// `overwrite`).
    pub kept: usize,
    /// Listed, but gone from the source by the time it was read, or
    /// recorded uninstalled by the registry ([`SkipUninstalled`]): nothing
    /// to copy.
    pub skipped: usize,
    /// A store call failed; see [`Failure`].
    pub failed: usize,
}

/// One shop that was not copied, and why. The error holds no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub shop: ShopRef,
    pub error: StoreError,
}

/// What a run reports after each page.
#[derive(Debug)]
pub struct Progress<'a> {
    /// Pages finished in this run, this one included.
    pub pages: usize,
    /// Totals of this run so far.
    pub counts: &'a Counts,
    /// The shops of this page that failed.
    pub failures: &'a [Failure],
    /// The shops of this page whose differing document the target kept.
    pub kept: &'a [ShopRef],
    /// Where a later run resumes to go on after this page; `None` when the
    /// source has no more shops.
    pub resume_from: Option<&'a InventoryCursor>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Every listed shop was handled (some may have failed).
    Complete,
    /// `max_pages` pages were done; the rest follows from `resume_from`.
    Paused { resume_from: InventoryCursor },
    /// The source's inventory could not be read: the run stopped there.
    /// `resume_from` is where it was (`None`: at the first page).
    ListingFailed {
        error: StoreError,
        resume_from: Option<InventoryCursor>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub counts: Counts,
    pub failures: Vec<Failure>,
    pub kept: Vec<ShopRef>,
    pub ending: Ending,
}

impl Report {
    /// Nothing failed and nothing is left to do but what `max_pages` left.
    pub fn succeeded(&self) -> bool {
        self.failures.is_empty() && !matches!(self.ending, Ending::ListingFailed { .. })
    }
}

/// What happened to one shop.
enum Outcome {
    Copied,
    AlreadyThere,
    Kept,
    Skipped,
}

/// Copies every installation `source` lists into `target`, calling
/// `progress` after each page.
pub async fn migrate<S, T>(
    source: &S,
    target: &T,
    migration: &Migration,
    mut progress: impl FnMut(&Progress<'_>),
) -> Report
where
    S: InstallationStore + InstallationInventory,
    T: InstallationStore,
{
    let mut counts = Counts::default();
    let mut failures = Vec::new();
    let mut kept = Vec::new();
    let mut after = migration.resume_from.clone();
    let mut pages = 0;
    let ending = loop {
        let query = InventoryQuery {
            limit: migration.page_size,
            after: after.clone(),
        };
        let page = match source.list_installations(&query).await {
            Ok(page) => page,
            Err(error) => {
                break Ending::ListingFailed {
                    error,
                    resume_from: after,
                };
            }
        };
        let (first_failure, first_kept) = (failures.len(), kept.len());
        // A few shops at a time: a large fleet copies in minutes, and the
        // stores' rate limits are far off. In order, so reports are too.
        let outcomes: Vec<_> = futures_util::stream::iter(page.shops)
            .map(|shop| async move {
                let outcome = copy(source, target, &shop, migration).await;
                (shop, outcome)
            })
            .buffered(COPIES_IN_FLIGHT)
            .collect()
            .await;
        for (shop, outcome) in outcomes {
            counts.listed += 1;
            match outcome {
                Ok(Outcome::Copied) => counts.copied += 1,
                Ok(Outcome::AlreadyThere) => counts.already_there += 1,
                Ok(Outcome::Kept) => {
                    counts.kept += 1;
                    kept.push(shop);
                }
                Ok(Outcome::Skipped) => counts.skipped += 1,
                Err(error) => {
                    counts.failed += 1;
                    failures.push(Failure { shop, error });
                }
            }
        }
        pages += 1;
        progress(&Progress {
            pages,
            counts: &counts,
            failures: &failures[first_failure..],
            kept: &kept[first_kept..],
            resume_from: page.next.as_ref(),
        });
        match page.next {
            None => break Ending::Complete,
            Some(next) if migration.max_pages.is_some_and(|max| pages >= max.get()) => {
                break Ending::Paused { resume_from: next };
            }
            Some(next) => after = Some(next),
        }
    };
    Report {
        counts,
        failures,
        kept,
        ending,
    }
}

/// One shop: the source's document saved to the target unless the target
/// has it already (or another one, without `overwrite`). Both copies are
/// wiped when dropped.
async fn copy<S, T>(
    source: &S,
    target: &T,
    shop: &ShopRef,
    migration: &Migration,
) -> Result<Outcome, StoreError>
where
    S: InstallationStore,
    T: InstallationStore,
{
    let Some(document) = source.load_document(shop).await?.map(Zeroizing::new) else {
        return Ok(Outcome::Skipped);
    };
    match target.load_document(shop).await?.map(Zeroizing::new) {
        Some(present) if present == document => return Ok(Outcome::AlreadyThere),
        Some(_) if !migration.overwrite => return Ok(Outcome::Kept),
        _ => {}
    }
    if !migration.dry_run {
        // The store takes its own copy; ours is wiped here.
        target.save_document(shop, String::clone(&document)).await?;
    }
    Ok(Outcome::Copied)
}

/// A source whose shops the registry records as uninstalled read as gone.
/// Once a stack has switched stores, an uninstall schedules the deletion
/// in the new store, where the shop's document is not yet: its old copy
/// must not be brought over, to sit there with no deletion scheduled.
pub struct SkipUninstalled<'a, S, R> {
    pub source: &'a S,
    pub registry: &'a R,
}

impl<S: InstallationStore, R: InstallationRegistry> InstallationStore
    for SkipUninstalled<'_, S, R>
{
    async fn save_document(&self, shop: &ShopRef, json: String) -> Result<SaveOutcome, StoreError> {
        self.source.save_document(shop, json).await
    }

    async fn load_document(&self, shop: &ShopRef) -> Result<Option<String>, StoreError> {
        let registration = self.registry.registration(shop).await?;
        if registration.is_some_and(|r| r.status == InstallationStatus::Uninstalled) {
            return Ok(None);
        }
        self.source.load_document(shop).await
    }

    async fn schedule_deletion(
        &self,
        shop: &ShopRef,
        recovery: RecoveryWindow,
    ) -> Result<(), StoreError> {
        self.source.schedule_deletion(shop, recovery).await
    }

    async fn save_signature_key(
        &self,
        eshop_id: ShoptetEshopId,
        key: &EshopSignatureKey,
    ) -> Result<(), StoreError> {
        self.source.save_signature_key(eshop_id, key).await
    }

    /// Gone with the shop's document, for the same reason.
    async fn load_signature_key(
        &self,
        eshop_id: ShoptetEshopId,
    ) -> Result<Option<EshopSignatureKey>, StoreError> {
        let shop = ShopRef::Shoptet(eshop_id);
        let registration = self.registry.registration(&shop).await?;
        if registration.is_some_and(|r| r.status == InstallationStatus::Uninstalled) {
            return Ok(None);
        }
        self.source.load_signature_key(eshop_id).await
    }
}

impl<S: InstallationInventory, R: Sync> InstallationInventory for SkipUninstalled<'_, S, R> {
    async fn list_installations(
        &self,
        query: &InventoryQuery,
    ) -> Result<InventoryPage, StoreError> {
        self.source.list_installations(query).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use broker_domain::storage::RecoveryWindow;
    use broker_domain::storage::memory::MemoryInstallationStore;

    fn shoptet(id: u64) -> ShopRef {
        ShopRef::Shoptet(broker_domain::ids::ShoptetEshopId::new(id).unwrap())
    }

    async fn store_with(shops: &[(ShopRef, &str)]) -> MemoryInstallationStore {
        let store = MemoryInstallationStore::default();
        for (shop, document) in shops {
            store
                .save_document(shop, (*document).to_owned())
                .await
                .unwrap();
        }
        store
    }

    fn pages_of(size: usize) -> Migration {
        Migration {
            page_size: NonZeroUsize::new(size).unwrap(),
            ..Migration::default()
        }
    }

    #[tokio::test]
    async fn every_shop_is_copied_once_and_a_second_run_copies_nothing() {
        let shops: Vec<(ShopRef, &str)> = (1..=5).map(|id| (shoptet(id), r#"{"doc":1}"#)).collect();
        let source = store_with(&shops).await;
        let target = MemoryInstallationStore::default();
        let mut pages = Vec::new();

        let first = migrate(&source, &target, &pages_of(2), |p| pages.push(*p.counts)).await;

        assert_eq!(first.ending, Ending::Complete);
        assert!(first.succeeded());
        assert_eq!(
            first.counts,
            Counts {
                listed: 5,
                copied: 5,
                ..Counts::default()
            }
        );
        assert_eq!(pages.len(), 3, "pages of two: {pages:?}");
        for (shop, document) in &shops {
            assert_eq!(
                target.load_document(shop).await.unwrap().as_deref(),
                Some(*document)
            );
        }
        let second = migrate(&source, &target, &pages_of(2), |_| {}).await;
        assert_eq!(
            second.counts,
            Counts {
                listed: 5,
                already_there: 5,
                ..Counts::default()
            }
        );
    }

    #[tokio::test]
    async fn another_document_in_the_target_is_kept_and_named() {
        let source = store_with(&[(shoptet(1), "source"), (shoptet(2), "two")]).await;
        let target = store_with(&[(shoptet(1), "target")]).await;
        let mut named = Vec::new();
        let report = migrate(&source, &target, &Migration::default(), |p| {
            named.extend(p.kept.iter().cloned())
        })
        .await;
        assert_eq!((report.counts.copied, report.counts.kept), (1, 1));
        assert_eq!(report.kept, [shoptet(1)]);
        assert_eq!(named, [shoptet(1)]);
        assert!(report.succeeded());
        assert_eq!(
            target.load_document(&shoptet(1)).await.unwrap().as_deref(),
            Some("target")
        );
    }

    #[tokio::test]
    async fn with_overwrite_another_document_in_the_target_is_replaced() {
        let source = store_with(&[(shoptet(1), "source")]).await;
        let target = store_with(&[(shoptet(1), "target")]).await;
        let overwrite = Migration {
            overwrite: true,
            ..Migration::default()
        };
        let report = migrate(&source, &target, &overwrite, |_| {}).await;
        assert_eq!((report.counts.copied, report.counts.kept), (1, 0));
        assert_eq!(
            target.load_document(&shoptet(1)).await.unwrap().as_deref(),
            Some("source")
        );
    }

    #[tokio::test]
    async fn a_dry_run_counts_what_it_would_copy_and_writes_nothing() {
        let source = store_with(&[(shoptet(1), "a"), (shoptet(2), "b")]).await;
        let target = store_with(&[(shoptet(2), "b")]).await;
        let dry_run = Migration {
            dry_run: true,
            ..Migration::default()
        };
        let report = migrate(&source, &target, &dry_run, |_| {}).await;
        assert_eq!((report.counts.copied, report.counts.already_there), (1, 1));
        assert_eq!(target.load_document(&shoptet(1)).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_paused_run_resumes_from_its_cursor_and_finishes() {
        let shops: Vec<(ShopRef, &str)> = (1..=5).map(|id| (shoptet(id), "doc")).collect();
        let source = store_with(&shops).await;
        let target = MemoryInstallationStore::default();
        let one_page = Migration {
            max_pages: NonZeroUsize::new(1),
            ..pages_of(2)
        };
        let first = migrate(&source, &target, &one_page, |_| {}).await;
        let Ending::Paused { resume_from } = first.ending else {
            panic!("one page of two did not pause: {first:?}");
        };
        assert_eq!(first.counts.copied, 2);

        let rest = Migration {
            resume_from: Some(resume_from),
            ..pages_of(2)
        };
        let second = migrate(&source, &target, &rest, |_| {}).await;
        assert_eq!(second.ending, Ending::Complete);
        assert_eq!(
            second.counts.copied, 3,
            "the first two are not listed again"
        );
        assert_eq!(
            target
                .list_installations(&InventoryQuery {
                    limit: NonZeroUsize::new(10).unwrap(),
                    after: None
                })
                .await
                .unwrap()
                .shops
                .len(),
            5
        );
    }

    /// A target that refuses one shop.
    struct RefusingTarget {
        inner: MemoryInstallationStore,
        refused: ShopRef,
    }

    impl InstallationStore for RefusingTarget {
        async fn save_document(
            &self,
            shop: &ShopRef,
            json: String,
        ) -> Result<broker_domain::storage::SaveOutcome, StoreError> {
            if *shop == self.refused {
                return Err(StoreError::Unavailable("ThrottlingException".into()));
            }
            self.inner.save_document(shop, json).await
        }

        async fn load_document(&self, shop: &ShopRef) -> Result<Option<String>, StoreError> {
            self.inner.load_document(shop).await
        }

        async fn schedule_deletion(
            &self,
            shop: &ShopRef,
            recovery: RecoveryWindow,
        ) -> Result<(), StoreError> {
            self.inner.schedule_deletion(shop, recovery).await
        }

        async fn save_signature_key(
            &self,
            eshop_id: ShoptetEshopId,
            key: &EshopSignatureKey,
        ) -> Result<(), StoreError> {
            if self.refused == ShopRef::Shoptet(eshop_id) {
                return Err(StoreError::Unavailable("ThrottlingException".into()));
            }
            self.inner.save_signature_key(eshop_id, key).await
        }

        async fn load_signature_key(
            &self,
            eshop_id: ShoptetEshopId,
        ) -> Result<Option<EshopSignatureKey>, StoreError> {
            self.inner.load_signature_key(eshop_id).await
        }
    }

    #[tokio::test]
    async fn a_failing_shop_is_named_and_the_others_are_still_copied() {
        let shops: Vec<(ShopRef, &str)> = (1..=3).map(|id| (shoptet(id), "doc")).collect();
        let source = store_with(&shops).await;
        let target = RefusingTarget {
            inner: MemoryInstallationStore::default(),
            refused: shoptet(2),
        };
        let mut failures_reported = Vec::new();
        let report = migrate(&source, &target, &pages_of(1), |p| {
            failures_reported.extend(p.failures.iter().cloned())
        })
        .await;
        let failure = Failure {
            shop: shoptet(2),
            error: StoreError::Unavailable("ThrottlingException".into()),
        };
        assert_eq!(failures_reported, report.failures);
        assert_eq!(report.failures, [failure]);
        assert_eq!((report.counts.copied, report.counts.failed), (2, 1));
        assert_eq!(report.ending, Ending::Complete);
        assert!(!report.succeeded());
    }

    #[tokio::test]
    async fn a_bad_cursor_stops_the_run_before_anything_is_copied() {
        let source = store_with(&[(shoptet(1), "doc")]).await;
        let target = MemoryInstallationStore::default();
        let resumed = Migration {
            resume_from: Some(InventoryCursor::new("not a cursor")),
            ..Migration::default()
        };
        let report = migrate(&source, &target, &resumed, |_| {}).await;
        assert!(
            matches!(
                &report.ending,
                Ending::ListingFailed {
                    error: StoreError::ForeignCursor(_),
                    ..
                }
            ),
            "{report:?}"
        );
        assert_eq!(report.counts, Counts::default());
        assert!(!report.succeeded());
    }

    #[tokio::test]
    async fn a_shop_the_registry_records_uninstalled_is_skipped_and_the_others_copied() {
        use broker_domain::model::{InstallationStatus, Origin, StatusChange};
        use broker_domain::storage::memory::MemoryRegistry;
        let source = store_with(&[(shoptet(1), "live"), (shoptet(2), "gone")]).await;
        let registry = MemoryRegistry::default();
        let now = std::time::SystemTime::now();
        registry
            .record(&shoptet(1), &StatusChange::installed(now, Origin::Import))
            .await
            .unwrap();
        registry
            .record(
                &shoptet(2),
                &StatusChange::to(InstallationStatus::Uninstalled, now, Origin::Operator),
            )
            .await
            .unwrap();
        let target = MemoryInstallationStore::default();
        let filtered = SkipUninstalled {
            source: &source,
            registry: &registry,
        };

        let report = migrate(&filtered, &target, &Migration::default(), |_| {}).await;

        assert_eq!(
            report.counts,
            Counts {
                listed: 2,
                copied: 1,
                skipped: 1,
                ..Counts::default()
            }
        );
        assert_eq!(
            target.load_document(&shoptet(1)).await.unwrap().as_deref(),
            Some("live")
        );
        assert_eq!(target.load_document(&shoptet(2)).await.unwrap(), None);
    }
}
