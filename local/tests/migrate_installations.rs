//! The `migrate-installations` command against the emulator: the real
//! binary copies a fleet of both platforms between Secrets Manager and the
//! DynamoDB installation store, a second run copies nothing, a run stopped
//! part way goes on from the cursor it printed, and nothing it prints holds
//! an OAuth token or a client secret.

use std::process::{Command, Output};

use broker_aws::storage::aws_installations::AwsInstallationStore;
use broker_aws::storage::dynamodb_registry::DynamoRegistry;
use broker_aws::storage::{InstallationBackend, SecretNames};
use broker_domain::ids::{ShopRef, ShoprenterShopName, ShoptetEshopId};
use broker_domain::model::{
    Origin, ShoprenterCredentials, ShoptetInstallation, ShoptetInstallationRecord,
};
use broker_domain::secret::{ClientSecret, OAuthAccessToken};
use broker_domain::storage::{InstallationRegistry, InstallationStore};
use test_support::{
    LeakScanner, create_installation_table, create_kms_key, create_registry_table,
    emulator_sdk_config, unique_name,
};

/// Both stores of one test, empty: a secret prefix and a table and key of
/// their own.
struct Stores {
    aws: aws_config::SdkConfig,
    prefix: String,
    table: String,
    key_id: String,
    registry_table: String,
}

impl Stores {
    async fn new() -> Self {
        let aws = emulator_sdk_config().await;
        let table = unique_name("migrate");
        let registry_table = unique_name("migrate-registry");
        let ((), key_id, ()) = tokio::join!(
            create_installation_table(&aws, &table),
            create_kms_key(&aws),
            create_registry_table(&aws, &registry_table)
        );
        Self {
            aws,
            prefix: format!("{}/", unique_name("migrate")),
            table,
            key_id,
            registry_table,
        }
    }

    fn secrets_manager(&self) -> AwsInstallationStore {
        InstallationBackend::SecretsManager {
            secrets: SecretNames::new(&self.prefix).unwrap(),
        }
        .open(&self.aws)
    }

    fn registry(&self) -> DynamoRegistry {
        DynamoRegistry::new(
            aws_sdk_dynamodb::Client::new(&self.aws),
            self.registry_table.clone(),
        )
    }

    fn dynamodb(&self) -> AwsInstallationStore {
        InstallationBackend::DynamoDb {
            table: self.table.clone(),
            key_id: self.key_id.clone(),
        }
        .open(&self.aws)
    }

    /// The command, run to its end with the variables the functions read.
    fn migrate(&self, args: &[&str]) -> Run {
        let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
        // `emulator_sdk_config` refused anything but loopback already.
        test_support::check_loopback_endpoint(&endpoint).expect("the emulator is on loopback");
        let output = Command::new(env!("CARGO_BIN_EXE_migrate-installations"))
            .args(args)
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("SECRET_PREFIX", &self.prefix)
            .env("INSTALLATION_TABLE", &self.table)
            .env("INSTALLATION_KEY_ID", &self.key_id)
            .env("REGISTRY_TABLE", &self.registry_table)
            .env_remove("INSTALLATION_STORE")
            .output()
            .expect("the binary runs");
        Run::from(output)
    }
}

struct Run {
    succeeded: bool,
    stdout: String,
    stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Self {
            succeeded: output.status.success(),
            stdout: String::from_utf8(output.stdout).expect("UTF-8 output"),
            stderr: String::from_utf8(output.stderr).expect("UTF-8 output"),
        }
    }
}

impl Run {
    /// The totals of the run's last line but the hints (`done:`, `paused:`).
    fn summary(&self) -> &str {
        self.stdout
            .lines()
            .find(|line| line.starts_with("done: ") || line.starts_with("paused: "))
            .unwrap_or_else(|| panic!("no summary in:\n{}\n{}", self.stdout, self.stderr))
    }

    /// The cursor the run said to resume from.
    fn resume_from(&self) -> String {
        let line = self
            .stdout
            .lines()
            .find_map(|line| line.strip_prefix("  to finish: the same command with --resume-from "))
            .unwrap_or_else(|| panic!("no cursor in:\n{}", self.stdout));
        line.trim_matches('\'').to_owned()
    }

    fn pages(&self) -> usize {
        self.stdout
            .lines()
            .filter(|line| line.starts_with("page "))
            .count()
    }
}

/// Three Shoptet e-shops and two Shoprenter shops with realistic secrets
/// (none quoting its shop's name, which the output does show).
struct Fleet {
    shoptet: Vec<ShoptetInstallationRecord>,
    shoprenter: Vec<(ShoprenterShopName, ShoprenterCredentials)>,
}

impl Fleet {
    fn new() -> Self {
        let shoptet = [222651_u64, 7, 31337]
            .into_iter()
            .map(|id| ShoptetInstallationRecord {
                installation: ShoptetInstallation {
                    oauth_access_token: OAuthAccessToken::new(format!(
                        "oauth-q8x3mz0v7lk2pa9w4neu{}",
                        id % 97
                    )),
                    eshop_id: ShoptetEshopId::new(id).unwrap(),
                    eshop_url: format!("https://{id}.myshoptet.com/"),
                    contact_email: Some("owner@example.com".into()),
                    trial: Some(false),
                },
                installed_at: "2026-01-01T00:00:00Z".into(),
            })
            .collect();
        let shoprenter = ["demo-shop", "other-shop"]
            .into_iter()
            .map(|name| {
                (
                    name.parse().unwrap(),
                    ShoprenterCredentials {
                        client_id: format!("{name}-client"),
                        client_secret: ClientSecret::new(format!(
                            "cs-h4r8t6y2u0x1{}",
                            name.len() * 7
                        )),
                    },
                )
            })
            .collect();
        Self {
            shoptet,
            shoprenter,
        }
    }

    async fn install_into(&self, store: &impl InstallationStore) {
        for record in &self.shoptet {
            store.save_shoptet_installation(record).await.unwrap();
        }
        for (shop, credentials) in &self.shoprenter {
            store
                .save_shoprenter_credentials(shop, credentials)
                .await
                .unwrap();
        }
    }

    /// Every shop loads from `store` as it was installed.
    async fn assert_in(&self, store: &impl InstallationStore) {
        for record in &self.shoptet {
            assert_eq!(
                store
                    .load_shoptet_installation(record.installation.eshop_id)
                    .await
                    .unwrap()
                    .as_ref(),
                Some(record)
            );
        }
        for (shop, credentials) in &self.shoprenter {
            assert_eq!(
                store
                    .load_shoprenter_credentials(shop)
                    .await
                    .unwrap()
                    .as_ref(),
                Some(credentials)
            );
        }
    }

    /// Every secret of the fleet: the OAuth tokens and the client secrets.
    fn scanner(&self) -> LeakScanner {
        use broker_domain::secret::ExposeSecret;
        let tokens = self
            .shoptet
            .iter()
            .map(|record| record.installation.oauth_access_token.expose_secret());
        let client_secrets = self
            .shoprenter
            .iter()
            .map(|(_, credentials)| credentials.client_secret.expose_secret());
        LeakScanner::new(tokens.chain(client_secrets))
    }

    fn assert_never_printed(&self, run: &Run) {
        let scanner = self.scanner();
        scanner.assert_absent("the command's output", &run.stdout);
        scanner.assert_absent("the command's errors", &run.stderr);
    }
}

const TO_DYNAMODB: [&str; 4] = ["--from", "secrets-manager", "--to", "dynamodb"];
const TO_SECRETS_MANAGER: [&str; 4] = ["--from", "dynamodb", "--to", "secrets-manager"];

fn with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    [base, extra].concat()
}

#[tokio::test]
async fn secrets_manager_to_dynamodb_copies_every_shop_and_a_second_run_copies_none() {
    let stores = Stores::new().await;
    let fleet = Fleet::new();
    fleet.install_into(&stores.secrets_manager()).await;

    let first = stores.migrate(&with(&TO_DYNAMODB, &["--page-size", "2"]));
    assert!(first.succeeded, "{}\n{}", first.stdout, first.stderr);
    assert_eq!(
        first.summary(),
        "done: 5 listed, 5 copied, 0 already there, 0 kept (the target's differs), 0 skipped (uninstalled or gone from the source), 0 failed"
    );
    assert_eq!(first.pages(), 3, "pages of two:\n{}", first.stdout);
    fleet.assert_in(&stores.dynamodb()).await;

    let second = stores.migrate(&TO_DYNAMODB);
    assert!(second.succeeded, "{}\n{}", second.stdout, second.stderr);
    assert_eq!(
        second.summary(),
        "done: 5 listed, 0 copied, 5 already there, 0 kept (the target's differs), 0 skipped (uninstalled or gone from the source), 0 failed"
    );
    fleet.assert_in(&stores.dynamodb()).await;
    fleet.assert_never_printed(&first);
    fleet.assert_never_printed(&second);
}

#[tokio::test]
async fn a_run_stopped_after_one_page_goes_on_from_the_cursor_it_printed() {
    let stores = Stores::new().await;
    let fleet = Fleet::new();
    fleet.install_into(&stores.secrets_manager()).await;

    let first = stores.migrate(&with(
        &TO_DYNAMODB,
        &["--page-size", "2", "--max-pages", "1"],
    ));
    assert!(first.succeeded, "{}\n{}", first.stdout, first.stderr);
    assert_eq!(
        first.summary(),
        "paused: 2 listed, 2 copied, 0 already there, 0 kept (the target's differs), 0 skipped (uninstalled or gone from the source), 0 failed"
    );
    let cursor = first.resume_from();

    let rest = stores.migrate(&with(
        &TO_DYNAMODB,
        &["--page-size", "2", "--resume-from", &cursor],
    ));
    assert!(rest.succeeded, "{}\n{}", rest.stdout, rest.stderr);
    assert_eq!(
        rest.summary(),
        "done: 3 listed, 3 copied, 0 already there, 0 kept (the target's differs), 0 skipped (uninstalled or gone from the source), 0 failed"
    );
    fleet.assert_in(&stores.dynamodb()).await;
    fleet.assert_never_printed(&first);
    fleet.assert_never_printed(&rest);
}

#[tokio::test]
async fn dynamodb_to_secrets_manager_copies_every_shop() {
    let stores = Stores::new().await;
    let fleet = Fleet::new();
    fleet.install_into(&stores.dynamodb()).await;
    // An uninstalled shop stays behind.
    let uninstalled = ShopRef::Shoptet(ShoptetEshopId::new(404).unwrap());
    stores
        .dynamodb()
        .save_document(&uninstalled, r#"{"gone":"soon-gone-document"}"#.into())
        .await
        .unwrap();
    stores
        .dynamodb()
        .schedule_deletion(&uninstalled, Default::default())
        .await
        .unwrap();

    let run = stores.migrate(&TO_SECRETS_MANAGER);
    assert!(run.succeeded, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        run.summary(),
        "done: 5 listed, 5 copied, 0 already there, 0 kept (the target's differs), 0 skipped (uninstalled or gone from the source), 0 failed"
    );
    fleet.assert_in(&stores.secrets_manager()).await;
    assert_eq!(
        stores.secrets_manager().load_document(&uninstalled).await,
        Ok(None)
    );
    fleet.assert_never_printed(&run);
}

#[tokio::test]
async fn a_dry_run_counts_the_shops_to_copy_and_writes_none() {
    let stores = Stores::new().await;
    let fleet = Fleet::new();
    fleet.install_into(&stores.secrets_manager()).await;

    let run = stores.migrate(&with(&TO_DYNAMODB, &["--dry-run"]));
    assert!(run.succeeded, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        run.summary(),
        "done: 5 listed, 5 to copy, 0 already there, 0 kept (the target's differs), 0 skipped (uninstalled or gone from the source), 0 failed"
    );
    let shop = ShopRef::Shoptet(ShoptetEshopId::new(222651).unwrap());
    assert_eq!(stores.dynamodb().load_document(&shop).await, Ok(None));
    fleet.assert_never_printed(&run);
}

/// A shop reinstalled after the switch: the target's newer document stays
/// unless the run is told to overwrite it.
#[tokio::test]
async fn a_document_the_target_holds_already_is_kept_unless_overwritten() {
    let stores = Stores::new().await;
    let fleet = Fleet::new();
    fleet.install_into(&stores.secrets_manager()).await;
    let mut reinstalled = fleet.shoptet[0].clone();
    reinstalled.installation.oauth_access_token =
        OAuthAccessToken::new("oauth-after-the-switch-p3k9w2m7");
    stores
        .dynamodb()
        .save_shoptet_installation(&reinstalled)
        .await
        .unwrap();
    let eshop_id = reinstalled.installation.eshop_id;

    let run = stores.migrate(&TO_DYNAMODB);
    assert!(run.succeeded, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        run.summary(),
        "done: 5 listed, 4 copied, 0 already there, 1 kept (the target's differs), 0 skipped (uninstalled or gone from the source), 0 failed"
    );
    assert!(
        run.stdout.contains(&format!(
            "  kept shoptet#{eshop_id}: the target holds another document"
        )),
        "{}",
        run.stdout
    );
    assert_eq!(
        stores.dynamodb().load_shoptet_installation(eshop_id).await,
        Ok(Some(reinstalled))
    );

    let overwritten = stores.migrate(&with(&TO_DYNAMODB, &["--overwrite"]));
    assert!(overwritten.succeeded, "{}", overwritten.stdout);
    assert_eq!(
        overwritten.summary(),
        "done: 5 listed, 1 copied, 4 already there, 0 kept (the target's differs), 0 skipped (uninstalled or gone from the source), 0 failed"
    );
    fleet.assert_in(&stores.dynamodb()).await;
    let mut scanner = fleet.scanner();
    scanner.add("oauth-after-the-switch-p3k9w2m7");
    for output in [
        &run.stdout,
        &run.stderr,
        &overwritten.stdout,
        &overwritten.stderr,
    ] {
        scanner.assert_absent("the command's output", output);
    }
}

/// A KMS key the target cannot use: every shop fails, each is named, the
/// run goes through them all and exits non-zero.
#[tokio::test]
async fn shops_that_fail_are_named_and_the_exit_status_says_so() {
    let stores = Stores::new().await;
    let fleet = Fleet::new();
    fleet.install_into(&stores.secrets_manager()).await;
    let broken = Stores {
        key_id: "alias/no-such-key".into(),
        ..stores
    };

    let run = broken.migrate(&TO_DYNAMODB);
    assert!(!run.succeeded, "{}", run.stdout);
    assert_eq!(
        run.summary(),
        "done: 5 listed, 0 copied, 0 already there, 0 kept (the target's differs), 0 skipped (uninstalled or gone from the source), 5 failed"
    );
    for key in ["shoptet#222651", "shoprenter#demo-shop"] {
        assert!(
            run.stdout.contains(&format!("  failed {key}: ")),
            "{key} not named:\n{}",
            run.stdout
        );
    }
    fleet.assert_never_printed(&run);
}

#[tokio::test]
async fn a_shop_uninstalled_after_the_switch_is_not_brought_over() {
    use broker_domain::model::{InstallationStatus, StatusChange};
    let stores = Stores::new().await;
    let fleet = Fleet::new();
    fleet.install_into(&stores.secrets_manager()).await;
    // The stack runs on the table now: the uninstall was recorded, and its
    // deletion scheduled in the table, where the shop was not yet.
    let uninstalled = ShopRef::Shoptet(fleet.shoptet[0].installation.eshop_id);
    stores
        .registry()
        .record(
            &uninstalled,
            &StatusChange::to(
                InstallationStatus::Uninstalled,
                std::time::SystemTime::now(),
                Origin::Operator,
            ),
        )
        .await
        .unwrap();

    let run = stores.migrate(&TO_DYNAMODB);

    assert!(run.succeeded, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        run.summary(),
        "done: 5 listed, 4 copied, 0 already there, 0 kept (the target's differs), 1 skipped (uninstalled or gone from the source), 0 failed"
    );
    assert_eq!(
        stores.dynamodb().load_document(&uninstalled).await.unwrap(),
        None
    );
    fleet.assert_never_printed(&run);
}

#[test]
fn a_missing_variable_is_named() {
    let output = Command::new(env!("CARGO_BIN_EXE_migrate-installations"))
        .args(TO_DYNAMODB)
        .env_remove("INSTALLATION_TABLE")
        .env("INSTALLATION_KEY_ID", "alias/any")
        .output()
        .expect("the binary runs");
    let run = Run::from(output);
    assert!(!run.succeeded);
    assert!(
        run.stderr
            .contains("INSTALLATION_TABLE: is required but not set"),
        "{}",
        run.stderr
    );
}

#[test]
fn help_names_the_options() {
    let output = Command::new(env!("CARGO_BIN_EXE_migrate-installations"))
        .arg("--help")
        .output()
        .expect("the binary runs");
    let run = Run::from(output);
    assert!(run.succeeded);
    for option in [
        "--from",
        "--to",
        "--dry-run",
        "--resume-from",
        "--max-pages",
    ] {
        assert!(
            run.stdout.contains(option),
            "{option} missing:\n{}",
            run.stdout
        );
    }
}
