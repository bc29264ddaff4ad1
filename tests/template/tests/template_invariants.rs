//! Invariants of template.yaml that a deploy would not catch until too late:
//! least privilege, which routes are public, the tables' keys, index and TTL,
//! that the functions get exactly the environment their code reads, that the
//! vendor's Timeout covers the lease wait its code derives, that every
//! failure an operator must act on has an alarm on the alarm topic, that
//! the installation store's KMS key exists, and may be used, only with
//! `InstallationStore=DynamoDB`, and that the token cache's KMS key exists
//! with either store and only the two functions use it, under the token
//! cache's encryption context, and that the lifecycle events (the registry's
//! stream, the publisher, its mappings, the bus and the optional webhook)
//! keep per-shop order, lose nothing silently and grant only what they use,
//! and that the Shoptet e-shop webhooks (the public route, the worker, its
//! queue, rule and schedule) are off by default, register exactly for
//! installed and imported Shoptet installations and grant only what they
//! use.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use std::time::Duration;

use broker_aws::config::installation_backend;
use broker_aws::storage::InstallationBackend;
use broker_aws::storage::dynamodb::{PARTITION_KEY, TOKEN_KEY_CONTEXT, TTL_ATTRIBUTE};
use broker_aws::storage::dynamodb_registry::{
    PARTITION_KEY as REGISTRY_PARTITION_KEY, PLATFORM as REGISTRY_PLATFORM, PLATFORM_INDEX,
};
use broker_domain::ids::Platform;
use broker_domain::storage::RecoveryWindow;
use broker_runtime::metrics::{DEFAULT_NAMESPACE, EMF_LOG_LEVEL, Metric, Service};
use broker_vending::VendTiming;
use serde_json::{Value, json};
use template_tests::{
    as_list, get_att, load_template, policy_statements, reference, resources_of_type,
    with_condition,
};

const INSTALL_FUNCTION: &str = "InstallCallbackFunction";
const VENDOR_FUNCTION: &str = "TokenVendorFunction";
const HTTP_API: &str = "BrokerHttpApi";
const TABLE: &str = "TokenTable";
const REGISTRY: &str = "RegistryTable";
const INSTALL_ROLE: &str = "InstallCallbackRole";
const VENDOR_ROLE: &str = "TokenVendorRole";
const INSTALLATION_TABLE: &str = "InstallationTable";
const INSTALLATION_KEY: &str = "InstallationKey";
const TOKEN_KEY: &str = "TokenKey";
const PUBLISHER_FUNCTION: &str = "EventPublisherFunction";
const PUBLISHER_ROLE: &str = "EventPublisherRole";
const EVENT_BUS: &str = "EventBus";
const STREAM_MAPPING: &str = "RegistryStreamMapping";
const EVENTS_DLQ: &str = "EventsDeadLetterQueue";
const WEBHOOK_QUEUE: &str = "WebhookQueue";
const WEBHOOK_DLQ: &str = "WebhookDeadLetterQueue";
const WEBHOOK_QUEUE_POLICY: &str = "WebhookQueuePolicy";
const WEBHOOK_RULE: &str = "WebhookRule";
const WEBHOOK_MAPPING: &str = "WebhookMapping";
const WEBHOOK_SECRET: &str = "EventWebhookSecret";
/// The Shoptet e-shop webhook worker (issue 23).
const WORKER_FUNCTION: &str = "ShoptetWebhooksFunction";
const WORKER_ROLE: &str = "ShoptetWebhooksRole";
const REGISTRATION_QUEUE: &str = "WebhookRegistrationQueue";
const REGISTRATION_DLQ: &str = "WebhookRegistrationDeadLetterQueue";
const REGISTRATION_QUEUE_POLICY: &str = "WebhookRegistrationQueuePolicy";
const REGISTRATION_RULE: &str = "WebhookRegistrationRule";
const REGISTRATION_MAPPING: &str = "WebhookRegistrationMapping";
/// Holds when `ShoptetWebhookEvents` is set.
const FORWARDS_ESHOP_WEBHOOKS: &str = "ForwardsEshopWebhooks";
/// Holds when `ShoptetEshopWebhookUrl` is set.
const HAS_CUSTOM_ESHOP_URL: &str = "HasCustomEshopWebhookUrl";
/// The registration queue's resource policy, checked on its own like the
/// webhook queue's.
const REGISTRATION_QUEUE_POLICY_DOCUMENT: &str =
    "/Resources/WebhookRegistrationQueuePolicy/Properties/PolicyDocument";
/// Holds when `EventBusName` is empty: the stack creates its bus.
const CREATES_BUS: &str = "CreatesEventBus";
/// Holds when `EventWebhookUrl` is set.
const HAS_WEBHOOK: &str = "HasEventWebhook";
/// The webhook queue's resource policy, checked on its own: EventBridge,
/// not Lambda, is its principal.
const WEBHOOK_QUEUE_POLICY_DOCUMENT: &str =
    "/Resources/WebhookQueuePolicy/Properties/PolicyDocument";
/// Holds when the `InstallationStore` parameter is `DynamoDB`.
const DYNAMODB_STORE: &str = "UseDynamoDBInstallations";
/// The key policies, checked on their own: a key policy's `Resource` is
/// always `*` (the key itself).
const KEY_POLICY: &str = "/Resources/InstallationKey/Properties/KeyPolicy";
const TOKEN_KEY_POLICY: &str = "/Resources/TokenKey/Properties/KeyPolicy";

fn is_key_policy(document: &str) -> bool {
    document == KEY_POLICY || document == TOKEN_KEY_POLICY
}

/// The values of the `InstallationStore` parameter: where installations and
/// per-shop credentials live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Store {
    SecretsManager,
    DynamoDb,
}

impl Store {
    const ALL: [Store; 2] = [Store::SecretsManager, Store::DynamoDb];

    /// The parameter's value.
    fn parameter(self) -> &'static str {
        match self {
            Store::SecretsManager => "SecretsManager",
            Store::DynamoDb => "DynamoDB",
        }
    }

    /// What `shared/aws/src/config.rs` `installation_backend` reads for it.
    fn env(self) -> &'static [&'static str] {
        match self {
            Store::SecretsManager => &["INSTALLATION_STORE", "SECRET_PREFIX"],
            Store::DynamoDb => &[
                "INSTALLATION_STORE",
                "INSTALLATION_TABLE",
                "INSTALLATION_KEY_ID",
            ],
        }
    }

    /// The template as deployed with this store.
    fn template(self, template: &Value) -> Value {
        with_condition(template, DYNAMODB_STORE, self == Store::DynamoDb)
    }
}

/// What functions/install-callback/src/config.rs (`AwsInstallConfig::from_env`,
/// with shared/platforms/src/config.rs `http_settings`) reads, besides its
/// installation store's variables ([`Store::env`]). The test
/// `config_loaders_accept_the_template_and_read_exactly_the_expected_variables`
/// keeps this list honest against the code.
const INSTALL_ENV: &[&str] = &[
    "SHOPTET_OAUTH_URL",
    "SHOPTET_API_URL",
    "SHOPTET_CLIENT_ID",
    "SHOPTET_CLIENT_SECRET_ID",
    "SHOPTET_REDIRECT_URI",
    "SHOPTET_INSTALL_SOURCE_CIDRS",
    "SHOPTET_WEBHOOK_KEY_SECRET_ID",
    "SHOPRENTER_OAUTH_URL",
    "SHOPRENTER_CLIENT_ID",
    "SHOPRENTER_CLIENT_SECRET_ID",
    "SHOPRENTER_HMAC_MAX_AGE_SECONDS",
    "SHOPRENTER_APP_ENTRY_URL",
    "TOKEN_TABLE",
    "TOKEN_KEY_ID",
    "REGISTRY_TABLE",
    "UNINSTALL_RECOVERY_DAYS",
    "REFRESH_MARGIN_SECONDS",
    "LEASE_SECONDS",
    "LEASE_WAIT_MS",
    "SUSPENDED_RECHECK_SECONDS",
    "UPSTREAM_TIMEOUT_MS",
    "UPSTREAM_CONNECT_TIMEOUT_MS",
    "INSTALL_DEADLINE_MS",
    "METRICS_NAMESPACE",
    // POST /shoptet/eshop-webhook forwards to it (issue 23).
    "EVENT_BUS_NAME",
];

/// What the token vendor's config module (functions/token-vendor) reads,
/// with shared/platforms/src/config.rs `http_settings`, besides its installation
/// store's variables ([`Store::env`]).
const VENDOR_ENV: &[&str] = &[
    "TOKEN_TABLE",
    "TOKEN_KEY_ID",
    "REGISTRY_TABLE",
    "SHOPTET_OAUTH_URL",
    "SHOPTET_API_URL",
    "SHOPRENTER_OAUTH_URL",
    "SHOPRENTER_API_URL",
    "SHOPRENTER_CLIENT_ID",
    "SHOPRENTER_CLIENT_SECRET_ID",
    "REFRESH_MARGIN_SECONDS",
    "LEASE_SECONDS",
    "LEASE_WAIT_MS",
    "SUSPENDED_RECHECK_SECONDS",
    "UPSTREAM_TIMEOUT_MS",
    "UPSTREAM_CONNECT_TIMEOUT_MS",
    "METRICS_NAMESPACE",
];

/// What the template sets for functions/shoptet-webhooks
/// (`AwsWebhooksConfig::from_env`: the vendor's loader, then its own),
/// besides its installation store's variables ([`Store::env`]). The test
/// `the_workers_loader_accepts_the_template_with_and_without_events` runs
/// that loader on the template and keeps this list honest against it.
const WORKER_ENV: &[&str] = &[
    "TOKEN_TABLE",
    "TOKEN_KEY_ID",
    "REGISTRY_TABLE",
    "SHOPTET_OAUTH_URL",
    "SHOPTET_API_URL",
    "REFRESH_MARGIN_SECONDS",
    "LEASE_SECONDS",
    "LEASE_WAIT_MS",
    "SUSPENDED_RECHECK_SECONDS",
    "UPSTREAM_TIMEOUT_MS",
    "UPSTREAM_CONNECT_TIMEOUT_MS",
    "METRICS_NAMESPACE",
    "SHOPTET_WEBHOOK_EVENTS",
    "SHOPTET_WEBHOOK_PAYLOAD",
    "SHOPTET_WEBHOOK_URL",
    "EVENT_BUS_NAME",
    "WEBHOOK_QUEUE_URL",
];

/// What the worker's loader asks for that the template leaves unset:
/// Shoprenter's (the worker serves Shoptet only; the vendor's loader, which
/// it reuses, takes them as optional).
const WORKER_UNSET_ENV: &[&str] = &[
    "SHOPRENTER_OAUTH_URL",
    "SHOPRENTER_API_URL",
    "SHOPRENTER_CLIENT_ID",
    "SHOPRENTER_CLIENT_SECRET_ID",
];

/// Variables both functions read that must agree: they share the stores, the
/// platform endpoints and the refresh leases.
const SHARED_ENV: &[&str] = &[
    "TOKEN_TABLE",
    "TOKEN_KEY_ID",
    "REGISTRY_TABLE",
    "INSTALLATION_STORE",
    "SECRET_PREFIX",
    "INSTALLATION_TABLE",
    "INSTALLATION_KEY_ID",
    "SHOPTET_OAUTH_URL",
    "SHOPTET_API_URL",
    "SHOPRENTER_OAUTH_URL",
    "SHOPRENTER_CLIENT_ID",
    "SHOPRENTER_CLIENT_SECRET_ID",
    "REFRESH_MARGIN_SECONDS",
    "LEASE_SECONDS",
    "SUSPENDED_RECHECK_SECONDS",
    "UPSTREAM_TIMEOUT_MS",
    "UPSTREAM_CONNECT_TIMEOUT_MS",
    "METRICS_NAMESPACE",
];

/// Read by the configuration loaders but left unset by the template: the
/// code derives them (`LEASE_WAIT_MS` from `LEASE_SECONDS` and the upstream
/// timeout), so changing one parameter cannot leave them inconsistent.
const DERIVED_WHEN_UNSET: &[&str] = &["LEASE_WAIT_MS"];

/// The aggregate dimension every metric is published with (besides its
/// detailed set), and the one the alarms use.
const SERVICE_DIMENSION: &str = "Service";
const VENDOR_SERVICE: Service = Service::TokenVendor;
const INSTALL_SERVICE: Service = Service::InstallCallback;
/// The event publisher's `Service` dimension value (issue 22).
const PUBLISHER_SERVICE: Service = Service::EventPublisher;
/// The e-shop webhook worker's (issue 23).
const WORKER_SERVICE: Service = Service::ShoptetWebhooks;
const ALARM_TOPIC: &str = "AlarmTopic";

/// The only routes anyone may call without SigV4, (method, path, output
/// naming its URL): what the platforms call, each checked by the code itself
/// (a one-time code, a webhook signature, Shoprenter's HMAC).
const PUBLIC_ROUTES: &[(&str, &str, &str)] = &[
    ("GET", "/shoptet/install", "InstallCallbackUrl"),
    ("POST", "/shoptet/webhook", "ShoptetWebhookUrl"),
    // The output names the URL Shoptet is told (the route unless
    // `ShoptetEshopWebhookUrl` is set); the broker registers it itself.
    ("POST", "/shoptet/eshop-webhook", "ShoptetEshopWebhookUrl"),
    ("GET", "/shoprenter/install", "ShoprenterRedirectUrl"),
    ("GET", "/shoprenter/uninstall", "ShoprenterUninstallUrl"),
];

/// Every route of the API: (method, path, function).
const ROUTES: &[(&str, &str, &str)] = &[
    ("GET", "/shoptet/install", INSTALL_FUNCTION),
    ("POST", "/shoptet/webhook", INSTALL_FUNCTION),
    ("POST", "/shoptet/eshop-webhook", INSTALL_FUNCTION),
    ("GET", "/shoprenter/install", INSTALL_FUNCTION),
    ("GET", "/shoprenter/uninstall", INSTALL_FUNCTION),
    ("PUT", "/shoprenter/{shop}/credentials", INSTALL_FUNCTION),
    ("PUT", "/shoptet/{eshopId}/installation", INSTALL_FUNCTION),
    ("PUT", "/shoprenter/{shop}/installation", INSTALL_FUNCTION),
    (
        "DELETE",
        "/installations/{platform}/{shop}",
        INSTALL_FUNCTION,
    ),
    ("GET", "/installations", INSTALL_FUNCTION),
    ("GET", "/installations/{platform}/{shop}", INSTALL_FUNCTION),
    ("GET", "/tokens/{platform}/{shop}", VENDOR_FUNCTION),
    ("POST", "/tokens/{platform}/{shop}", VENDOR_FUNCTION),
];

fn resource<'a>(template: &'a Value, id: &str) -> &'a Value {
    let resource = &template["Resources"][id];
    assert!(resource.is_object(), "template has no resource {id}");
    resource
}

fn properties<'a>(template: &'a Value, id: &str) -> &'a Value {
    &resource(template, id)["Properties"]
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|name| (*name).to_owned()).collect()
}

fn environment<'a>(template: &'a Value, function: &str) -> &'a serde_json::Map<String, Value> {
    properties(template, function)["Environment"]["Variables"]
        .as_object()
        .unwrap_or_else(|| panic!("{function} has no Environment.Variables"))
}

/// A literal environment value, or the parameter's default for a `Ref` to a
/// parameter that has one.
fn env_value(template: &Value, value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => {
            let parameter = value.get("Ref")?.as_str()?;
            match template["Parameters"][parameter].get("Default")? {
                Value::String(text) if !text.is_empty() => Some(text.clone()),
                Value::Number(number) => Some(number.to_string()),
                _ => None,
            }
        }
    }
}

fn literal_ms(template: &Value, function: &str, variable: &str) -> u64 {
    let value = &environment(template, function)[variable];
    env_value(template, value)
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| panic!("{function} {variable} is not a number: {value}"))
}

fn timeout_ms(template: &Value, function: &str) -> u64 {
    properties(template, function)["Timeout"]
        .as_u64()
        .unwrap_or_else(|| panic!("{function} has no numeric Timeout"))
        * 1000
}

// ---- least privilege

#[test]
fn no_policy_statement_allows_a_wildcard_resource_or_action() {
    let template = load_template();
    let statements = policy_statements(&template);
    assert!(
        statements.len() >= 10,
        "expected the roles' and the consumer policy's statements, found {}",
        statements.len()
    );
    for (document, statement) in statements {
        if is_key_policy(&document) {
            // the_installation_key_rotates_and_only_the_account_administers_it,
            // the_token_key_exists_with_either_store_rotates_and_only_the_account_administers_it
            continue;
        }
        let context = format!("statement {statement} in {document}");
        assert!(
            statement.get("NotResource").is_none(),
            "{context}: NotResource"
        );
        assert!(statement.get("NotAction").is_none(), "{context}: NotAction");
        for action in as_list(statement, "Action") {
            let action = action
                .as_str()
                .unwrap_or_else(|| panic!("{context}: action {action}"));
            assert!(!action.contains('*'), "{context}: wildcard action {action}");
        }
        if document == WEBHOOK_QUEUE_POLICY_DOCUMENT
            || document == REGISTRATION_QUEUE_POLICY_DOCUMENT
        {
            // the_webhook_exists_only_with_a_url_and_its_queue_takes_only_the_rules_events,
            // the_registration_rule_queues_exactly_installed_and_imported_shoptet_installations
            continue;
        }
        if statement.get("Principal").is_some() {
            // A trust policy: it names who may assume the role, not resources.
            assert_eq!(
                statement["Principal"],
                json!({"Service": "lambda.amazonaws.com"}),
                "{context}: only Lambda may assume the functions' roles"
            );
            assert_eq!(statement["Action"], "sts:AssumeRole", "{context}");
            continue;
        }
        let resources = as_list(statement, "Resource");
        assert!(!resources.is_empty(), "{context}: no Resource");
        for resource in resources {
            let pattern = match resource {
                Value::String(text) => text.as_str(),
                other => match other.get("Fn::Sub") {
                    Some(Value::String(text)) => text.as_str(),
                    Some(_) => panic!("{context}: use the one-argument Fn::Sub"),
                    // Ref / GetAtt name one resource or a parameter's ARN.
                    None => {
                        assert!(
                            other.get("Ref").is_some() || other.get("Fn::GetAtt").is_some(),
                            "{context}: unexpected resource {other}"
                        );
                        continue;
                    }
                },
            };
            assert_ne!(pattern, "*", "{context}: resource *");
            assert!(
                pattern.starts_with("arn:${AWS::Partition}:"),
                "{context}: resource {pattern} is not an ARN of this partition"
            );
            assert!(
                pattern.contains(":${AWS::Region}:${AWS::AccountId}:"),
                "{context}: {pattern} must name this region and account"
            );
            let after_account = pattern.split(":${AWS::AccountId}:").nth(1).unwrap_or("");
            assert!(
                !after_account.starts_with('*'),
                "{context}: {pattern} matches every resource of the service"
            );
        }
    }
}

#[test]
fn functions_use_the_templates_own_roles_and_no_managed_policies() {
    // SAM's generated roles attach AWSLambdaBasicExecutionRole (logs on "*");
    // each function gets an explicit role written out here instead.
    let template = load_template();
    let functions = resources_of_type(&template, "AWS::Serverless::Function");
    assert_eq!(functions.len(), 4, "{functions:?}");
    for (id, function) in functions {
        let properties = &function["Properties"];
        assert!(
            properties.get("Policies").is_none(),
            "{id}: use its Role, not Policies"
        );
        let role = properties["Role"]["Fn::GetAtt"][0]
            .as_str()
            .unwrap_or_else(|| panic!("{id}: Role must be !GetAtt <role in this template>.Arn"));
        assert_eq!(properties["Role"], get_att(role, "Arn"), "{id}");
        assert_eq!(
            resource(&template, role)["Type"],
            "AWS::IAM::Role",
            "{id}: {role}"
        );
    }
    for (id, role) in resources_of_type(&template, "AWS::IAM::Role") {
        assert!(
            role["Properties"].get("ManagedPolicyArns").is_none(),
            "{id}: managed policies are not written out here"
        );
        assert!(
            role["Properties"].get("PermissionsBoundary").is_none(),
            "{id}: unexpected boundary"
        );
    }
}

fn role_statements<'a>(template: &'a Value, role: &str) -> BTreeMap<String, &'a Value> {
    let mut statements = BTreeMap::new();
    for policy in properties(template, role)["Policies"].as_array().unwrap() {
        for (_, statement) in policy_statements(&policy["PolicyDocument"]) {
            let sid = statement["Sid"]
                .as_str()
                .expect("every statement has a Sid");
            statements.insert(sid.to_owned(), statement);
        }
    }
    statements
}

fn actions(statement: &Value) -> BTreeSet<String> {
    as_list(statement, "Action")
        .into_iter()
        .map(|action| action.as_str().unwrap().to_owned())
        .collect()
}

/// The installations' secrets only: `<prefix>shoptet/*` and
/// `<prefix>shoprenter/*`, never a client secret or anything else under the
/// prefix.
fn installation_secret_arns() -> Value {
    json!([
        {"Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${SecretPrefix}shoptet/*"},
        {"Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${SecretPrefix}shoprenter/*"},
    ])
}

/// What one statement grants: (effect, actions, resource).
type Grant = (String, BTreeSet<String>, Value);

/// What a role's statements grant, by Sid.
type Grants = BTreeMap<String, Grant>;

fn grants(template: &Value, role: &str) -> Grants {
    role_statements(template, role)
        .into_iter()
        .map(|(sid, statement)| {
            let effect = statement["Effect"]
                .as_str()
                .unwrap_or_else(|| panic!("{role}: {sid} has no Effect"))
                .to_owned();
            (
                sid,
                (effect, actions(statement), statement["Resource"].clone()),
            )
        })
        .collect()
}

fn allow(actions: &[&str], resource: Value) -> Grant {
    ("Allow".to_owned(), names(actions), resource)
}

fn deny(actions: &[&str], resource: Value) -> Grant {
    ("Deny".to_owned(), names(actions), resource)
}

fn expected_grants(list: Vec<(&str, Grant)>) -> Grants {
    list.into_iter()
        .map(|(sid, grant)| (sid.to_owned(), grant))
        .collect()
}

/// The registry table's stream (`!GetAtt RegistryTable.StreamArn`).
fn registry_stream_arn() -> Value {
    get_att(REGISTRY, "StreamArn")
}

/// `arn:…:table/${RegistryTable}/stream/*`: `ListStreams` names no one
/// stream (SAM's `DynamoDBStreamReadPolicy` grants it the same way).
fn registry_streams_arn() -> Value {
    json!({"Fn::Sub": format!(
        "arn:${{AWS::Partition}}:dynamodb:${{AWS::Region}}:${{AWS::AccountId}}:table/${{{REGISTRY}}}/stream/*"
    )})
}

/// `arn:…:table/${RegistryTable}/index/by-platform`: the one index Query needs.
fn registry_index_arn() -> Value {
    json!({"Fn::Sub": format!(
        "arn:${{AWS::Partition}}:dynamodb:${{AWS::Region}}:${{AWS::AccountId}}:table/${{{REGISTRY}}}/index/{PLATFORM_INDEX}"
    )})
}

#[test]
fn install_role_manages_prefixed_secrets_the_registry_and_the_shared_leases() {
    let template = load_template();
    let function_role = properties(&template, INSTALL_FUNCTION)["Role"].clone();
    assert_eq!(function_role, get_att(INSTALL_ROLE, "Arn"));
    let expected = expected_grants(vec![
        (
            "WriteOwnLogs",
            allow(
                &["logs:CreateLogStream", "logs:PutLogEvents"],
                get_att("InstallCallbackLogGroup", "Arn"),
            ),
        ),
        (
            "StoreInstallationSecrets",
            allow(
                &[
                    "secretsmanager:CreateSecret",
                    "secretsmanager:PutSecretValue",
                    "secretsmanager:TagResource",
                    "secretsmanager:DescribeSecret",
                    "secretsmanager:GetSecretValue",
                ],
                installation_secret_arns(),
            ),
        ),
        (
            "ScheduleAndRestoreInstallationSecretDeletion",
            allow(
                &[
                    "secretsmanager:DeleteSecret",
                    "secretsmanager:RestoreSecret",
                ],
                installation_secret_arns(),
            ),
        ),
        (
            "NeverForceDeleteInstallationSecrets",
            deny(&["secretsmanager:DeleteSecret"], installation_secret_arns()),
        ),
        (
            "CacheTokensAndLeases",
            allow(
                &[
                    "dynamodb:GetItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:DeleteItem",
                ],
                get_att(TABLE, "Arn"),
            ),
        ),
        (
            "SealAndOpenCachedTokens",
            allow(
                &["kms:GenerateDataKey", "kms:Decrypt"],
                get_att(TOKEN_KEY, "Arn"),
            ),
        ),
        (
            "ForwardEshopWebhooks",
            allow(&["events:PutEvents"], event_bus_arn()),
        ),
        (
            "KeepInstallationRegistry",
            allow(
                &["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:Scan"],
                get_att(REGISTRY, "Arn"),
            ),
        ),
        (
            "ListOnePlatformsInstallations",
            allow(&["dynamodb:Query"], registry_index_arn()),
        ),
        (
            "ReadShoptetClientSecret",
            allow(
                &["secretsmanager:GetSecretValue"],
                reference("ShoptetClientSecretArn"),
            ),
        ),
        (
            "ReadShoptetWebhookKey",
            allow(
                &["secretsmanager:GetSecretValue"],
                reference("ShoptetWebhookKeySecretArn"),
            ),
        ),
        (
            "ReadShoprenterClientSecret",
            allow(
                &["secretsmanager:GetSecretValue"],
                reference("ShoprenterClientSecretArn"),
            ),
        ),
        (
            "StoreInstallations",
            allow(
                &[
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                ],
                get_att(INSTALLATION_TABLE, "Arn"),
            ),
        ),
        (
            "SealAndOpenInstallations",
            allow(
                &["kms:GenerateDataKey", "kms:Decrypt"],
                get_att(INSTALLATION_KEY, "Arn"),
            ),
        ),
    ]);
    assert_eq!(grants(&template, INSTALL_ROLE), expected);
    assert_store_specific(
        &template,
        INSTALL_ROLE,
        &[
            "StoreInstallationSecrets",
            "ScheduleAndRestoreInstallationSecretDeletion",
            "NeverForceDeleteInstallationSecrets",
        ],
        &["StoreInstallations", "SealAndOpenInstallations"],
    );
    for (sid, condition) in [
        ("ReadShoptetClientSecret", "HasShoptetClientSecret"),
        ("ReadShoptetWebhookKey", "HasShoptetWebhookKey"),
        ("ReadShoprenterClientSecret", "HasShoprenterClientSecret"),
    ] {
        assert_conditional(&template, INSTALL_ROLE, sid, condition);
    }
}

#[test]
fn vendor_role_reads_only_prefixed_secrets_and_uses_only_its_tables() {
    let template = load_template();
    assert_eq!(
        properties(&template, VENDOR_FUNCTION)["Role"],
        get_att(VENDOR_ROLE, "Arn")
    );
    let expected = expected_grants(vec![
        (
            "WriteOwnLogs",
            allow(
                &["logs:CreateLogStream", "logs:PutLogEvents"],
                get_att("TokenVendorLogGroup", "Arn"),
            ),
        ),
        (
            "ReadInstallationSecrets",
            allow(
                &["secretsmanager:GetSecretValue"],
                installation_secret_arns(),
            ),
        ),
        (
            // The vendor reads, leases, stores and releases by UpdateItem
            // only; dropping a shop's entry is the install callback's.
            "CacheTokensAndLeases",
            allow(
                &["dynamodb:GetItem", "dynamodb:UpdateItem"],
                get_att(TABLE, "Arn"),
            ),
        ),
        (
            "SealAndOpenCachedTokens",
            allow(
                &["kms:GenerateDataKey", "kms:Decrypt"],
                get_att(TOKEN_KEY, "Arn"),
            ),
        ),
        (
            "ReadAndUpdateInstallationRegistry",
            allow(
                &["dynamodb:GetItem", "dynamodb:UpdateItem"],
                get_att(REGISTRY, "Arn"),
            ),
        ),
        (
            "ReadShoprenterClientSecret",
            allow(
                &["secretsmanager:GetSecretValue"],
                reference("ShoprenterClientSecretArn"),
            ),
        ),
        // The vendor never writes an installation: it reads and opens them.
        (
            "ReadInstallations",
            allow(&["dynamodb:GetItem"], get_att(INSTALLATION_TABLE, "Arn")),
        ),
        (
            "OpenInstallations",
            allow(&["kms:Decrypt"], get_att(INSTALLATION_KEY, "Arn")),
        ),
    ]);
    assert_eq!(grants(&template, VENDOR_ROLE), expected);
    assert_store_specific(
        &template,
        VENDOR_ROLE,
        &["ReadInstallationSecrets"],
        &["ReadInstallations", "OpenInstallations"],
    );
    assert_conditional(
        &template,
        VENDOR_ROLE,
        "ReadShoprenterClientSecret",
        "HasShoprenterClientSecret",
    );
}

/// Every (action, resource as JSON text) any policy in the template allows
/// on the registry table or its index, by the logical id of the role or
/// policy.
fn registry_permissions(template: &Value) -> BTreeMap<String, BTreeSet<(String, String)>> {
    // A GetAtt, a Ref or a ${RegistryTable…} inside an Fn::Sub.
    let names_registry = |resource: &Value| resource.to_string().contains(REGISTRY);
    let mut found: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    for (document, statement) in policy_statements(template) {
        if statement["Effect"] != "Allow" {
            continue;
        }
        let owner = document
            .strip_prefix("/Resources/")
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_else(|| panic!("policy outside Resources: {document}"))
            .to_owned();
        for resource in as_list(statement, "Resource") {
            if !names_registry(resource) {
                continue;
            }
            for action in actions(statement) {
                found
                    .entry(owner.clone())
                    .or_default()
                    .insert((action, resource.to_string()));
            }
        }
    }
    found
}

#[test]
fn each_function_gets_exactly_its_registry_permissions() {
    let template = load_template();
    let table = get_att(REGISTRY, "Arn");
    let grant =
        |action: &str, resource: &Value| (format!("dynamodb:{action}"), resource.to_string());
    let expected = BTreeMap::from([
        (
            INSTALL_ROLE.to_owned(),
            BTreeSet::from([
                grant("GetItem", &table),
                grant("UpdateItem", &table),
                grant("Scan", &table),
                grant("Query", &registry_index_arn()),
            ]),
        ),
        (
            VENDOR_ROLE.to_owned(),
            BTreeSet::from([grant("GetItem", &table), grant("UpdateItem", &table)]),
        ),
        // The worker lists the active Shoptet installations and mints.
        (
            WORKER_ROLE.to_owned(),
            BTreeSet::from([
                grant("GetItem", &table),
                grant("UpdateItem", &table),
                grant("Query", &registry_index_arn()),
            ]),
        ),
        // The publisher reads the stream only, never the table.
        (
            PUBLISHER_ROLE.to_owned(),
            BTreeSet::from([
                grant("DescribeStream", &registry_stream_arn()),
                grant("GetRecords", &registry_stream_arn()),
                grant("GetShardIterator", &registry_stream_arn()),
                grant("ListStreams", &registry_streams_arn()),
            ]),
        ),
    ]);
    // The consumer policy is absent: consumers never touch the registry.
    assert_eq!(registry_permissions(&template), expected);
}

// ---- secret deletion

/// (policy document pointer, statement) of every statement naming `action`.
fn statements_with_action<'a>(template: &'a Value, action: &str) -> Vec<(String, &'a Value)> {
    policy_statements(template)
        .into_iter()
        .filter(|(_, statement)| actions(statement).contains(action))
        .collect()
}

/// The Shoptet installations' secrets only (`<prefix>shoptet/*`): what
/// the e-shop webhook worker reads, and adds signature key versions to.
fn shoptet_installation_secret_arn() -> Value {
    json!({"Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${SecretPrefix}shoptet/*"})
}

/// Creating, tagging, restoring and deleting secrets is the install
/// callback's alone (installs, reinstalls and uninstalls), on installation
/// secrets only: the worker keeps a signature key as a version of an
/// existing installation's secret and brings none back.
#[test]
fn deleting_and_restoring_secrets_is_granted_only_to_the_install_callback_under_the_prefix() {
    let template = load_template();
    let install_policies = format!("/Resources/{INSTALL_ROLE}/Properties/Policies/");
    for action in [
        "secretsmanager:DeleteSecret",
        "secretsmanager:RestoreSecret",
        "secretsmanager:CreateSecret",
        "secretsmanager:TagResource",
    ] {
        let allowed: Vec<_> = statements_with_action(&template, action)
            .into_iter()
            .filter(|(_, statement)| statement["Effect"] == "Allow")
            .collect();
        assert!(
            !allowed.is_empty(),
            "nobody may {action}: uninstall needs it"
        );
        for (document, statement) in allowed {
            assert!(
                document.starts_with(&install_policies),
                "{action} allowed outside the install callback's role: {document}"
            );
            let resources = as_list(statement, "Resource");
            let installations = installation_secret_arns();
            assert_eq!(
                resources,
                installations.as_array().unwrap().iter().collect::<Vec<_>>(),
                "{action} only on installation secrets: {statement}"
            );
        }
    }
}

#[test]
fn force_deleting_a_secret_without_recovery_is_never_allowed() {
    let template = load_template();
    let force = "secretsmanager:ForceDeleteWithoutRecovery";
    let statements = statements_with_action(&template, "secretsmanager:DeleteSecret");
    let denials: Vec<&(String, &Value)> = statements
        .iter()
        .filter(|(_, statement)| statement["Effect"] == "Deny")
        .collect();
    for (document, statement) in statements
        .iter()
        .filter(|(_, statement)| statement["Effect"] == "Allow")
    {
        // An Allow condition cannot stop a caller from forcing; a Deny in the
        // same document on every resource the Allow names does.
        for resource in as_list(statement, "Resource") {
            let denied = denials.iter().any(|(deny_document, deny)| {
                deny_document == document
                    && as_list(deny, "Resource").contains(&resource)
                    && deny.get("Condition") == Some(&json!({"Bool": {force: "true"}}))
            });
            assert!(
                denied,
                "{document}: DeleteSecret on {resource} needs a Deny when {force} is true"
            );
        }
    }
    // Nothing anywhere speaks of forcing other than to deny it.
    for (document, statement) in policy_statements(&template) {
        if statement.to_string().contains(force) {
            assert_eq!(
                statement["Effect"], "Deny",
                "{document}: {statement} mentions {force}"
            );
        }
    }
}

#[test]
fn uninstall_recovery_days_stay_within_secrets_managers_recovery_window() {
    let template = load_template();
    let parameter = &template["Parameters"]["UninstallRecoveryDays"];
    assert_eq!(parameter["Type"], "Number");
    assert_eq!(parameter["MinValue"], 7);
    assert_eq!(parameter["MaxValue"], 30);
    assert_eq!(parameter["Default"], 7);
    assert_eq!(
        environment(&template, INSTALL_FUNCTION)["UNINSTALL_RECOVERY_DAYS"],
        reference("UninstallRecoveryDays")
    );
    // The code's own window agrees: every allowed value and nothing beyond.
    for days in 7..=30 {
        assert!(RecoveryWindow::days(days).is_some(), "{days} days");
    }
    for days in [0, 6, 31] {
        assert!(RecoveryWindow::days(days).is_none(), "{days} days");
    }
}

/// `role` has the statements `secrets_manager` only with the default
/// installation store and `dynamodb` only with `InstallationStore=DynamoDB`;
/// its other statements with both.
fn assert_store_specific(
    template: &Value,
    role: &str,
    secrets_manager: &[&str],
    dynamodb: &[&str],
) {
    let all: BTreeSet<String> = grants(template, role).into_keys().collect();
    for (store, only_there, only_elsewhere) in [
        (Store::SecretsManager, secrets_manager, dynamodb),
        (Store::DynamoDb, dynamodb, secrets_manager),
    ] {
        let deployed: BTreeSet<String> = grants(&store.template(template), role)
            .into_keys()
            .collect();
        let mut expected = all.clone();
        for sid in only_elsewhere {
            assert!(expected.remove(*sid), "{role} has no {sid}");
        }
        assert!(only_there.iter().all(|sid| expected.contains(*sid)));
        assert_eq!(deployed, expected, "{role} with {store:?}");
    }
}

/// The statement `sid` of `role` exists only under `condition`, which holds
/// only when the parameter is set, and the other branch is no statement.
fn assert_conditional(template: &Value, role: &str, sid: &str, condition: &str) {
    let policies = properties(template, role)["Policies"].as_array().unwrap();
    let guarded = policies
        .iter()
        .flat_map(|policy| policy["PolicyDocument"]["Statement"].as_array().unwrap())
        .find(|item| item["Fn::If"][1]["Sid"] == sid)
        .unwrap_or_else(|| panic!("{role}: {sid} must sit in an Fn::If"));
    assert_eq!(guarded["Fn::If"][0], condition, "{role}: {sid}");
    assert_eq!(
        guarded["Fn::If"][2],
        reference("AWS::NoValue"),
        "{role}: {sid}"
    );
    let parameter = guarded["Fn::If"][1]["Resource"]["Ref"].as_str().unwrap();
    assert_eq!(
        template["Conditions"][condition],
        json!({"Fn::Not": [{"Fn::Equals": [reference(parameter), ""]}]}),
        "{condition} must mean: {parameter} is set"
    );
}

#[test]
fn consumer_policy_allows_only_the_vendor_and_the_token_routes() {
    let template = load_template();
    let policies = resources_of_type(&template, "AWS::IAM::ManagedPolicy");
    let (id, policy) = *policies
        .iter()
        .find(|(id, _)| *id == "TokenConsumerPolicy")
        .expect("TokenConsumerPolicy");
    let statements = policy_statements(&policy["Properties"]["PolicyDocument"]);
    let granted: Vec<(BTreeSet<String>, Vec<&Value>)> = statements
        .iter()
        .map(|(_, statement)| (actions(statement), as_list(statement, "Resource")))
        .collect();
    let route = |method: &str| {
        json!({"Fn::Sub": format!(
            "arn:${{AWS::Partition}}:execute-api:${{AWS::Region}}:${{AWS::AccountId}}:${{{HTTP_API}}}/*/{method}/tokens/*"
        )})
    };
    assert_eq!(
        granted,
        vec![
            (
                names(&["lambda:InvokeFunction"]),
                vec![&get_att(VENDOR_FUNCTION, "Arn")]
            ),
            (
                names(&["execute-api:Invoke"]),
                vec![&route("GET"), &route("POST")]
            ),
        ],
        "{id}"
    );
    assert_eq!(
        template["Outputs"]["TokenConsumerPolicyArn"]["Value"],
        reference(id)
    );
}

#[test]
fn the_operator_policy_allows_exactly_the_install_callbacks_iam_routes() {
    let template = load_template();
    let policies = resources_of_type(&template, "AWS::IAM::ManagedPolicy");
    let ids: BTreeSet<String> = policies.iter().map(|(id, _)| (*id).to_owned()).collect();
    assert_eq!(ids, names(&["OperatorPolicy", "TokenConsumerPolicy"]));
    let (_, policy) = *policies
        .iter()
        .find(|(id, _)| *id == "OperatorPolicy")
        .unwrap();
    let statements = policy_statements(&policy["Properties"]["PolicyDocument"]);
    assert_eq!(statements.len(), 1);
    let (_, statement) = &statements[0];
    assert_eq!(actions(statement), names(&["execute-api:Invoke"]));
    let granted: BTreeSet<String> = as_list(statement, "Resource")
        .into_iter()
        .map(|resource| resource["Fn::Sub"].as_str().unwrap().to_owned())
        .collect();
    // Every IAM route of the install callback, its path parameters as `*`,
    // and nothing else (the token routes are the consumers').
    let wanted: BTreeSet<String> = routes(&template)
        .into_iter()
        .filter(|route| route.function == INSTALL_FUNCTION && route.authorizer.is_none())
        .map(|route| {
            let path: Vec<&str> = route
                .path
                .split('/')
                .map(|segment| if segment.starts_with('{') { "*" } else { segment })
                .collect();
            format!(
                "arn:${{AWS::Partition}}:execute-api:${{AWS::Region}}:${{AWS::AccountId}}:${{{HTTP_API}}}/*/{}{}",
                route.method,
                path.join("/")
            )
        })
        .collect();
    assert_eq!(granted, wanted);
    assert_eq!(
        template["Outputs"]["OperatorPolicyArn"]["Value"],
        reference("OperatorPolicy")
    );
}

// ---- routes

struct Route {
    function: String,
    method: String,
    path: String,
    authorizer: Option<String>,
}

fn routes(template: &Value) -> Vec<Route> {
    let mut routes = Vec::new();
    for (function, resource) in resources_of_type(template, "AWS::Serverless::Function") {
        let properties = &resource["Properties"];
        assert!(
            properties.get("FunctionUrlConfig").is_none(),
            "{function}: a Function URL would bypass the API's IAM auth"
        );
        let Some(events) = properties.get("Events").and_then(Value::as_object) else {
            continue;
        };
        for (name, event) in events {
            if function == WORKER_FUNCTION && event["Type"] == "Schedule" {
                // the_reconciliation_runs_on_its_schedule_and_only_with_events_configured
                continue;
            }
            assert_eq!(
                event["Type"], "HttpApi",
                "{function}.{name}: only HttpApi events"
            );
            let event = &event["Properties"];
            // Without ApiId the route lands on SAM's implicit API, which has
            // no default authorizer: public.
            assert_eq!(
                event["ApiId"],
                reference(HTTP_API),
                "{function}.{name}: ApiId"
            );
            routes.push(Route {
                function: function.to_owned(),
                method: event["Method"].as_str().unwrap().to_uppercase(),
                path: event["Path"].as_str().unwrap().to_owned(),
                authorizer: event["Auth"]["Authorizer"].as_str().map(str::to_owned),
            });
        }
    }
    routes
}

#[test]
fn the_api_requires_iam_by_default() {
    let template = load_template();
    let apis = resources_of_type(&template, "AWS::Serverless::HttpApi");
    assert_eq!(apis.len(), 1, "one HTTP API");
    assert_eq!(apis[0].0, HTTP_API);
    let auth = &apis[0].1["Properties"]["Auth"];
    assert_eq!(auth["DefaultAuthorizer"], "AWS_IAM");
    assert_eq!(auth["EnableIamAuthorizer"], true);
    for kind in [
        "AWS::Serverless::Api",
        "AWS::ApiGatewayV2::Api",
        "AWS::Lambda::Url",
        "AWS::Lambda::Permission",
    ] {
        assert!(
            resources_of_type(&template, kind).is_empty(),
            "unexpected {kind}"
        );
    }
}

#[test]
fn only_the_platforms_callbacks_are_public_and_every_other_route_needs_iam() {
    let template = load_template();
    let routes = routes(&template);
    let table: BTreeSet<(String, String, String)> = routes
        .iter()
        .map(|route| {
            (
                route.method.clone(),
                route.path.clone(),
                route.function.clone(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String, String)> = ROUTES
        .iter()
        .map(|(method, path, function)| {
            (
                (*method).to_owned(),
                (*path).to_owned(),
                (*function).to_owned(),
            )
        })
        .collect();
    assert_eq!(table, expected);
    assert_eq!(routes.len(), expected.len(), "a route is declared twice");

    let public: BTreeSet<(&str, &str)> = PUBLIC_ROUTES
        .iter()
        .map(|(method, path, _)| (*method, *path))
        .collect();
    assert_eq!(public.len(), 5, "{public:?}");
    for route in &routes {
        let is_public = public.contains(&(route.method.as_str(), route.path.as_str()));
        match (is_public, route.authorizer.as_deref()) {
            (true, Some("NONE")) => {}
            (true, other) => panic!(
                "{} {} must be public (Authorizer: NONE), has {other:?}",
                route.method, route.path
            ),
            // The API's default authorizer (AWS_IAM) applies.
            (false, None | Some("AWS_IAM")) => {}
            (false, Some(other)) => panic!(
                "{} {} must use IAM, has Authorizer {other}",
                route.method, route.path
            ),
        }
        if is_public {
            assert_eq!(
                route.function, INSTALL_FUNCTION,
                "{} {}: only the install callback faces the platforms",
                route.method, route.path
            );
        }
        let operator = route.path.starts_with("/tokens/")
            || route.path.starts_with("/installations")
            || route.path.ends_with("/credentials")
            || route.path.ends_with("/installation");
        assert!(
            !(operator && is_public),
            "{} {} must not be public",
            route.method,
            route.path
        );
    }
}

#[test]
fn outputs_name_every_url_the_platforms_call_the_vendor_and_the_tables() {
    // As deployed without a custom e-shop webhook URL: the stack's own route.
    let template = with_condition(&load_template(), HAS_CUSTOM_ESHOP_URL, false);
    let outputs = &template["Outputs"];
    let base = "https://${BrokerHttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}";
    assert_eq!(outputs["ApiBaseUrl"]["Value"], json!({"Fn::Sub": base}));
    for (_, path, output) in PUBLIC_ROUTES {
        assert_eq!(
            outputs[*output]["Value"],
            json!({"Fn::Sub": format!("{base}{path}")}),
            "{output}"
        );
    }
    assert_eq!(
        outputs["TokenVendorFunctionArn"]["Value"],
        get_att(VENDOR_FUNCTION, "Arn")
    );
    assert_eq!(
        outputs["TokenVendorFunctionName"]["Value"],
        reference(VENDOR_FUNCTION)
    );
    assert_eq!(
        outputs["ShoptetWebhooksFunctionName"]["Value"],
        reference(WORKER_FUNCTION)
    );
    assert_eq!(outputs["TokenTableName"]["Value"], reference(TABLE));
    assert_eq!(outputs["TokenKeyArn"]["Value"], get_att(TOKEN_KEY, "Arn"));
    assert_eq!(outputs["RegistryTableName"]["Value"], reference(REGISTRY));
    assert!(outputs["TokenConsumerPolicyArn"]["Value"].is_object());
}

// ---- table

#[test]
fn table_is_keyed_and_expires_items_the_way_the_code_writes_them() {
    let template = load_template();
    assert_eq!(resource(&template, TABLE)["Type"], "AWS::DynamoDB::Table");
    let table = properties(&template, TABLE);
    assert_eq!(
        table["KeySchema"],
        json!([{"AttributeName": PARTITION_KEY, "KeyType": "HASH"}])
    );
    assert_eq!(
        table["AttributeDefinitions"],
        json!([{"AttributeName": PARTITION_KEY, "AttributeType": "S"}])
    );
    assert_eq!(
        table["TimeToLiveSpecification"],
        json!({"AttributeName": TTL_ATTRIBUTE, "Enabled": true})
    );
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(
        table["PointInTimeRecoverySpecification"],
        json!({"PointInTimeRecoveryEnabled": true})
    );
    assert_eq!(
        table["DeletionProtectionEnabled"],
        json!({"Fn::If": ["ProtectTable", true, false]})
    );
    assert_eq!(
        template["Conditions"]["ProtectTable"],
        json!({"Fn::Equals": [reference("TableDeletionProtection"), "true"]})
    );
    for function in [INSTALL_FUNCTION, VENDOR_FUNCTION, WORKER_FUNCTION] {
        assert_eq!(
            environment(&template, function)["TOKEN_TABLE"],
            reference(TABLE),
            "{function}"
        );
    }
}

#[test]
fn registry_table_is_keyed_and_indexed_by_platform_the_way_the_code_queries_it() {
    let template = load_template();
    let declaration = resource(&template, REGISTRY);
    assert_eq!(declaration["Type"], "AWS::DynamoDB::Table");
    let table = properties(&template, REGISTRY);
    assert_eq!(
        table["KeySchema"],
        json!([{"AttributeName": REGISTRY_PARTITION_KEY, "KeyType": "HASH"}])
    );
    let attributes: BTreeSet<String> = table["AttributeDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|definition| {
            assert_eq!(definition["AttributeType"], "S", "{definition}");
            definition["AttributeName"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        attributes,
        names(&[REGISTRY_PARTITION_KEY, REGISTRY_PLATFORM])
    );
    assert_eq!(
        table["GlobalSecondaryIndexes"],
        json!([{
            "IndexName": PLATFORM_INDEX,
            "KeySchema": [
                {"AttributeName": REGISTRY_PLATFORM, "KeyType": "HASH"},
                {"AttributeName": REGISTRY_PARTITION_KEY, "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }])
    );
    assert!(table.get("LocalSecondaryIndexes").is_none());
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    assert!(
        table.get("TimeToLiveSpecification").is_none(),
        "registrations are kept: no TTL"
    );
    assert_eq!(
        table["PointInTimeRecoverySpecification"],
        json!({"PointInTimeRecoveryEnabled": true})
    );
    // Protected, and deleted with the stack, exactly like the token table.
    let token_table = resource(&template, TABLE);
    for field in ["DeletionPolicy", "UpdateReplacePolicy"] {
        assert_eq!(declaration[field], token_table[field], "{field}");
    }
    assert_eq!(
        table["DeletionProtectionEnabled"],
        token_table["Properties"]["DeletionProtectionEnabled"]
    );
    for function in [INSTALL_FUNCTION, VENDOR_FUNCTION, WORKER_FUNCTION] {
        assert_eq!(
            environment(&template, function)["REGISTRY_TABLE"],
            reference(REGISTRY),
            "{function}"
        );
    }
}

// ---- installation store (InstallationStore=DynamoDB)

/// The logical id of the role or policy a statement's document belongs to.
fn owner(document: &str) -> &str {
    document
        .strip_prefix("/Resources/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("policy outside Resources: {document}"))
}

/// What every statement that uses the installation key must require: an
/// encryption context naming one of the platforms (as the code spells
/// them), a shop, and nothing else.
fn encryption_context_condition() -> Value {
    let platforms: Vec<&str> = [Platform::Shoptet, Platform::Shoprenter]
        .into_iter()
        .map(Platform::as_str)
        .collect();
    json!({
        "StringEquals": {"kms:EncryptionContext:platform": platforms},
        "Null": {"kms:EncryptionContext:shop": "false"},
        "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["platform", "shop"]},
    })
}

/// The allowed actions on resources naming `id`, by the role or policy
/// granting them, in `template` (the key policy left out).
fn permissions_on(template: &Value, id: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (document, statement) in policy_statements(template) {
        if is_key_policy(&document) {
            continue;
        }
        let names_it = as_list(statement, "Resource")
            .iter()
            .any(|resource| resource.to_string().contains(id));
        if names_it {
            assert_eq!(statement["Effect"], "Allow", "{document}: {statement}");
            found
                .entry(owner(&document).to_owned())
                .or_default()
                .extend(actions(statement));
        }
    }
    found
}

#[test]
fn the_installation_store_parameter_takes_exactly_the_values_the_code_reads() {
    let template = load_template();
    let parameter = &template["Parameters"]["InstallationStore"];
    assert_eq!(parameter["Type"], "String");
    assert_eq!(
        parameter["Default"],
        Store::SecretsManager.parameter(),
        "Secrets Manager stays the default"
    );
    assert_eq!(
        parameter["AllowedValues"],
        json!(Store::ALL.map(Store::parameter))
    );
    assert_eq!(
        template["Conditions"][DYNAMODB_STORE],
        json!({"Fn::Equals": [reference("InstallationStore"), Store::DynamoDb.parameter()]})
    );
    for store in Store::ALL {
        let env = |variable: &str| match variable {
            "INSTALLATION_STORE" => Some(store.parameter().to_owned()),
            "INSTALLATION_TABLE" | "INSTALLATION_KEY_ID" => Some("set".to_owned()),
            _ => None,
        };
        let backend = installation_backend(&env)
            .unwrap_or_else(|error| panic!("the code refuses {store:?}: {error}"));
        assert_eq!(
            matches!(backend, InstallationBackend::DynamoDb { .. }),
            store == Store::DynamoDb,
            "{store:?} reads as {backend:?}"
        );
    }
    let only_with_dynamodb =
        |value: Value| json!({"Fn::If": [DYNAMODB_STORE, value, reference("AWS::NoValue")]});
    for function in [INSTALL_FUNCTION, VENDOR_FUNCTION] {
        let variables = environment(&template, function);
        assert_eq!(
            variables["INSTALLATION_STORE"],
            reference("InstallationStore"),
            "{function}"
        );
        assert_eq!(
            variables["INSTALLATION_TABLE"],
            only_with_dynamodb(reference(INSTALLATION_TABLE)),
            "{function}"
        );
        assert_eq!(
            variables["INSTALLATION_KEY_ID"],
            only_with_dynamodb(reference(INSTALLATION_KEY)),
            "{function}"
        );
        assert_eq!(
            variables["SECRET_PREFIX"],
            json!({"Fn::If": [DYNAMODB_STORE, reference("AWS::NoValue"), reference("SecretPrefix")]}),
            "{function}"
        );
    }
}

#[test]
fn the_installation_table_exists_only_with_the_dynamodb_store_keyed_like_the_other_tables() {
    let template = load_template();
    let declaration = resource(&template, INSTALLATION_TABLE);
    assert_eq!(declaration["Type"], "AWS::DynamoDB::Table");
    assert_eq!(declaration["Condition"], DYNAMODB_STORE);
    // Every merchant's credentials: kept when the stack goes or the store
    // is switched back, as Secrets Manager's secrets are.
    for field in ["DeletionPolicy", "UpdateReplacePolicy"] {
        assert_eq!(declaration[field], "Retain", "{field}");
    }
    let table = &declaration["Properties"];
    assert_eq!(
        table["KeySchema"],
        json!([{"AttributeName": PARTITION_KEY, "KeyType": "HASH"}])
    );
    assert_eq!(
        table["AttributeDefinitions"],
        json!([{"AttributeName": PARTITION_KEY, "AttributeType": "S"}])
    );
    assert!(table.get("GlobalSecondaryIndexes").is_none());
    assert!(table.get("LocalSecondaryIndexes").is_none());
    // An uninstalled shop's item goes after the recovery window.
    assert_eq!(
        table["TimeToLiveSpecification"],
        json!({"AttributeName": TTL_ATTRIBUTE, "Enabled": true})
    );
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(
        table["PointInTimeRecoverySpecification"],
        json!({"PointInTimeRecoveryEnabled": true})
    );
    assert_eq!(table["SSESpecification"], json!({"SSEEnabled": true}));
    assert_eq!(
        table["DeletionProtectionEnabled"],
        properties(&template, TABLE)["DeletionProtectionEnabled"]
    );
    let output = &template["Outputs"]["InstallationTableName"];
    assert_eq!(output["Condition"], DYNAMODB_STORE);
    assert_eq!(output["Value"], reference(INSTALLATION_TABLE));
}

#[test]
fn the_installation_key_rotates_and_only_the_account_administers_it() {
    let template = load_template();
    let declaration = resource(&template, INSTALLATION_KEY);
    assert_eq!(declaration["Type"], "AWS::KMS::Key");
    assert_eq!(declaration["Condition"], DYNAMODB_STORE);
    // Without the key the table's items never open again.
    for field in ["DeletionPolicy", "UpdateReplacePolicy"] {
        assert_eq!(declaration[field], "Retain", "{field}");
    }
    let key = &declaration["Properties"];
    assert_eq!(key["EnableKeyRotation"], true);
    assert_eq!(key["KeySpec"], "SYMMETRIC_DEFAULT");
    assert_eq!(key["KeyUsage"], "ENCRYPT_DECRYPT");
    // The account's own administrators (through IAM) and no one else: no
    // service, no other account, no grant to the functions here (their
    // roles' policies grant that, conditioned on the encryption context).
    assert_eq!(
        key["KeyPolicy"],
        json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "AccountAdministersTheKey",
                "Effect": "Allow",
                "Principal": {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}},
                "Action": "kms:*",
                "Resource": "*",
            }],
        })
    );
    let statements = policy_statements(&template);
    let key_documents: BTreeSet<&str> = statements
        .iter()
        .map(|(document, _)| document.as_str())
        .filter(|document| owner(document) == INSTALLATION_KEY)
        .collect();
    assert_eq!(key_documents, BTreeSet::from([KEY_POLICY]));

    let aliases: Vec<_> = resources_of_type(&template, "AWS::KMS::Alias")
        .into_iter()
        .filter(|(_, alias)| alias["Properties"]["TargetKeyId"] == reference(INSTALLATION_KEY))
        .collect();
    assert_eq!(aliases.len(), 1, "{aliases:?}");
    let (id, alias) = aliases[0];
    assert_eq!(alias["Condition"], DYNAMODB_STORE, "{id}");
    let name = alias["Properties"]["AliasName"]["Fn::Sub"].as_str();
    assert!(
        name.is_some_and(|name| name.starts_with("alias/${AWS::StackName}/")),
        "{id}: the alias carries the stack's name: {name:?}"
    );
    let output = &template["Outputs"]["InstallationKeyArn"];
    assert_eq!(output["Condition"], DYNAMODB_STORE);
    assert_eq!(output["Value"], get_att(INSTALLATION_KEY, "Arn"));
}

#[test]
fn the_default_store_uses_kms_only_for_the_token_key_and_has_no_installation_table() {
    let template = Store::SecretsManager.template(&load_template());
    for (document, statement) in policy_statements(&template) {
        if is_key_policy(&document) {
            continue;
        }
        if actions(statement)
            .iter()
            .any(|action| action.starts_with("kms:"))
        {
            assert_eq!(
                statement["Resource"],
                get_att(TOKEN_KEY, "Arn"),
                "{document}: KMS with the default store only on the token key: {statement}"
            );
        }
    }
    let keys: Vec<&str> = resources_of_type(&template, "AWS::KMS::Key")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(keys, vec![TOKEN_KEY]);
    for section in ["Resources", "Outputs"] {
        let text = template[section].to_string();
        for id in [INSTALLATION_TABLE, INSTALLATION_KEY] {
            assert!(
                !text.contains(id),
                "{section} name {id} with the default store"
            );
        }
    }
}

#[test]
fn only_the_three_functions_use_the_key_and_only_under_an_encryption_context_naming_platform_and_shop()
 {
    let template = Store::DynamoDb.template(&load_template());
    assert_eq!(
        permissions_on(&template, INSTALLATION_KEY),
        BTreeMap::from([
            (
                INSTALL_ROLE.to_owned(),
                names(&["kms:GenerateDataKey", "kms:Decrypt"])
            ),
            // The vendor only reads installations: it never needs a new
            // data key.
            (VENDOR_ROLE.to_owned(), names(&["kms:Decrypt"])),
            // The worker seals the signature keys it keeps beside them.
            (
                WORKER_ROLE.to_owned(),
                names(&["kms:GenerateDataKey", "kms:Decrypt"])
            ),
        ])
    );
    let mut checked = 0;
    for (document, statement) in policy_statements(&template) {
        if is_key_policy(&document) || statement["Resource"] == get_att(TOKEN_KEY, "Arn") {
            // only_the_three_minting_functions_use_the_token_key_and_only_under_the_token_cache_context
            continue;
        }
        let uses_kms = actions(statement)
            .iter()
            .any(|action| action.starts_with("kms:"));
        let names_key = statement["Resource"].to_string().contains(INSTALLATION_KEY);
        if !(uses_kms || names_key) {
            continue;
        }
        assert_eq!(
            as_list(statement, "Resource"),
            vec![&get_att(INSTALLATION_KEY, "Arn")],
            "{document}: KMS only on the stack's key: {statement}"
        );
        assert_eq!(
            statement["Condition"],
            encryption_context_condition(),
            "{document}: {statement}"
        );
        checked += 1;
    }
    assert_eq!(checked, 3, "one statement per function");
}

#[test]
fn only_the_functions_that_keep_or_mint_touch_the_installation_table_and_the_vendor_only_reads() {
    let template = Store::DynamoDb.template(&load_template());
    assert_eq!(
        permissions_on(&template, INSTALLATION_TABLE),
        BTreeMap::from([
            (
                INSTALL_ROLE.to_owned(),
                names(&[
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem"
                ])
            ),
            (VENDOR_ROLE.to_owned(), names(&["dynamodb:GetItem"])),
            // Signature key items beside the installations.
            (
                WORKER_ROLE.to_owned(),
                names(&[
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem"
                ])
            ),
        ])
    );
    for function in [INSTALL_FUNCTION, VENDOR_FUNCTION, WORKER_FUNCTION] {
        let variables = environment(&template, function);
        assert_eq!(
            variables["INSTALLATION_STORE"],
            reference("InstallationStore")
        );
        assert_eq!(
            variables["INSTALLATION_TABLE"],
            reference(INSTALLATION_TABLE)
        );
        assert_eq!(
            variables["INSTALLATION_KEY_ID"],
            reference(INSTALLATION_KEY)
        );
    }
}

/// What every statement that uses the token key must require: the token
/// cache's encryption context (as the code spells it) and nothing else.
fn token_cache_context_condition() -> Value {
    let (name, value) = TOKEN_KEY_CONTEXT;
    json!({
        "StringEquals": {format!("kms:EncryptionContext:{name}"): value},
        "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": [name]},
    })
}

#[test]
fn the_token_key_exists_with_either_store_rotates_and_only_the_account_administers_it() {
    for store in Store::ALL {
        let template = store.template(&load_template());
        let declaration = resource(&template, TOKEN_KEY);
        assert_eq!(declaration["Type"], "AWS::KMS::Key", "{store:?}");
        assert!(declaration.get("Condition").is_none(), "{store:?}");
        // It guards tokens that expire within the hour: nothing to keep.
        for field in ["DeletionPolicy", "UpdateReplacePolicy"] {
            assert_eq!(declaration[field], "Delete", "{store:?}: {field}");
        }
        let key = &declaration["Properties"];
        assert_eq!(key["EnableKeyRotation"], true);
        assert_eq!(key["KeySpec"], "SYMMETRIC_DEFAULT");
        assert_eq!(key["KeyUsage"], "ENCRYPT_DECRYPT");
        assert_eq!(key["PendingWindowInDays"], 7);
        // As the installation key: the account's administrators (through
        // IAM) and no service, no other account, no grant here.
        assert_eq!(
            key["KeyPolicy"],
            resource(&load_template(), INSTALLATION_KEY)["Properties"]["KeyPolicy"]
        );
        let aliases: Vec<_> = resources_of_type(&template, "AWS::KMS::Alias")
            .into_iter()
            .filter(|(_, alias)| alias["Properties"]["TargetKeyId"] == reference(TOKEN_KEY))
            .collect();
        assert_eq!(aliases.len(), 1, "{store:?}: {aliases:?}");
        assert_eq!(
            aliases[0].1["Properties"]["AliasName"],
            json!({"Fn::Sub": "alias/${AWS::StackName}/tokens"})
        );
        for function in [INSTALL_FUNCTION, VENDOR_FUNCTION, WORKER_FUNCTION] {
            assert_eq!(
                environment(&template, function)["TOKEN_KEY_ID"],
                reference(TOKEN_KEY),
                "{store:?}: {function}"
            );
        }
    }
}

#[test]
fn only_the_three_minting_functions_use_the_token_key_and_only_under_the_token_cache_context() {
    for store in Store::ALL {
        let template = store.template(&load_template());
        // All mint through the shared leases, so all seal and open.
        let both = names(&["kms:GenerateDataKey", "kms:Decrypt"]);
        assert_eq!(
            permissions_on(&template, TOKEN_KEY),
            BTreeMap::from([
                (INSTALL_ROLE.to_owned(), both.clone()),
                (VENDOR_ROLE.to_owned(), both.clone()),
                (WORKER_ROLE.to_owned(), both),
            ]),
            "{store:?}"
        );
        let mut checked = 0;
        for (document, statement) in policy_statements(&template) {
            if is_key_policy(&document) || !statement["Resource"].to_string().contains(TOKEN_KEY) {
                continue;
            }
            assert_eq!(
                as_list(statement, "Resource"),
                vec![&get_att(TOKEN_KEY, "Arn")],
                "{document}: {statement}"
            );
            assert_eq!(
                statement["Condition"],
                token_cache_context_condition(),
                "{document}: {statement}"
            );
            checked += 1;
        }
        assert_eq!(checked, 3, "{store:?}: one statement per function");
    }
}

// ---- functions and their environment

#[test]
fn functions_are_arm64_rust_on_al2023() {
    let template = load_template();
    let expected_binaries = [
        (INSTALL_FUNCTION, "install-callback"),
        (VENDOR_FUNCTION, "token-vendor"),
        (PUBLISHER_FUNCTION, "event-publisher"),
        (WORKER_FUNCTION, "shoptet-webhooks"),
    ];
    for (function, binary) in expected_binaries {
        let resource = resource(&template, function);
        assert_eq!(resource["Type"], "AWS::Serverless::Function");
        assert_eq!(
            resource["Metadata"]["BuildMethod"], "rust-cargolambda",
            "{function}"
        );
        assert_eq!(
            resource["Metadata"]["BuildProperties"]["Binary"], binary,
            "{function}"
        );
        let properties = &resource["Properties"];
        assert_eq!(properties["Runtime"], "provided.al2023", "{function}");
        assert_eq!(properties["Handler"], "bootstrap", "{function}");
        assert_eq!(properties["Architectures"], json!(["arm64"]), "{function}");
        assert_eq!(properties["MemorySize"], 128, "{function}");
        assert_eq!(
            properties["CodeUri"], ".",
            "{function}: built from the workspace root"
        );
        let logging = &properties["LoggingConfig"];
        assert_eq!(logging["LogFormat"], "JSON", "{function}");
        assert_eq!(
            logging["ApplicationLogLevel"],
            reference("LogLevel"),
            "{function}"
        );
    }
    assert!(
        template.get("Globals").is_none(),
        "properties are written per function"
    );
}

#[test]
fn install_function_answers_within_shoptets_five_seconds() {
    let template = load_template();
    let deadline = literal_ms(&template, INSTALL_FUNCTION, "INSTALL_DEADLINE_MS");
    let upstream = literal_ms(&template, INSTALL_FUNCTION, "UPSTREAM_TIMEOUT_MS");
    assert!(deadline < 5_000, "INSTALL_DEADLINE_MS {deadline}");
    assert!(
        upstream < deadline,
        "UPSTREAM_TIMEOUT_MS {upstream} vs deadline {deadline}"
    );
    let timeout = timeout_ms(&template, INSTALL_FUNCTION);
    assert!(
        timeout > deadline,
        "Lambda Timeout {timeout} ms must exceed the deadline {deadline}"
    );
    assert!(
        timeout <= 10_000,
        "a hung install is cut off quickly: {timeout} ms"
    );
}

/// The longest vend: waiting the whole lease wait for another instance's
/// refresh, then taking the lease over and minting (one upstream call), with
/// a margin for the store round trips around it. The wait is the one the
/// vendor's own loader derives at the largest `LeaseSeconds` the stack
/// accepts.
#[test]
fn vendor_timeout_covers_the_derived_lease_wait_at_the_longest_lease_and_an_upstream_call() {
    let template = load_template();
    let longest_lease = &template["Parameters"]["LeaseSeconds"]["MaxValue"];
    assert!(
        longest_lease.is_u64(),
        "LeaseSeconds needs a MaxValue: {longest_lease}"
    );
    let mut env = TemplateEnv::new(&template, VENDOR_FUNCTION);
    env.overrides
        .insert("LeaseSeconds".to_owned(), longest_lease.to_string());
    let config = token_vendor::VendorConfig::from_env(&|variable: &str| env.get(variable))
        .unwrap_or_else(|error| panic!("vendor rejects LeaseSeconds {longest_lease}: {error}"));
    let upstream = Duration::from_millis(literal_ms(
        &template,
        VENDOR_FUNCTION,
        "UPSTREAM_TIMEOUT_MS",
    ));
    assert_eq!(config.http.request_timeout, upstream);
    assert_eq!(
        config.timing.lease,
        Duration::from_secs(longest_lease.as_u64().unwrap())
    );
    assert_eq!(
        config.timing.lease_wait,
        VendTiming::derived_lease_wait(config.timing.lease, upstream),
        "the template leaves LEASE_WAIT_MS to the code"
    );
    let longest_vend = config.timing.lease_wait + upstream + VendTiming::LEASE_WAIT_MARGIN;
    let timeout = Duration::from_millis(timeout_ms(&template, VENDOR_FUNCTION));
    assert!(
        timeout >= longest_vend,
        "Timeout {timeout:?} < lease wait {:?} + upstream {upstream:?} + margin {:?}",
        config.timing.lease_wait,
        VendTiming::LEASE_WAIT_MARGIN
    );
}

#[test]
fn no_function_pins_the_lease_wait_and_both_name_the_metrics_namespace() {
    let template = load_template();
    for function in [INSTALL_FUNCTION, VENDOR_FUNCTION, WORKER_FUNCTION] {
        let variables = environment(&template, function);
        for variable in DERIVED_WHEN_UNSET {
            assert!(
                !variables.contains_key(*variable),
                "{function} pins {variable}: {}",
                variables[*variable]
            );
        }
        assert_eq!(
            variables["METRICS_NAMESPACE"],
            reference("MetricsNamespace"),
            "{function}"
        );
    }
    assert_eq!(
        template["Parameters"]["MetricsNamespace"]["Default"], DEFAULT_NAMESPACE,
        "the stack's default is the code's"
    );
}

#[test]
fn environment_names_match_what_the_code_reads() {
    for store in Store::ALL {
        let template = store.template(&load_template());
        for (function, expected) in [
            (INSTALL_FUNCTION, INSTALL_ENV),
            (VENDOR_FUNCTION, VENDOR_ENV),
            (WORKER_FUNCTION, WORKER_ENV),
        ] {
            let actual: BTreeSet<String> =
                environment(&template, function).keys().cloned().collect();
            let mut set_by_template = names(expected);
            for variable in DERIVED_WHEN_UNSET {
                set_by_template.remove(*variable);
            }
            set_by_template.extend(names(store.env()));
            assert_eq!(actual, set_by_template, "{function} with {store:?}");
        }
    }
}

#[test]
fn both_functions_share_the_stores_the_platforms_and_the_lease_settings() {
    let template = load_template();
    let install = environment(&template, INSTALL_FUNCTION);
    let vendor = environment(&template, VENDOR_FUNCTION);
    let worker = environment(&template, WORKER_FUNCTION);
    for variable in SHARED_ENV {
        assert!(
            install.contains_key(*variable),
            "install callback: {variable}"
        );
        assert_eq!(install[*variable], vendor[*variable], "{variable}");
        // The worker mints through the same leases, for Shoptet only.
        if !variable.starts_with("SHOPRENTER_") {
            assert_eq!(
                worker.get(*variable),
                Some(&vendor[*variable]),
                "worker {variable}"
            );
        }
    }
    // The bus the install callback forwards to is the publisher's.
    for function in [INSTALL_FUNCTION, WORKER_FUNCTION] {
        assert_eq!(
            environment(&template, function)["EVENT_BUS_NAME"],
            environment(&template, PUBLISHER_FUNCTION)["EVENT_BUS_NAME"],
            "{function}"
        );
    }
}

#[test]
fn optional_secrets_default_to_unset_and_accept_only_secret_arns() {
    let template = load_template();
    let pattern = &template["Parameters"]["ShoptetClientSecretArn"]["AllowedPattern"];
    assert!(pattern.is_string());
    for (parameter, function, variable) in [
        (
            "ShoptetClientSecretArn",
            INSTALL_FUNCTION,
            "SHOPTET_CLIENT_SECRET_ID",
        ),
        (
            "ShoptetWebhookKeySecretArn",
            INSTALL_FUNCTION,
            "SHOPTET_WEBHOOK_KEY_SECRET_ID",
        ),
        (
            "ShoprenterClientSecretArn",
            INSTALL_FUNCTION,
            "SHOPRENTER_CLIENT_SECRET_ID",
        ),
        (
            "ShoprenterClientSecretArn",
            VENDOR_FUNCTION,
            "SHOPRENTER_CLIENT_SECRET_ID",
        ),
    ] {
        let declaration = &template["Parameters"][parameter];
        assert_eq!(declaration["Default"], "", "{parameter}");
        assert_eq!(&declaration["AllowedPattern"], pattern, "{parameter}");
        assert_eq!(
            environment(&template, function)[variable],
            reference(parameter),
            "{function} {variable}"
        );
    }
}

/// The install callback refuses to start with only one of the two: the
/// stack refuses such parameters before anything is deployed.
#[test]
fn shoprenter_app_credentials_are_set_together_or_not_at_all() {
    let template = load_template();
    let empty = |parameter: &str| json!({"Fn::Equals": [reference(parameter), ""]});
    let set = |parameter: &str| json!({"Fn::Not": [empty(parameter)]});
    let (id, secret) = ("ShoprenterClientId", "ShoprenterClientSecretArn");
    assert_eq!(
        template["Rules"]["ShoprenterAppCredentialsGoTogether"]["Assertions"][0]["Assert"],
        json!({"Fn::Or": [
            {"Fn::And": [empty(id), empty(secret)]},
            {"Fn::And": [set(id), set(secret)]},
        ]})
    );
    for function in [INSTALL_FUNCTION, VENDOR_FUNCTION] {
        let variables = environment(&template, function);
        assert_eq!(
            variables["SHOPRENTER_CLIENT_ID"],
            reference(id),
            "{function}"
        );
        assert_eq!(
            variables["SHOPRENTER_CLIENT_SECRET_ID"],
            reference(secret),
            "{function}"
        );
    }
}

/// With either installation store, every variable is a literal or a `Ref`
/// to a parameter or to a resource the stack then has.
#[test]
fn environment_refs_name_existing_parameters_or_resources() {
    // Every combination of the conditions the variables' `Fn::If`s name.
    let mut templates = Vec::new();
    for store in Store::ALL {
        for creates_bus in [true, false] {
            for custom_url in [true, false] {
                let template = with_condition(
                    &with_condition(&store.template(&load_template()), CREATES_BUS, creates_bus),
                    HAS_CUSTOM_ESHOP_URL,
                    custom_url,
                );
                templates.push((store, template));
            }
        }
    }
    for (store, template) in templates {
        for function in [INSTALL_FUNCTION, VENDOR_FUNCTION, WORKER_FUNCTION] {
            for (variable, value) in environment(&template, function) {
                match value {
                    Value::String(_) => {}
                    other if other.get("Fn::Sub").is_some() => {
                        let text = other["Fn::Sub"].as_str().unwrap_or_else(|| {
                            panic!("{function} {variable}: a one-argument Fn::Sub")
                        });
                        substitute(text, |name| {
                            let target = name.split('.').next().unwrap_or(name);
                            assert!(
                                name.starts_with("AWS::")
                                    || template["Resources"].get(target).is_some(),
                                "{function} {variable} with {store:?}: ${{{name}}} names nothing"
                            );
                            String::new()
                        });
                    }
                    other => {
                        let target = other["Ref"].as_str().unwrap_or_else(|| {
                            panic!("{function} {variable} with {store:?}: literal or Ref only")
                        });
                        assert!(
                            template["Parameters"].get(target).is_some()
                                || template["Resources"].get(target).is_some(),
                            "{function} {variable} with {store:?}: Ref {target} names nothing"
                        );
                    }
                }
            }
        }
    }
}

/// Environment the way Lambda would see it from the template: literals as
/// written, parameters at their defaults (or `overrides`), sample values for
/// parameters without a default. Records every variable the code asks for.
struct TemplateEnv<'a> {
    template: &'a Value,
    variables: &'a serde_json::Map<String, Value>,
    overrides: BTreeMap<String, String>,
    read: RefCell<BTreeSet<String>>,
}

impl<'a> TemplateEnv<'a> {
    fn new(template: &'a Value, function: &str) -> Self {
        Self {
            template,
            variables: environment(template, function),
            overrides: BTreeMap::new(),
            read: RefCell::new(BTreeSet::new()),
        }
    }

    fn get(&self, variable: &str) -> Option<String> {
        self.read.borrow_mut().insert(variable.to_owned());
        let value = self.variables.get(variable)?;
        if let Some(parameter) = value.get("Ref").and_then(Value::as_str)
            && let Some(value) = self.overrides.get(parameter)
        {
            return Some(value.clone());
        }
        env_value(self.template, value).or_else(|| sample(variable).map(str::to_owned))
    }
}

/// Values for the parameters a deployer must fill in (no default).
fn sample(variable: &str) -> Option<&'static str> {
    Some(match variable {
        "SHOPTET_OAUTH_URL" => "https://12345.myshoptet.com",
        "SHOPTET_CLIENT_ID" => "client-id",
        "SHOPTET_CLIENT_SECRET_ID" => {
            "arn:aws:secretsmanager:eu-central-1:123456789012:secret:addon-AbCdEf"
        }
        "SHOPTET_REDIRECT_URI" => {
            "https://abc123.execute-api.eu-central-1.amazonaws.com/shoptet/install"
        }
        "TOKEN_TABLE" => "stack-TokenTable-ABC",
        "TOKEN_KEY_ID" => "5678abcd-12ab-34cd-56ef-1234567890ab",
        "REGISTRY_TABLE" => "stack-RegistryTable-ABC",
        "INSTALLATION_TABLE" => "stack-InstallationTable-ABC",
        "INSTALLATION_KEY_ID" => "1234abcd-12ab-34cd-56ef-1234567890ab",
        "EVENT_BUS_NAME" => "stack-events",
        // The worker's: an Fn::If of the API's URL, and its queue's Ref.
        "SHOPTET_WEBHOOK_URL" => {
            "https://abc123.execute-api.eu-central-1.amazonaws.com/shoptet/eshop-webhook"
        }
        "WEBHOOK_QUEUE_URL" => {
            "https://sqs.eu-central-1.amazonaws.com/123456789012/stack-WebhookRegistrationQueue-ABC"
        }
        "EVENT_WEBHOOK_URL" => "https://backend.example/broker-events",
        "EVENT_WEBHOOK_SECRET_ID" => {
            "arn:aws:secretsmanager:eu-central-1:123456789012:secret:events-AbCdEf"
        }
        _ => return None,
    })
}

fn load_install(env: &TemplateEnv) -> Result<(), String> {
    install_callback::AwsInstallConfig::from_env(&|variable: &str| env.get(variable))
        .map(|config| assert!(config.install.install_deadline.as_millis() < 5_000))
        .map_err(|error| error.to_string())
}

fn load_vendor(env: &TemplateEnv) -> Result<(), String> {
    token_vendor::AwsVendorConfig::from_env(&|variable: &str| env.get(variable))
        .map(|config| assert!(config.vendor.shoptet_oauth_url.is_some()))
        .map_err(|error| error.to_string())
}

fn load_worker(env: &TemplateEnv) -> Result<(), String> {
    shoptet_webhooks::AwsWebhooksConfig::from_env(&|variable: &str| env.get(variable))
        .map(|config| assert!(config.vendor.vendor.shoptet_oauth_url.is_some()))
        .map_err(|error| error.to_string())
}

type Loader = fn(&TemplateEnv) -> Result<(), String>;

const LOADERS: [(&str, &[&str], Loader); 2] = [
    (INSTALL_FUNCTION, INSTALL_ENV, load_install),
    (VENDOR_FUNCTION, VENDOR_ENV, load_vendor),
];

/// Runs each function's real configuration loader on the template's
/// environment, with either installation store: it accepts it and reads
/// exactly the expected variables.
#[test]
fn config_loaders_accept_the_template_and_read_exactly_the_expected_variables() {
    for store in Store::ALL {
        let template = store.template(&load_template());
        for (function, expected, load) in LOADERS {
            let mut env = TemplateEnv::new(&template, function);
            env.overrides
                .insert("InstallationStore".to_owned(), store.parameter().to_owned());
            load(&env).unwrap_or_else(|error| {
                panic!("{function} rejects the template with {store:?}: {error}")
            });
            let mut expected = names(expected);
            expected.extend(names(store.env()));
            assert_eq!(env.read.into_inner(), expected, "{function} with {store:?}");
        }
    }
}

/// The worker's real loader takes the template's environment, with either
/// installation store, with and without `ShoptetWebhookEvents`, and reads
/// exactly [`WORKER_ENV`] (`SHOPTET_WEBHOOK_URL` only with events: without,
/// it registers nothing and needs no URL), Shoprenter's variables the
/// template leaves unset, and its store's.
#[test]
fn the_workers_loader_accepts_the_template_with_and_without_events() {
    for store in Store::ALL {
        let template = store.template(&load_template());
        for events in ["", "order:create,order:paid"] {
            let mut env = TemplateEnv::new(&template, WORKER_FUNCTION);
            env.overrides
                .insert("InstallationStore".to_owned(), store.parameter().to_owned());
            env.overrides
                .insert("ShoptetWebhookEvents".to_owned(), events.to_owned());
            let config = shoptet_webhooks::AwsWebhooksConfig::from_env(&|variable: &str| {
                env.get(variable)
            })
            .unwrap_or_else(|error| {
                panic!("the worker rejects the template with {store:?}, events {events:?}: {error}")
            });
            assert_eq!(
                config.webhooks.subscription.is_some(),
                !events.is_empty(),
                "events {events:?}"
            );
            assert!(config.vendor.vendor.shoptet_oauth_url.is_some());
            let mut expected = names(WORKER_ENV);
            expected.extend(names(WORKER_UNSET_ENV));
            expected.extend(names(store.env()));
            if events.is_empty() {
                expected.remove("SHOPTET_WEBHOOK_URL");
            }
            assert_eq!(
                env.read.into_inner(),
                expected,
                "{store:?}, events {events:?}"
            );
        }
    }
}

/// Every value a numeric parameter allows is one the code accepts.
#[test]
fn config_loaders_accept_every_bound_of_the_numeric_parameters() {
    let template = load_template();
    let mut checked = 0;
    let worker: (&str, &[&str], Loader) = (WORKER_FUNCTION, WORKER_ENV, load_worker);
    for (function, _, load) in LOADERS.into_iter().chain([worker]) {
        for value in environment(&template, function).values() {
            let Some(parameter) = value.get("Ref").and_then(Value::as_str) else {
                continue;
            };
            let declaration = &template["Parameters"][parameter];
            if declaration["Type"] != "Number" {
                continue;
            }
            for bound in ["MinValue", "MaxValue"] {
                let limit = &declaration[bound];
                assert!(limit.is_number(), "{parameter} has no {bound}");
                let mut env = TemplateEnv::new(&template, function);
                env.overrides
                    .insert(parameter.to_owned(), limit.to_string());
                load(&env).unwrap_or_else(|error| {
                    panic!("{function} rejects {parameter} = {bound} {limit}: {error}")
                });
                checked += 1;
            }
        }
    }
    // Both bounds of RefreshMarginSeconds, LeaseSeconds and
    // SuspendedRecheckSeconds for each of the three functions, and of
    // ShoprenterHmacMaxAgeSeconds and UninstallRecoveryDays for the install
    // callback.
    assert_eq!(checked, 22, "numeric parameter bounds checked");
}

// ---- alarms and dashboard

/// Every metric the functions publish, with its detailed dimension set
/// (shared/runtime/src/metrics.rs; each is also published with `["Service"]`
/// alone). The match is exhaustive: a new metric must be placed here, in
/// [`METRICS`], and then on the dashboard.
fn detailed_dimensions(metric: Metric) -> &'static [&'static str] {
    match metric {
        Metric::Vends => &["Service", "Platform", "Source"],
        Metric::VendErrors
        | Metric::MintFailures
        | Metric::InstallFailures
        | Metric::InstallRejects => &["Service", "Platform", "Code"],
        Metric::Mints
        | Metric::MintLatency
        | Metric::CapRefusals
        | Metric::LeaseWaits
        | Metric::LeaseWaitDuration => &["Service", "Platform"],
        Metric::StoreErrors => &["Service", "Operation"],
        Metric::Installs => &["Service", "Platform", "Outcome"],
        Metric::LifecycleEvents => &["Service", "Platform", "Event", "Outcome"],
        // Written with no dimension of their own: [Service] only.
        Metric::Crashes | Metric::Timeouts => &["Service"],
        // The event publisher's (issue 22): [Service] only, the set its
        // alarms watch and the dashboard graphs.
        Metric::EventsPublished
        | Metric::PublishFailures
        | Metric::OldestChangeAge
        | Metric::WebhookDeliveries
        | Metric::WebhookFailures => &["Service"],
        // Shoptet e-shop webhooks (issue 23): the install callback's route
        // and the worker.
        Metric::EshopWebhooksForwarded | Metric::EshopWebhookDuplicates => &["Service", "Source"],
        Metric::EshopWebhookRejects
        | Metric::WebhookRegistrationFailures
        | Metric::ReconciliationFailures => &["Service", "Code"],
        Metric::WebhookRegistrations | Metric::Reconciliations => &["Service"],
    }
}

const METRICS: [Metric; 27] = [
    Metric::Vends,
    Metric::VendErrors,
    Metric::Mints,
    Metric::MintLatency,
    Metric::MintFailures,
    Metric::CapRefusals,
    Metric::LeaseWaits,
    Metric::LeaseWaitDuration,
    Metric::StoreErrors,
    Metric::Installs,
    Metric::InstallFailures,
    Metric::InstallRejects,
    Metric::LifecycleEvents,
    Metric::Crashes,
    Metric::Timeouts,
    Metric::EventsPublished,
    Metric::PublishFailures,
    Metric::OldestChangeAge,
    Metric::WebhookDeliveries,
    Metric::WebhookFailures,
    Metric::EshopWebhooksForwarded,
    Metric::EshopWebhookDuplicates,
    Metric::EshopWebhookRejects,
    Metric::WebhookRegistrations,
    Metric::WebhookRegistrationFailures,
    Metric::Reconciliations,
    Metric::ReconciliationFailures,
];

/// What an alarm watches: (namespace, metric, dimension name, dimension
/// value), the namespace and value as JSON text (a literal or a `Ref`).
type Watched = (String, String, String, String);

fn service_metric(metric: Metric, service: Service) -> Watched {
    (
        reference("MetricsNamespace").to_string(),
        metric.name().to_owned(),
        SERVICE_DIMENSION.to_owned(),
        json!(service.as_str()).to_string(),
    )
}

fn publisher_metric(metric: Metric) -> Watched {
    service_metric(metric, PUBLISHER_SERVICE)
}

/// The depth of a dead-letter queue of the template.
fn dead_letters(queue: &str) -> Watched {
    (
        json!("AWS/SQS").to_string(),
        "ApproximateNumberOfMessagesVisible".to_owned(),
        "QueueName".to_owned(),
        get_att(queue, "QueueName").to_string(),
    )
}

/// Metrics that are a level, not a count: their alarms take the Maximum.
const GAUGES: [&str; 2] = ["OldestChangeAge", "ApproximateNumberOfMessagesVisible"];

fn vendor_lambda_metric(metric: &str) -> Watched {
    (
        json!("AWS/Lambda").to_string(),
        metric.to_owned(),
        "FunctionName".to_owned(),
        reference(VENDOR_FUNCTION).to_string(),
    )
}

fn watched(id: &str, alarm: &Value) -> Watched {
    let properties = &alarm["Properties"];
    let dimensions = properties["Dimensions"]
        .as_array()
        .unwrap_or_else(|| panic!("{id}: no Dimensions"));
    assert_eq!(
        dimensions.len(),
        1,
        "{id}: alarms watch one aggregate dimension"
    );
    (
        properties["Namespace"].to_string(),
        properties["MetricName"]
            .as_str()
            .unwrap_or_else(|| panic!("{id}: no MetricName"))
            .to_owned(),
        dimensions[0]["Name"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        dimensions[0]["Value"].to_string(),
    )
}

#[test]
fn every_failure_an_operator_must_act_on_has_exactly_one_alarm() {
    let template = load_template();
    let expected: BTreeSet<Watched> = [
        service_metric(Metric::InstallFailures, INSTALL_SERVICE),
        service_metric(Metric::MintFailures, VENDOR_SERVICE),
        service_metric(Metric::MintFailures, INSTALL_SERVICE),
        service_metric(Metric::CapRefusals, VENDOR_SERVICE),
        service_metric(Metric::StoreErrors, VENDOR_SERVICE),
        service_metric(Metric::StoreErrors, INSTALL_SERVICE),
        service_metric(Metric::Crashes, VENDOR_SERVICE),
        service_metric(Metric::Crashes, INSTALL_SERVICE),
        service_metric(Metric::Timeouts, VENDOR_SERVICE),
        service_metric(Metric::Timeouts, INSTALL_SERVICE),
        vendor_lambda_metric("Throttles"),
        publisher_metric(Metric::PublishFailures),
        publisher_metric(Metric::OldestChangeAge),
        publisher_metric(Metric::WebhookFailures),
        dead_letters(EVENTS_DLQ),
        dead_letters(WEBHOOK_DLQ),
        service_metric(Metric::WebhookRegistrationFailures, WORKER_SERVICE),
        service_metric(Metric::ReconciliationFailures, WORKER_SERVICE),
        dead_letters(REGISTRATION_DLQ),
    ]
    .into_iter()
    .collect();
    let alarms = resources_of_type(&template, "AWS::CloudWatch::Alarm");
    let actual: Vec<Watched> = alarms
        .iter()
        .map(|(id, alarm)| watched(id, alarm))
        .collect();
    assert_eq!(actual.len(), expected.len(), "one alarm each: {actual:?}");
    assert_eq!(actual.into_iter().collect::<BTreeSet<_>>(), expected);
}

/// Lambda's `Errors` counts every function error, and over direct
/// invocation each answered refusal (`not_installed`, `addon_suspended`,
/// `invalid_request`, `rate_limited`) is one: no alarm may watch it, nor
/// any metric the functions write for answered refusals.
#[test]
fn no_alarm_watches_a_metric_that_answered_refusals_move() {
    let template = load_template();
    for (id, alarm) in resources_of_type(&template, "AWS::CloudWatch::Alarm") {
        let (_, metric, _, _) = watched(id, alarm);
        assert!(
            ![
                "Errors",
                "VendErrors",
                "InstallRejects",
                "EshopWebhookRejects",
                "Invocations"
            ]
            .contains(&metric.as_str()),
            "{id} watches {metric}, which refusals the broker answered on purpose move"
        );
    }
}

/// Each alarm leads to its own section of docs/runbooks.md: the
/// description ends with `Runbook: docs/runbooks.md#<alarm name suffix>`
/// and the document has that heading.
#[test]
fn every_alarm_points_to_its_runbook_section_and_the_section_exists() {
    let template = load_template();
    let runbooks = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/runbooks.md"),
    )
    .expect("docs/runbooks.md");
    let headings: BTreeSet<&str> = runbooks
        .lines()
        .filter_map(|line| line.strip_prefix("## "))
        .map(|heading| heading.trim_matches('`'))
        .collect();
    for (id, alarm) in resources_of_type(&template, "AWS::CloudWatch::Alarm") {
        let properties = &alarm["Properties"];
        let name = properties["AlarmName"]["Fn::Sub"].as_str().unwrap();
        let suffix = name.strip_prefix("${AWS::StackName}-").unwrap();
        let description = properties["AlarmDescription"].as_str().unwrap_or_default();
        assert!(
            description.ends_with(&format!("Runbook: docs/runbooks.md#{suffix}")),
            "{id}: {description}"
        );
        assert!(
            headings.contains(suffix),
            "{id}: no `## {suffix}` in docs/runbooks.md"
        );
    }
}

/// Lambda drops a JSON line whose `level` is below `ApplicationLogLevel`;
/// the metric lines carry [`EMF_LOG_LEVEL`], so every level the template
/// allows must be at or below it, or the metrics vanish at that level.
#[test]
fn every_log_level_the_template_allows_lets_the_metric_lines_through() {
    const LAMBDA_LEVELS: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
    let rank = |level: &str| LAMBDA_LEVELS.iter().position(|l| *l == level).unwrap();
    let template = load_template();
    let allowed = template["Parameters"]["LogLevel"]["AllowedValues"]
        .as_array()
        .unwrap();
    assert!(!allowed.is_empty());
    for level in allowed {
        let level = level.as_str().unwrap();
        assert!(
            rank(level) <= rank(EMF_LOG_LEVEL),
            "at LogLevel={level} Lambda drops the {EMF_LOG_LEVEL} metric lines"
        );
    }
}

#[test]
fn every_alarm_notifies_the_topic_and_stays_quiet_without_data() {
    let template = load_template();
    assert_eq!(resource(&template, ALARM_TOPIC)["Type"], "AWS::SNS::Topic");
    let alarms = resources_of_type(&template, "AWS::CloudWatch::Alarm");
    assert!(!alarms.is_empty());
    for (id, alarm) in alarms {
        let properties = &alarm["Properties"];
        assert_eq!(
            properties["AlarmActions"],
            json!([reference(ALARM_TOPIC)]),
            "{id}"
        );
        assert_eq!(
            properties["OKActions"],
            json!([reference(ALARM_TOPIC)]),
            "{id}: the all-clear goes where the alarm went"
        );
        let metric = properties["MetricName"].as_str().unwrap_or_default();
        if properties["Namespace"] == "AWS/SQS" {
            // SQS reports a queue's depth only while the queue is active: a
            // dead letter left alone for six hours stops the data, and
            // notBreaching would then clear the alarm with the letter still
            // there. `ignore` keeps the state until SQS reports again.
            assert_eq!(properties["TreatMissingData"], "ignore", "{id}");
        } else {
            // A quiet minute means nothing failed, not that something is broken.
            assert_eq!(properties["TreatMissingData"], "notBreaching", "{id}");
        }
        if GAUGES.contains(&metric) {
            assert_eq!(
                properties["Statistic"], "Maximum",
                "{id}: {metric} is a level"
            );
        } else {
            assert_eq!(properties["Statistic"], "Sum", "{id}: counts of failures");
        }
        assert_eq!(
            properties["ComparisonOperator"], "GreaterThanOrEqualToThreshold",
            "{id}"
        );
        let threshold = properties["Threshold"].as_u64().unwrap_or(0);
        assert!(threshold >= 1, "{id}: threshold {threshold}");
        let period = properties["Period"].as_u64().unwrap_or(0);
        assert!(
            period >= 60 && period % 60 == 0,
            "{id}: EMF metrics have one-minute resolution, period {period}"
        );
        let name = &properties["AlarmName"]["Fn::Sub"];
        assert!(
            name.as_str()
                .is_some_and(|name| name.starts_with("${AWS::StackName}-")),
            "{id}: alarm names carry the stack's name, got {name}"
        );
    }
}

#[test]
fn the_alarm_email_is_subscribed_only_when_given() {
    let template = load_template();
    let parameter = &template["Parameters"]["AlarmEmail"];
    assert_eq!(parameter["Default"], "", "optional");
    assert!(parameter["AllowedPattern"].is_string());
    assert_eq!(
        template["Conditions"]["HasAlarmEmail"],
        json!({"Fn::Not": [{"Fn::Equals": [reference("AlarmEmail"), ""]}]})
    );
    let subscriptions = resources_of_type(&template, "AWS::SNS::Subscription");
    assert_eq!(subscriptions.len(), 1, "{subscriptions:?}");
    let (id, subscription) = subscriptions[0];
    assert_eq!(subscription["Condition"], "HasAlarmEmail", "{id}");
    assert_eq!(
        subscription["Properties"],
        json!({
            "TopicArn": reference(ALARM_TOPIC),
            "Protocol": "email",
            "Endpoint": reference("AlarmEmail"),
        }),
        "{id}"
    );
}

/// `text` with every `${name}` of an `Fn::Sub` replaced by `value(name)`.
fn substitute(text: &str, mut value: impl FnMut(&str) -> String) -> String {
    let mut result = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let end = rest[start..]
            .find('}')
            .map(|end| start + end)
            .unwrap_or_else(|| panic!("unclosed ${{ in {rest}"));
        result.push_str(&rest[..start]);
        result.push_str(&value(&rest[start + 2..end]));
        rest = &rest[end + 1..];
    }
    result.push_str(rest);
    result
}

/// The dashboard's body as JSON, with the namespace parameter left as the
/// marker `${MetricsNamespace}` and every other substitution checked to
/// name a parameter, a resource (or its attribute) or a pseudo parameter.
/// The body is a two-argument `!Sub`: each of its variables is a string or
/// a one-argument `!Sub`, so decide its conditions first
/// ([`with_condition`]); its text is spliced in and checked the same way.
fn dashboard_body(template: &Value) -> Value {
    let dashboards = resources_of_type(template, "AWS::CloudWatch::Dashboard");
    assert_eq!(dashboards.len(), 1);
    let sub = dashboards[0].1["Properties"]["DashboardBody"]["Fn::Sub"]
        .as_array()
        .expect("DashboardBody is a two-argument !Sub");
    let body = sub[0].as_str().expect("the body is text");
    let variables = sub[1].as_object().expect("the variables are a map");
    let names_something = |name: &str| {
        let target = name.split('.').next().unwrap_or(name);
        assert!(
            name.starts_with("AWS::")
                || template["Parameters"].get(target).is_some()
                || template["Resources"].get(target).is_some(),
            "dashboard: ${{{name}}} names nothing"
        );
        format!("${{{name}}}")
    };
    let text = substitute(body, |name| match variables.get(name) {
        Some(Value::String(text)) => text.clone(),
        Some(value) => {
            let text = value["Fn::Sub"].as_str().unwrap_or_else(|| {
                panic!("dashboard variable {name}: a string or a one-argument !Sub, got {value}")
            });
            substitute(text, names_something)
        }
        None => names_something(name),
    });
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("dashboard body: {error}\n{text}"))
}

/// Every metric the dashboard graphs from the broker's namespace, with the
/// dimension names it asks for: from metric rows
/// `[namespace, name, dimension, value, …]` and from SEARCH expressions
/// `{"namespace",Dim,…} MetricName="name"`.
fn dashboard_metrics(body: &Value) -> BTreeSet<(String, Vec<String>)> {
    let namespace = "${MetricsNamespace}";
    let mut found = BTreeSet::new();
    for widget in body["widgets"].as_array().expect("widgets") {
        for row in widget["properties"]["metrics"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let row = row.as_array().expect("metric rows are arrays");
            if let Some(expression) = row[0]["expression"].as_str() {
                let Some(schema) = expression
                    .strip_prefix("SEARCH('{")
                    .and_then(|rest| rest.split_once("} "))
                else {
                    panic!("unexpected expression {expression}");
                };
                let (schema, query) = schema;
                let mut parts = schema.split(',');
                let searched = parts.next().unwrap_or_default();
                if searched != format!("\"{namespace}\"") {
                    assert_eq!(searched, "AWS/Lambda", "{expression}");
                    continue;
                }
                let metric = query
                    .split("MetricName=\"")
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                    .unwrap_or_else(|| panic!("{expression}: no MetricName"));
                found.insert((metric.to_owned(), parts.map(str::to_owned).collect()));
                continue;
            }
            match row[0].as_str() {
                Some(space) if space == namespace => {
                    let metric = row[1].as_str().unwrap().to_owned();
                    let dimensions = row[2..]
                        .iter()
                        .filter_map(Value::as_str)
                        .step_by(2)
                        .map(str::to_owned)
                        .collect();
                    found.insert((metric, dimensions));
                }
                Some("AWS/Lambda") => {}
                other => panic!("dashboard graphs a namespace other than the parameter: {other:?}"),
            }
        }
    }
    found
}

#[test]
fn the_dashboard_graphs_every_metric_in_the_namespace_parameter_with_its_dimensions() {
    let template = with_condition(&load_template(), HAS_WEBHOOK, true);
    let body = dashboard_body(&template);
    let graphed = dashboard_metrics(&body);
    for metric in METRICS {
        let (metric, detailed) = (metric.name(), detailed_dimensions(metric));
        let dimension_sets: Vec<&Vec<String>> = graphed
            .iter()
            .filter(|(name, _)| name == metric)
            .map(|(_, dimensions)| dimensions)
            .collect();
        assert!(
            !dimension_sets.is_empty(),
            "{metric} is not on the dashboard"
        );
        for dimensions in dimension_sets {
            assert!(
                *dimensions == [SERVICE_DIMENSION] || dimensions == detailed,
                "{metric} graphed by {dimensions:?}: published only by [Service] and {detailed:?}"
            );
        }
    }
    let known: BTreeSet<&str> = METRICS.iter().map(|metric| metric.name()).collect();
    for (metric, _) in &graphed {
        assert!(known.contains(metric.as_str()), "{metric} is not published");
    }
}

#[test]
fn the_dashboard_shows_every_alarm_and_the_outputs_lead_to_it_and_the_topic() {
    // With and without the webhook, whose alarms exist only with it.
    for webhook in [true, false] {
        let template = with_condition(&load_template(), HAS_WEBHOOK, webhook);
        let body = dashboard_body(&template);
        let shown: BTreeSet<String> = body["widgets"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|widget| widget["type"] == "alarm")
            .flat_map(|widget| widget["properties"]["alarms"].as_array().unwrap())
            .map(|alarm| alarm.as_str().unwrap().to_owned())
            .collect();
        let alarms: BTreeSet<String> = resources_of_type(&template, "AWS::CloudWatch::Alarm")
            .into_iter()
            .map(|(id, _)| format!("${{{id}.Arn}}"))
            .collect();
        assert_eq!(shown, alarms, "EventWebhookUrl set: {webhook}");
    }
    let template = load_template();

    let outputs = &template["Outputs"];
    assert_eq!(outputs["AlarmTopicArn"]["Value"], reference(ALARM_TOPIC));
    assert_eq!(
        outputs["DashboardName"]["Value"],
        reference("BrokerDashboard")
    );
    let url = outputs["DashboardUrl"]["Value"]["Fn::Sub"]
        .as_str()
        .expect("DashboardUrl is a !Sub");
    assert!(
        url.ends_with("#dashboards:name=${BrokerDashboard}"),
        "{url}"
    );
}

/// `SecretPrefix` must end in `/`, as the code requires: the grants are
/// `<prefix>shoptet/*` and `<prefix>shoprenter/*`, so a prefix like `shop`
/// could never reach `shopify-db-password`'s neighbours' names by accident.
#[test]
fn the_secret_prefix_must_end_in_a_slash_and_the_default_does() {
    let template = load_template();
    let parameter = &template["Parameters"]["SecretPrefix"];
    let pattern = parameter["AllowedPattern"].as_str().unwrap();
    assert_eq!(pattern, "^[A-Za-z0-9/_+=.@-]*/$");
    let default = parameter["Default"].as_str().unwrap();
    assert!(default.ends_with('/'), "{default}");
    assert!(broker_aws::storage::SecretNames::new(default).is_ok());
    assert!(broker_aws::storage::SecretNames::new("shop").is_err());
}

/// An anonymous flood stays at API Gateway: the four public routes are
/// throttled per route (parameters with defaults), and the install callback
/// reserves (and is capped at) its own concurrency, so it can never take the
/// vendor's or the account's capacity.
#[test]
fn the_public_routes_are_throttled_and_the_install_callback_reserves_its_concurrency() {
    let template = load_template();
    let events = template["Resources"][INSTALL_FUNCTION]["Properties"]["Events"]
        .as_object()
        .unwrap();
    let throttle = json!({
        "ThrottlingRateLimit": {"Ref": "PublicRouteRateLimit"},
        "ThrottlingBurstLimit": {"Ref": "PublicRouteBurstLimit"},
    });
    // E-shop webhooks come far more often than installs: their route has
    // its own throttle, so that their flood never takes the install routes'.
    let eshop_throttle = json!({
        "ThrottlingRateLimit": {"Ref": "EshopWebhookRateLimit"},
        "ThrottlingBurstLimit": {"Ref": "EshopWebhookBurstLimit"},
    });
    let mut public = Vec::new();
    for (name, event) in events {
        let properties = &event["Properties"];
        if properties["Auth"]["Authorizer"] == "NONE" {
            let path = properties["Path"].as_str().unwrap().to_owned();
            let expected = if path == "/shoptet/eshop-webhook" {
                &eshop_throttle
            } else {
                &throttle
            };
            assert_eq!(&properties["RouteSettings"], expected, "{name}");
            public.push(path);
        }
    }
    public.sort();
    assert_eq!(
        public,
        [
            "/shoprenter/install",
            "/shoprenter/uninstall",
            "/shoptet/eshop-webhook",
            "/shoptet/install",
            "/shoptet/webhook"
        ]
    );
    let parameters = &template["Parameters"];
    assert_eq!(parameters["PublicRouteRateLimit"]["Default"], 10);
    assert_eq!(parameters["PublicRouteBurstLimit"]["Default"], 20);
    assert_eq!(parameters["EshopWebhookRateLimit"]["Default"], 50);
    assert_eq!(parameters["EshopWebhookBurstLimit"]["Default"], 100);
    for parameter in ["EshopWebhookRateLimit", "EshopWebhookBurstLimit"] {
        assert_eq!(parameters[parameter]["Type"], "Number", "{parameter}");
        assert!(
            parameters[parameter]["MinValue"].as_u64() >= Some(1),
            "{parameter}: 0 would close the route"
        );
    }
    assert_eq!(
        parameters["InstallCallbackReservedConcurrency"]["Default"],
        10
    );
    assert_eq!(
        template["Resources"][INSTALL_FUNCTION]["Properties"]["ReservedConcurrentExecutions"],
        json!({"Fn::If": [
            "ReservesInstallCallbackConcurrency",
            {"Ref": "InstallCallbackReservedConcurrency"},
            {"Ref": "AWS::NoValue"}
        ]})
    );
    assert_eq!(
        template["Conditions"]["ReservesInstallCallbackConcurrency"],
        json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "InstallCallbackReservedConcurrency"}, 0]}]})
    );
}

#[test]
fn the_shoptet_install_source_allowlist_is_a_parameter_that_is_off_by_default() {
    let template = load_template();
    let parameter = &template["Parameters"]["ShoptetInstallSourceCidrs"];
    assert_eq!(parameter["Type"], "String");
    assert_eq!(
        parameter["Default"], "",
        "never on by default: a wrong list fails every install"
    );
    let description = parameter["Description"].as_str().unwrap();
    for range in ["78.24.15.64/26", "93.185.110.117/28", "185.184.254.0/24"] {
        assert!(
            description.contains(range),
            "both published sources name {range}"
        );
    }
    assert!(description.contains("unconfirmed"));
    assert_eq!(parameter["AllowedPattern"], "^[0-9a-fA-F:./, ]*$");
    assert_eq!(
        properties(&template, INSTALL_FUNCTION)["Environment"]["Variables"]["SHOPTET_INSTALL_SOURCE_CIDRS"],
        json!({"Ref": "ShoptetInstallSourceCidrs"})
    );
}

// ---- single-platform stacks

/// Each platform's settings are optional: an agency with only Shoptet
/// add-ons or only Shoprenter apps deploys without the other's.
#[test]
fn each_platforms_settings_default_to_empty_and_shoptets_go_together() {
    let template = load_template();
    for parameter in [
        "ShoptetOAuthUrl",
        "ShoptetClientId",
        "ShoprenterClientId",
        "ShoprenterClientSecretArn",
    ] {
        let declaration = &template["Parameters"][parameter];
        assert_eq!(declaration["Default"], "", "{parameter}");
        assert!(declaration.get("MinLength").is_none(), "{parameter}");
        if let Some(pattern) = declaration["AllowedPattern"].as_str() {
            assert!(
                pattern.starts_with("^$|"),
                "{parameter}: {pattern} refuses the empty default"
            );
        }
    }
    let empty = |parameter: &str| json!({"Fn::Equals": [reference(parameter), ""]});
    let set = |parameter: &str| json!({"Fn::Not": [empty(parameter)]});
    let (url, id) = ("ShoptetOAuthUrl", "ShoptetClientId");
    assert_eq!(
        template["Rules"]["ShoptetAddonSettingsGoTogether"]["Assertions"][0]["Assert"],
        json!({"Fn::Or": [
            {"Fn::And": [empty(url), empty(id)]},
            {"Fn::And": [set(url), set(id)]},
        ]})
    );
}

/// One kind of stack: its parameters as a deployer fills them in, and what
/// the functions must then serve.
struct PlatformVariant {
    name: &'static str,
    parameters: Vec<(&'static str, &'static str)>,
    serves_shoptet: bool,
    has_shoprenter_app: bool,
}

fn platform_variants() -> [PlatformVariant; 3] {
    let shoptet = [
        ("ShoptetOAuthUrl", "https://12345.myshoptet.com"),
        ("ShoptetClientId", "client-id"),
    ];
    let no_shoptet = [("ShoptetOAuthUrl", ""), ("ShoptetClientId", "")];
    let shoprenter = [
        ("ShoprenterClientId", "app-client-id"),
        (
            "ShoprenterClientSecretArn",
            "arn:aws:secretsmanager:eu-central-1:123456789012:secret:app-AbCdEf",
        ),
    ];
    [
        PlatformVariant {
            name: "Shoptet-only",
            parameters: shoptet.to_vec(),
            serves_shoptet: true,
            has_shoprenter_app: false,
        },
        PlatformVariant {
            name: "Shoprenter-only",
            parameters: [&no_shoptet[..], &shoprenter[..]].concat(),
            serves_shoptet: false,
            has_shoprenter_app: true,
        },
        PlatformVariant {
            name: "both platforms",
            parameters: [&shoptet[..], &shoprenter[..]].concat(),
            serves_shoptet: true,
            has_shoprenter_app: true,
        },
    ]
}

/// Runs both functions' real configuration loaders on the template's
/// environment for each kind of stack and either installation store: each
/// starts, and serves exactly the platforms configured.
#[test]
fn config_loaders_accept_a_shoptet_only_a_shoprenter_only_and_a_two_platform_stack() {
    for PlatformVariant {
        name: variant,
        parameters,
        serves_shoptet,
        has_shoprenter_app: has_app,
    } in platform_variants()
    {
        for store in Store::ALL {
            let template = store.template(&load_template());
            let context = format!("{variant} stack with {store:?}");
            let with_overrides = |function: &str| {
                let mut env = TemplateEnv::new(&template, function);
                env.overrides
                    .insert("InstallationStore".to_owned(), store.parameter().to_owned());
                for (parameter, value) in &parameters {
                    env.overrides
                        .insert((*parameter).to_owned(), (*value).to_owned());
                }
                env
            };
            let env = with_overrides(INSTALL_FUNCTION);
            let install =
                install_callback::AwsInstallConfig::from_env(&|variable: &str| env.get(variable))
                    .unwrap_or_else(|error| {
                        panic!("the install callback does not start on a {context}: {error}")
                    });
            assert_eq!(
                install.install.shoptet.is_some(),
                serves_shoptet,
                "{context}"
            );
            assert_eq!(install.shoprenter_app.is_some(), has_app, "{context}");
            let env = with_overrides(VENDOR_FUNCTION);
            let vendor =
                token_vendor::AwsVendorConfig::from_env(&|variable: &str| env.get(variable))
                    .unwrap_or_else(|error| {
                        panic!("the vendor does not start on a {context}: {error}")
                    });
            assert_eq!(
                vendor.vendor.shoptet_oauth_url.is_some(),
                serves_shoptet,
                "{context}"
            );
            assert_eq!(vendor.shoprenter_app.is_some(), has_app, "{context}");
        }
    }
}

// ---- lifecycle events (issue 22)

/// The bus the events go to: the one the stack creates, or the one
/// `EventBusName` names in this account and region.
fn event_bus_arn() -> Value {
    json!({"Fn::If": [
        CREATES_BUS,
        get_att(EVENT_BUS, "Arn"),
        {"Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${EventBusName}"},
    ]})
}

fn event_bus_name() -> Value {
    json!({"Fn::If": [CREATES_BUS, reference(EVENT_BUS), reference("EventBusName")]})
}

const WEBHOOK_RESOURCES: [&str; 6] = [
    WEBHOOK_SECRET,
    WEBHOOK_QUEUE,
    WEBHOOK_DLQ,
    WEBHOOK_QUEUE_POLICY,
    WEBHOOK_RULE,
    WEBHOOK_MAPPING,
];

#[test]
fn the_registry_stream_carries_both_images_and_the_table_keeps_its_data() {
    let template = load_template();
    assert_eq!(
        properties(&template, REGISTRY)["StreamSpecification"],
        json!({"StreamViewType": "NEW_AND_OLD_IMAGES"}),
        "the publisher tells a change from its before and after"
    );
    // stateful_resources.rs pins what would replace the table; the stream
    // is not among it (CloudFormation: "Update requires: No interruption").
    for (id, table) in resources_of_type(&template, "AWS::DynamoDB::Table") {
        if id != REGISTRY {
            assert!(
                table["Properties"].get("StreamSpecification").is_none(),
                "{id}: only the registry's changes are events"
            );
        }
    }
}

#[test]
fn the_stream_mapping_keeps_each_shops_order_and_dead_letters_what_it_gives_up() {
    let template = load_template();
    let mapping = resource(&template, STREAM_MAPPING);
    assert_eq!(mapping["Type"], "AWS::Lambda::EventSourceMapping");
    assert!(mapping.get("Condition").is_none(), "always on");
    assert_eq!(
        mapping["Properties"],
        json!({
            "FunctionName": reference(PUBLISHER_FUNCTION),
            "EventSourceArn": registry_stream_arn(),
            "StartingPosition": "TRIM_HORIZON",
            "BatchSize": 25,
            "MaximumBatchingWindowInSeconds": 0,
            // One batch per shard at a time: a shop's changes stay in order.
            "ParallelizationFactor": 1,
            "BisectBatchOnFunctionError": true,
            // Retried until too old, and given up before the stream's 24 h
            // retention trims the record unrecorded.
            "MaximumRetryAttempts": -1,
            "MaximumRecordAgeInSeconds": 82800,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "DestinationConfig": {"OnFailure": {"Destination": get_att(EVENTS_DLQ, "Arn")}},
        })
    );
    let age = mapping["Properties"]["MaximumRecordAgeInSeconds"]
        .as_u64()
        .unwrap();
    assert!(
        age < 24 * 3600,
        "{age} s: at or past the stream's retention"
    );
    // The publisher has no SAM events: both mappings are written out.
    assert!(
        properties(&template, PUBLISHER_FUNCTION)
            .get("Events")
            .is_none()
    );
}

#[test]
fn every_queue_is_encrypted_and_the_dead_letter_queues_keep_two_weeks() {
    let template = load_template();
    let queues = resources_of_type(&template, "AWS::SQS::Queue");
    assert_eq!(queues.len(), 5, "{queues:?}");
    for (id, queue) in queues {
        assert_eq!(queue["Properties"]["SqsManagedSseEnabled"], true, "{id}");
    }
    for queue in [EVENTS_DLQ, WEBHOOK_DLQ, REGISTRATION_DLQ] {
        assert_eq!(
            properties(&template, queue)["MessageRetentionPeriod"],
            14 * 24 * 3600,
            "{queue}: SQS's longest retention"
        );
    }
}

#[test]
fn the_publisher_puts_events_only_on_the_bus_and_reads_only_the_stream() {
    let template = with_condition(&load_template(), HAS_WEBHOOK, true);
    let log_group = get_att("EventPublisherLogGroup", "Arn");
    let expected = expected_grants(vec![
        (
            "WriteOwnLogs",
            allow(&["logs:CreateLogStream", "logs:PutLogEvents"], log_group),
        ),
        (
            "ReadRegistryStream",
            allow(
                &[
                    "dynamodb:DescribeStream",
                    "dynamodb:GetRecords",
                    "dynamodb:GetShardIterator",
                ],
                registry_stream_arn(),
            ),
        ),
        (
            "ListRegistryStreams",
            allow(&["dynamodb:ListStreams"], registry_streams_arn()),
        ),
        (
            "PublishEvents",
            allow(&["events:PutEvents"], event_bus_arn()),
        ),
        (
            "DeadLetterStreamBatches",
            allow(&["sqs:SendMessage"], get_att(EVENTS_DLQ, "Arn")),
        ),
        (
            "ConsumeWebhookQueue",
            allow(
                &[
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:GetQueueAttributes",
                ],
                get_att(WEBHOOK_QUEUE, "Arn"),
            ),
        ),
        (
            "ReadEventWebhookSecret",
            allow(
                &["secretsmanager:GetSecretValue"],
                reference(WEBHOOK_SECRET),
            ),
        ),
    ]);
    assert_eq!(grants(&template, PUBLISHER_ROLE), expected);
    let without = with_condition(&load_template(), HAS_WEBHOOK, false);
    let left: BTreeSet<String> = grants(&without, PUBLISHER_ROLE).into_keys().collect();
    assert_eq!(
        left,
        names(&[
            "WriteOwnLogs",
            "ReadRegistryStream",
            "ListRegistryStreams",
            "PublishEvents",
            "DeadLetterStreamBatches",
        ]),
        "without EventWebhookUrl, no queue to consume and no secret to read"
    );
    // No one else publishes events (but the install callback's e-shop
    // webhook route and the worker, on the same bus:
    // the_eshop_webhooks_are_forwarded_to_the_publishers_bus) or reads the
    // signing secret.
    for (document, statement) in policy_statements(&load_template()) {
        let granted = actions(statement);
        if granted.contains("events:PutEvents") {
            assert!(
                [PUBLISHER_ROLE, INSTALL_ROLE, WORKER_ROLE].contains(&owner(&document)),
                "{document}"
            );
            assert_eq!(
                statement["Resource"],
                event_bus_arn(),
                "{document}: the bus only"
            );
        }
        if as_list(statement, "Resource")
            .iter()
            .any(|resource| resource.to_string().contains(WEBHOOK_SECRET))
        {
            assert_eq!(owner(&document), PUBLISHER_ROLE, "{document}");
        }
    }
}

/// The publisher's real loader takes the template's environment, with and
/// without an endpoint, and reads exactly the variables it is given.
#[test]
fn the_publishers_loader_accepts_the_template_with_and_without_an_endpoint() {
    for webhook in [true, false] {
        let template = with_condition(&load_template(), HAS_WEBHOOK, webhook);
        let env = TemplateEnv::new(&template, PUBLISHER_FUNCTION);
        let config =
            event_publisher::PublisherConfig::from_env(&|variable: &str| env.get(variable))
                .unwrap_or_else(|error| panic!("the publisher rejects the template: {error}"));
        assert_eq!(config.webhook.is_some(), webhook);
        // Without an endpoint its secret is never asked for.
        let mut expected = names(PUBLISHER_ENV);
        expected.extend(names(if webhook {
            PUBLISHER_WEBHOOK_ENV
        } else {
            &["EVENT_WEBHOOK_URL"]
        }));
        assert_eq!(
            env.read.into_inner(),
            expected,
            "EventWebhookUrl set: {webhook}"
        );
    }
}

/// What functions/event-publisher reads, by whether `EventWebhookUrl` is set.
const PUBLISHER_ENV: &[&str] = &["EVENT_BUS_NAME", "METRICS_NAMESPACE"];
const PUBLISHER_WEBHOOK_ENV: &[&str] = &["EVENT_WEBHOOK_URL", "EVENT_WEBHOOK_SECRET_ID"];

#[test]
fn the_publisher_is_told_its_bus_and_only_with_a_url_the_webhook() {
    let template = load_template();
    let variables = environment(&template, PUBLISHER_FUNCTION);
    assert_eq!(variables["EVENT_BUS_NAME"], event_bus_name());
    assert_eq!(
        variables["METRICS_NAMESPACE"],
        reference("MetricsNamespace")
    );
    assert_eq!(
        variables["EVENT_WEBHOOK_URL"],
        json!({"Fn::If": [HAS_WEBHOOK, reference("EventWebhookUrl"), reference("AWS::NoValue")]})
    );
    assert_eq!(
        variables["EVENT_WEBHOOK_SECRET_ID"],
        json!({"Fn::If": [HAS_WEBHOOK, reference(WEBHOOK_SECRET), reference("AWS::NoValue")]})
    );
    for webhook in [true, false] {
        let template = with_condition(&load_template(), HAS_WEBHOOK, webhook);
        let actual: BTreeSet<String> = environment(&template, PUBLISHER_FUNCTION)
            .keys()
            .cloned()
            .collect();
        let mut expected = names(PUBLISHER_ENV);
        if webhook {
            expected.extend(names(PUBLISHER_WEBHOOK_ENV));
        }
        assert_eq!(actual, expected, "EventWebhookUrl set: {webhook}");
    }
    // SQS's advice: a visibility timeout of 6 times the function's timeout,
    // so a delivery still running is never handed out twice.
    let timeout = timeout_ms(&template, PUBLISHER_FUNCTION) / 1000;
    assert_eq!(timeout, 30);
    assert_eq!(
        properties(&template, WEBHOOK_QUEUE)["VisibilityTimeout"],
        6 * timeout
    );
}

#[test]
fn the_stack_creates_its_bus_unless_one_is_named_and_outputs_it() {
    let template = load_template();
    let parameters = &template["Parameters"];
    assert_eq!(parameters["EventBusName"]["Default"], "");
    assert_eq!(
        parameters["EventWebhookUrl"]["Default"], "",
        "off by default"
    );
    assert_eq!(
        parameters["EventWebhookUrl"]["AllowedPattern"],
        "^(https://[^\\s]+)?$"
    );
    assert_eq!(parameters["EventWebhookUrl"]["MaxLength"], 2000);
    let conditions = &template["Conditions"];
    assert_eq!(
        conditions[CREATES_BUS],
        json!({"Fn::Equals": [reference("EventBusName"), ""]})
    );
    assert_eq!(
        conditions[HAS_WEBHOOK],
        json!({"Fn::Not": [{"Fn::Equals": [reference("EventWebhookUrl"), ""]}]})
    );
    let bus = resource(&template, EVENT_BUS);
    assert_eq!(bus["Type"], "AWS::Events::EventBus");
    assert_eq!(bus["Condition"], CREATES_BUS);
    let outputs = &template["Outputs"];
    assert_eq!(outputs["EventBusName"]["Value"], event_bus_name());
    assert_eq!(outputs["EventBusArn"]["Value"], event_bus_arn());
    assert_eq!(
        outputs["EventWebhookSecretArn"]["Value"],
        reference(WEBHOOK_SECRET)
    );
    assert_eq!(outputs["EventWebhookSecretArn"]["Condition"], HAS_WEBHOOK);
    assert!(outputs["EventBusName"].get("Condition").is_none());
    assert!(outputs["EventBusArn"].get("Condition").is_none());
}

#[test]
fn the_webhook_exists_only_with_a_url_and_its_queue_takes_only_the_rules_events() {
    let template = load_template();
    for id in WEBHOOK_RESOURCES {
        assert_eq!(resource(&template, id)["Condition"], HAS_WEBHOOK, "{id}");
    }
    for (id, alarm) in resources_of_type(&template, "AWS::CloudWatch::Alarm") {
        let dimension = alarm["Properties"]["Dimensions"].to_string();
        let webhook_metric = alarm["Properties"]["MetricName"] == "WebhookFailures";
        if webhook_metric || dimension.contains(WEBHOOK_DLQ) {
            assert_eq!(alarm["Condition"], HAS_WEBHOOK, "{id}");
        } else {
            assert!(alarm.get("Condition").is_none(), "{id}");
        }
    }
    // Without the URL: none of it, and nothing names it.
    let off = with_condition(&template, HAS_WEBHOOK, false);
    let text = off.to_string();
    for id in WEBHOOK_RESOURCES {
        assert!(off["Resources"].get(id).is_none(), "{id}");
        assert!(!text.contains(&format!("\"{id}\"")), "{id} is still named");
    }

    let on = with_condition(&template, HAS_WEBHOOK, true);
    let secret = properties(&on, WEBHOOK_SECRET);
    assert_eq!(
        secret["GenerateSecretString"],
        json!({"PasswordLength": 48, "ExcludePunctuation": true})
    );
    assert!(
        secret.get("SecretString").is_none(),
        "generated, never given"
    );
    assert_eq!(
        properties(&on, WEBHOOK_QUEUE)["RedrivePolicy"],
        json!({"deadLetterTargetArn": get_att(WEBHOOK_DLQ, "Arn"), "maxReceiveCount": 50})
    );
    let rule = properties(&on, WEBHOOK_RULE);
    assert_eq!(rule["EventBusName"], event_bus_name());
    // `SOURCE` in shared/protocol/src/events.rs.
    assert_eq!(
        rule["EventPattern"],
        json!({"source": ["shop-token-broker"]})
    );
    let targets = rule["Targets"].as_array().unwrap();
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0]["Arn"], get_att(WEBHOOK_QUEUE, "Arn"));
    let policy = properties(&on, WEBHOOK_QUEUE_POLICY);
    assert_eq!(policy["Queues"], json!([reference(WEBHOOK_QUEUE)]));
    let statements = policy["PolicyDocument"]["Statement"].as_array().unwrap();
    assert_eq!(
        statements,
        &vec![json!({
            "Sid": "WebhookRuleSendsEvents",
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": get_att(WEBHOOK_QUEUE, "Arn"),
            "Condition": {"ArnEquals": {"aws:SourceArn": get_att(WEBHOOK_RULE, "Arn")}},
        })],
        "only the rule, through EventBridge, may send to the queue"
    );
    assert_eq!(
        properties(&on, WEBHOOK_MAPPING),
        &json!({
            "FunctionName": reference(PUBLISHER_FUNCTION),
            "EventSourceArn": get_att(WEBHOOK_QUEUE, "Arn"),
            "BatchSize": 10,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
        })
    );
}

// ---- Shoptet e-shop webhooks (issue 23)

/// The resources that exist only with `ShoptetWebhookEvents`: the rule that
/// queues installations for registration, its queue policy, and the
/// mapping that long-polls the queue. The worker, its queues and alarms
/// exist either way (idle, they cost nothing).
const ESHOP_WEBHOOK_RESOURCES: [&str; 3] = [
    REGISTRATION_RULE,
    REGISTRATION_QUEUE_POLICY,
    REGISTRATION_MAPPING,
];

/// The stack's own e-shop webhook route, as the URL Shoptet is told.
fn own_eshop_webhook_url() -> Value {
    json!({"Fn::Sub": "https://${BrokerHttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/shoptet/eshop-webhook"})
}

#[test]
fn the_eshop_webhook_parameters_are_off_by_default() {
    let template = load_template();
    let parameters = &template["Parameters"];
    let events = &parameters["ShoptetWebhookEvents"];
    assert_eq!(events["Type"], "String");
    assert_eq!(events["Default"], "", "off by default");
    let payload = &parameters["ShoptetWebhookPayload"];
    assert_eq!(payload["Default"], "none");
    assert_eq!(payload["AllowedValues"], json!(["none", "full"]));
    let url = &parameters["ShoptetEshopWebhookUrl"];
    assert_eq!(url["Default"], "", "the stack's own route by default");
    assert_eq!(url["AllowedPattern"], "^$|^https://[^\\s]+$");
    // Shoptet's limit on a webhook's url.
    assert_eq!(url["MaxLength"], 2000);
    assert_eq!(
        parameters["ShoptetWebhookReconcileSchedule"]["Default"],
        "rate(1 day)"
    );
    let conditions = &template["Conditions"];
    assert_eq!(
        conditions[FORWARDS_ESHOP_WEBHOOKS],
        json!({"Fn::Not": [{"Fn::Equals": [reference("ShoptetWebhookEvents"), ""]}]})
    );
    assert_eq!(
        conditions[HAS_CUSTOM_ESHOP_URL],
        json!({"Fn::Not": [{"Fn::Equals": [reference("ShoptetEshopWebhookUrl"), ""]}]})
    );
    // Registering needs the installations' tokens: a Shoptet add-on.
    assert_eq!(
        template["Rules"]["ShoptetWebhookEventsNeedAShoptetAddon"]["Assertions"][0]["Assert"],
        json!({"Fn::Or": [
            {"Fn::Equals": [reference("ShoptetWebhookEvents"), ""]},
            {"Fn::Not": [{"Fn::Equals": [reference("ShoptetOAuthUrl"), ""]}]},
        ]})
    );
}

#[test]
fn the_worker_is_a_queue_consumer_with_every_variable_it_reads() {
    let template = load_template();
    let function = properties(&template, WORKER_FUNCTION);
    assert_eq!(function["Role"], get_att(WORKER_ROLE, "Arn"));
    assert_eq!(function["Timeout"], 60);
    assert!(
        function.get("ReservedConcurrentExecutions").is_none(),
        "the mapping's MaximumConcurrency bounds it"
    );
    assert_eq!(
        function["LoggingConfig"]["LogGroup"],
        reference("ShoptetWebhooksLogGroup")
    );
    assert_eq!(
        properties(&template, "ShoptetWebhooksLogGroup")["LogGroupName"],
        json!({"Fn::Sub": "/aws/lambda/${AWS::StackName}/shoptet-webhooks"})
    );
    let variables = environment(&template, WORKER_FUNCTION);
    for (variable, parameter) in [
        ("SHOPTET_WEBHOOK_EVENTS", "ShoptetWebhookEvents"),
        ("SHOPTET_WEBHOOK_PAYLOAD", "ShoptetWebhookPayload"),
        ("SHOPTET_OAUTH_URL", "ShoptetOAuthUrl"),
        ("METRICS_NAMESPACE", "MetricsNamespace"),
    ] {
        assert_eq!(variables[variable], reference(parameter), "{variable}");
    }
    assert_eq!(
        variables["SHOPTET_WEBHOOK_URL"],
        json!({"Fn::If": [HAS_CUSTOM_ESHOP_URL, reference("ShoptetEshopWebhookUrl"), own_eshop_webhook_url()]})
    );
    assert_eq!(variables["EVENT_BUS_NAME"], event_bus_name());
    assert_eq!(
        variables["WEBHOOK_QUEUE_URL"],
        reference(REGISTRATION_QUEUE)
    );
    // The URL is the worker's only: the install callback's events build
    // the API, so naming the API there would be a circular dependency.
    let install = environment(&template, INSTALL_FUNCTION);
    assert!(!install.contains_key("SHOPTET_WEBHOOK_URL"));
    assert_eq!(install["EVENT_BUS_NAME"], event_bus_name());
    // The output says where Shoptet delivers.
    assert_eq!(
        template["Outputs"]["ShoptetEshopWebhookUrl"]["Value"],
        variables["SHOPTET_WEBHOOK_URL"]
    );
    // The same variables with either bus and either URL, and with the
    // feature off: the worker then starts and does nothing.
    for events in [true, false] {
        let template = with_condition(&template, FORWARDS_ESHOP_WEBHOOKS, events);
        for store in Store::ALL {
            let actual: BTreeSet<String> = environment(&store.template(&template), WORKER_FUNCTION)
                .keys()
                .cloned()
                .collect();
            let mut expected = names(WORKER_ENV);
            for variable in DERIVED_WHEN_UNSET {
                expected.remove(*variable);
            }
            expected.extend(names(store.env()));
            assert_eq!(actual, expected, "{store:?}, events configured: {events}");
        }
    }
}

#[test]
fn the_worker_role_keeps_signature_keys_mints_lists_shoptet_installations_and_fans_out() {
    let template = load_template();
    let queue = get_att(REGISTRATION_QUEUE, "Arn");
    let expected = expected_grants(vec![
        (
            "WriteOwnLogs",
            allow(
                &["logs:CreateLogStream", "logs:PutLogEvents"],
                get_att("ShoptetWebhooksLogGroup", "Arn"),
            ),
        ),
        (
            // Shoptet installations only, to mint their tokens.
            "ReadShoptetInstallationSecrets",
            allow(
                &["secretsmanager:GetSecretValue"],
                shoptet_installation_secret_arn(),
            ),
        ),
        (
            // The signature key: a labelled version of an existing Shoptet
            // installation's secret (described first: none for an absent or
            // scheduled one). Nothing created, restored, tagged or deleted.
            "KeepSignatureKeyVersions",
            allow(
                &[
                    "secretsmanager:DescribeSecret",
                    "secretsmanager:PutSecretValue",
                ],
                shoptet_installation_secret_arn(),
            ),
        ),
        (
            "StoreInstallations",
            allow(
                &[
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                ],
                get_att(INSTALLATION_TABLE, "Arn"),
            ),
        ),
        (
            "SealAndOpenInstallations",
            allow(
                &["kms:GenerateDataKey", "kms:Decrypt"],
                get_att(INSTALLATION_KEY, "Arn"),
            ),
        ),
        (
            // As the vendor: reads, leases, stores by UpdateItem.
            "CacheTokensAndLeases",
            allow(
                &["dynamodb:GetItem", "dynamodb:UpdateItem"],
                get_att(TABLE, "Arn"),
            ),
        ),
        (
            "SealAndOpenCachedTokens",
            allow(
                &["kms:GenerateDataKey", "kms:Decrypt"],
                get_att(TOKEN_KEY, "Arn"),
            ),
        ),
        (
            "ReadAndUpdateInstallationRegistry",
            allow(
                &["dynamodb:GetItem", "dynamodb:UpdateItem"],
                get_att(REGISTRY, "Arn"),
            ),
        ),
        (
            "ListOnePlatformsInstallations",
            allow(&["dynamodb:Query"], registry_index_arn()),
        ),
        (
            "PublishEvents",
            allow(&["events:PutEvents"], event_bus_arn()),
        ),
        (
            "FanOutOnOwnQueue",
            allow(&["sqs:SendMessage"], queue.clone()),
        ),
        (
            "ConsumeOwnQueue",
            allow(
                &[
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:GetQueueAttributes",
                ],
                queue,
            ),
        ),
    ]);
    assert_eq!(grants(&template, WORKER_ROLE), expected);
    assert_store_specific(
        &template,
        WORKER_ROLE,
        &["ReadShoptetInstallationSecrets", "KeepSignatureKeyVersions"],
        &["StoreInstallations", "SealAndOpenInstallations"],
    );
    // No grant of the worker's depends on whether events are configured:
    // an operator's re-registration works the same either way.
    for events in [true, false] {
        let deployed = with_condition(&template, FORWARDS_ESHOP_WEBHOOKS, events);
        assert_eq!(grants(&deployed, WORKER_ROLE), expected, "events: {events}");
    }
}

/// The delivery log's items (`delivery_key`) are written with UpdateItem
/// (shared/aws/src/storage/dynamodb_deliveries.rs): no role may PutItem on
/// the token table, which could overwrite a shop's token or lease whole.
#[test]
fn no_role_puts_whole_items_in_the_token_table() {
    let template = load_template();
    for (document, statement) in policy_statements(&template) {
        if is_key_policy(&document) {
            continue;
        }
        if statement["Resource"] == get_att(TABLE, "Arn") {
            assert!(
                !actions(statement).contains("dynamodb:PutItem"),
                "{document}: {statement}"
            );
        }
    }
    // The items expire: the token table keeps its TTL (8 days are the
    // code's DEDUPLICATION_WINDOW).
    assert_eq!(
        properties(&template, TABLE)["TimeToLiveSpecification"]["Enabled"],
        true
    );
}

#[test]
fn the_eshop_webhooks_are_forwarded_to_the_publishers_bus() {
    let grants_of = grants;
    let template = load_template();
    let grants = grants_of(&template, INSTALL_ROLE);
    assert_eq!(
        grants["ForwardEshopWebhooks"],
        allow(&["events:PutEvents"], event_bus_arn())
    );
    // Without the feature, too: deliveries of webhooks registered before
    // it was turned off are still verified and forwarded.
    let off = with_condition(&template, FORWARDS_ESHOP_WEBHOOKS, false);
    assert!(
        grants_of(&off, INSTALL_ROLE).contains_key("ForwardEshopWebhooks"),
        "the grant is unconditional"
    );
}

#[test]
fn the_registration_rule_queues_exactly_installed_and_imported_shoptet_installations() {
    use broker_domain::events::{EventKind, SOURCE};
    let template = load_template();
    for id in ESHOP_WEBHOOK_RESOURCES {
        assert_eq!(
            resource(&template, id)["Condition"],
            FORWARDS_ESHOP_WEBHOOKS,
            "{id}"
        );
    }
    for id in [
        REGISTRATION_QUEUE,
        REGISTRATION_DLQ,
        WORKER_FUNCTION,
        WORKER_ROLE,
    ] {
        assert!(
            resource(&template, id).get("Condition").is_none(),
            "{id}: always there"
        );
    }
    // Without events: none of it, and nothing names it.
    let off = with_condition(&template, FORWARDS_ESHOP_WEBHOOKS, false);
    let text = off.to_string();
    for id in ESHOP_WEBHOOK_RESOURCES {
        assert!(off["Resources"].get(id).is_none(), "{id}");
        assert!(!text.contains(&format!("\"{id}\"")), "{id} is still named");
    }

    let on = with_condition(&template, FORWARDS_ESHOP_WEBHOOKS, true);
    let rule = properties(&on, REGISTRATION_RULE);
    assert_eq!(rule["EventBusName"], event_bus_name());
    assert_eq!(rule["State"], "ENABLED");
    assert_eq!(
        rule["EventPattern"],
        json!({
            "source": [SOURCE],
            "detail-type": [
                EventKind::Installed.detail_type(),
                EventKind::Imported.detail_type(),
            ],
            "detail": {"platform": [Platform::Shoptet.as_str()]},
        }),
        "installed (also reinstalled) and imported Shoptet installations, nothing else"
    );
    let targets = rule["Targets"].as_array().unwrap();
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0]["Arn"], get_att(REGISTRATION_QUEUE, "Arn"));
    assert!(targets[0].get("Input").is_none() && targets[0].get("InputPath").is_none());
    let policy = properties(&on, REGISTRATION_QUEUE_POLICY);
    assert_eq!(policy["Queues"], json!([reference(REGISTRATION_QUEUE)]));
    assert_eq!(
        policy["PolicyDocument"]["Statement"],
        json!([{
            "Sid": "RegistrationRuleSendsEvents",
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": get_att(REGISTRATION_QUEUE, "Arn"),
            "Condition": {"ArnEquals": {"aws:SourceArn": get_att(REGISTRATION_RULE, "Arn")}},
        }]),
        "only the rule, through EventBridge, may send to the queue"
    );
}

#[test]
fn the_registration_queue_dead_letters_after_ten_receives_and_reports_batch_item_failures() {
    let template = load_template();
    let queue = properties(&template, REGISTRATION_QUEUE);
    assert_eq!(
        queue["RedrivePolicy"],
        json!({"deadLetterTargetArn": get_att(REGISTRATION_DLQ, "Arn"), "maxReceiveCount": 10}),
        "MAX_RECEIVES in functions/shoptet-webhooks"
    );
    // SQS's advice: 6 times the function's timeout.
    let timeout = timeout_ms(&template, WORKER_FUNCTION) / 1000;
    assert_eq!(queue["VisibilityTimeout"], 6 * timeout);
    assert_eq!(
        properties(&template, REGISTRATION_DLQ)["MessageRetentionPeriod"],
        14 * 24 * 3600
    );
    assert_eq!(
        properties(&template, REGISTRATION_MAPPING),
        &json!({
            "FunctionName": reference(WORKER_FUNCTION),
            "EventSourceArn": get_att(REGISTRATION_QUEUE, "Arn"),
            "BatchSize": 10,
            // A failed message is retried alone, the batch's others not.
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            // The reconciliation's fan-out never takes the account's
            // concurrency from the vendor.
            "ScalingConfig": {"MaximumConcurrency": 10},
        })
    );
    assert_eq!(
        template["Outputs"]["WebhookRegistrationDeadLetterQueueUrl"]["Value"],
        reference(REGISTRATION_DLQ)
    );
}

#[test]
fn the_reconciliation_runs_on_its_schedule_and_only_with_events_configured() {
    let template = load_template();
    let events = properties(&template, WORKER_FUNCTION)["Events"]
        .as_object()
        .expect("the worker's schedule");
    assert_eq!(events.len(), 1, "{events:?}");
    let (_, schedule) = events.iter().next().unwrap();
    assert_eq!(schedule["Type"], "Schedule");
    let schedule = &schedule["Properties"];
    assert_eq!(
        schedule["Schedule"],
        reference("ShoptetWebhookReconcileSchedule")
    );
    let input: Value =
        serde_json::from_str(schedule["Input"].as_str().expect("Input is JSON text"))
            .expect("Input parses");
    assert_eq!(input, json!({"reconcile_all": {}}));
    assert_eq!(
        schedule["State"],
        json!({"Fn::If": [FORWARDS_ESHOP_WEBHOOKS, "ENABLED", "DISABLED"]})
    );
}

#[test]
fn the_worker_is_named_in_the_outputs_for_an_operators_re_registration() {
    let template = load_template();
    let outputs = &template["Outputs"];
    assert_eq!(
        outputs["ShoptetWebhooksFunctionName"]["Value"],
        reference(WORKER_FUNCTION)
    );
    assert!(
        outputs["ShoptetWebhooksFunctionName"]["Description"]
            .as_str()
            .unwrap()
            .contains("reregister")
    );
    // The add-on's own webhook URL (pasted into Shoptet's settings) keeps
    // its output; the e-shop webhooks' is another.
    assert_eq!(
        outputs["ShoptetWebhookUrl"]["Value"],
        json!({"Fn::Sub": "https://${BrokerHttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/shoptet/webhook"})
    );
    assert_eq!(
        with_condition(&template, HAS_CUSTOM_ESHOP_URL, true)["Outputs"]["ShoptetEshopWebhookUrl"]
            ["Value"],
        reference("ShoptetEshopWebhookUrl")
    );
}

/// A misspelt or unknown e-shop event fails the deployment: the parameter's
/// pattern is Shoptet's catalogue as the code knows it, name for name
/// (a comma-separated list of them, or nothing).
#[test]
fn the_webhook_events_parameter_allows_exactly_the_catalogues_names() {
    let template = load_template();
    let names = broker_platforms::shoptet_eshop_webhooks::EVENTS.join("|");
    let expected = format!("^$|^ *({names}) *( *, *({names}) *)*$");
    let parameter = &template["Parameters"]["ShoptetWebhookEvents"];
    assert_eq!(parameter["AllowedPattern"], expected.as_str());
    assert_eq!(parameter["Default"], "");
    assert!(
        !names.contains("addon:"),
        "system events are not registered"
    );
}
