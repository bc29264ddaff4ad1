//! Updating a deployed stack must never replace what holds its state with
//! an empty copy. CloudFormation replaces a table when its name, key schema
//! or local indexes change (and refuses an in-place change of a global
//! index's keys), refuses a change of a KMS key's immutable properties,
//! replaces an alias, a secret, a queue or an event bus whose name changes
//! (a queue also when it turns FIFO), and replaces any
//! resource whose logical id changes. The secrets of the default
//! installation store are named by `SecretPrefix` and the store by
//! `InstallationStore`: a new default of either leaves every installation
//! where the stack no longer looks.
//!
//! The values below are what deployed stacks have. A change here is a
//! breaking change: it needs a migration written down in docs/upgrading.md
//! and a major version in CHANGELOG.md before the pin is moved.

use serde_json::{Value, json};
use template_tests::{load_template, resources_of_type};

/// Resource types that hold state (or name it), with the properties whose
/// change replaces the resource or fails the update (AWS CloudFormation
/// template reference, "Update requires"), and why losing it matters.
const STATEFUL_TYPES: &[(&str, &[&str], &str)] = &[
    (
        "AWS::DynamoDB::Table",
        &[
            "TableName",
            "KeySchema",
            "AttributeDefinitions",
            "GlobalSecondaryIndexes",
            "LocalSecondaryIndexes",
            "ImportSourceSpecification",
        ],
        "the replacement table starts empty",
    ),
    (
        "AWS::KMS::Key",
        &["KeySpec", "KeyUsage", "MultiRegion", "Origin"],
        "what it sealed decrypts under no other key",
    ),
    (
        "AWS::KMS::Alias",
        &["AliasName"],
        "callers that name the alias lose the key",
    ),
    (
        "AWS::SecretsManager::Secret",
        &["Name"],
        "the replacement secret starts empty",
    ),
    (
        "AWS::SQS::Queue",
        &["QueueName", "FifoQueue"],
        "the replacement queue starts empty: dead letters and undelivered events are gone",
    ),
    (
        "AWS::Events::EventBus",
        &["Name"],
        "the subscribers' rules on the old bus go with it",
    ),
];

/// Attributes that decide what happens to the old resource on replacement
/// and on deletion, and the condition it exists under.
const RESOURCE_ATTRIBUTES: &[&str] =
    &["Type", "Condition", "DeletionPolicy", "UpdateReplacePolicy"];

fn table(key_schema: Value, attributes: Value) -> Value {
    json!({ "KeySchema": key_schema, "AttributeDefinitions": attributes })
}

fn pk_only() -> Value {
    table(
        json!([{"AttributeName": "pk", "KeyType": "HASH"}]),
        json!([{"AttributeName": "pk", "AttributeType": "S"}]),
    )
}

fn symmetric_key() -> Value {
    json!({"KeySpec": "SYMMETRIC_DEFAULT", "KeyUsage": "ENCRYPT_DECRYPT"})
}

/// Every stateful resource as deployed stacks have it: its attributes and
/// its replacement-triggering properties (an absent property is pinned
/// absent: adding one replaces the resource too).
fn pinned() -> Vec<(&'static str, Value, Value)> {
    let mut registry = table(
        json!([{"AttributeName": "pk", "KeyType": "HASH"}]),
        json!([
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "platform", "AttributeType": "S"},
        ]),
    );
    registry["GlobalSecondaryIndexes"] = json!([{
        "IndexName": "by-platform",
        "KeySchema": [
            {"AttributeName": "platform", "KeyType": "HASH"},
            {"AttributeName": "pk", "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "ALL"},
    }]);
    let deleted = json!({"DeletionPolicy": "Delete", "UpdateReplacePolicy": "Delete"});
    let retained = json!({
        "Condition": "UseDynamoDBInstallations",
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
    });
    let with = |kind: &str, attributes: &Value| {
        let mut all = attributes.clone();
        all["Type"] = json!(kind);
        all
    };
    vec![
        (
            "TokenTable",
            with("AWS::DynamoDB::Table", &deleted),
            pk_only(),
        ),
        (
            "RegistryTable",
            with("AWS::DynamoDB::Table", &deleted),
            registry,
        ),
        (
            "InstallationTable",
            with("AWS::DynamoDB::Table", &retained),
            pk_only(),
        ),
        ("TokenKey", with("AWS::KMS::Key", &deleted), symmetric_key()),
        (
            "InstallationKey",
            with("AWS::KMS::Key", &retained),
            symmetric_key(),
        ),
        (
            "TokenKeyAlias",
            json!({"Type": "AWS::KMS::Alias"}),
            json!({"AliasName": {"Fn::Sub": "alias/${AWS::StackName}/tokens"}}),
        ),
        (
            "InstallationKeyAlias",
            json!({"Type": "AWS::KMS::Alias", "Condition": "UseDynamoDBInstallations"}),
            json!({"AliasName": {"Fn::Sub": "alias/${AWS::StackName}/installations"}}),
        ),
        // The lifecycle events (issue 22). Named by CloudFormation, except
        // the bus the stack creates; the webhook's only with EventWebhookUrl.
        (
            "EventBus",
            json!({"Type": "AWS::Events::EventBus", "Condition": "CreatesEventBus"}),
            json!({"Name": {"Fn::Sub": "${AWS::StackName}-events"}}),
        ),
        (
            "EventsDeadLetterQueue",
            json!({"Type": "AWS::SQS::Queue"}),
            json!({}),
        ),
        (
            "EventWebhookSecret",
            json!({"Type": "AWS::SecretsManager::Secret", "Condition": "HasEventWebhook"}),
            json!({}),
        ),
        (
            "WebhookQueue",
            json!({"Type": "AWS::SQS::Queue", "Condition": "HasEventWebhook"}),
            json!({}),
        ),
        (
            "WebhookDeadLetterQueue",
            json!({"Type": "AWS::SQS::Queue", "Condition": "HasEventWebhook"}),
            json!({}),
        ),
        // Shoptet e-shop webhooks (issue 23): the worker's queue and its
        // dead letters, with or without ShoptetWebhookEvents.
        (
            "WebhookRegistrationQueue",
            json!({"Type": "AWS::SQS::Queue"}),
            json!({}),
        ),
        (
            "WebhookRegistrationDeadLetterQueue",
            json!({"Type": "AWS::SQS::Queue"}),
            json!({}),
        ),
    ]
}

fn replacing_properties(kind: &str) -> Option<(&'static [&'static str], &'static str)> {
    STATEFUL_TYPES
        .iter()
        .find(|(stateful, _, _)| *stateful == kind)
        .map(|(_, properties, loss)| (*properties, *loss))
}

fn breaking(id: &str, what: &str, loss: &str, pinned: &Value, found: &Value) -> String {
    format!(
        "{id}.{what} is pinned to {pinned} but the template has {found}. Deploying this \
         over an existing stack would replace {id} (or fail the update): {loss}. If the \
         change is meant, write the migration into docs/upgrading.md, note it as breaking \
         in CHANGELOG.md, then move the pin in tests/template/tests/stateful_resources.rs."
    )
}

#[test]
fn every_stateful_resource_is_pinned_and_no_pinned_one_is_renamed_or_removed() {
    let template = load_template();
    let present: Vec<&str> = STATEFUL_TYPES
        .iter()
        .flat_map(|(kind, _, _)| resources_of_type(&template, kind))
        .map(|(id, _)| id)
        .collect();
    let pinned: Vec<&str> = pinned().iter().map(|(id, _, _)| *id).collect();
    for id in &present {
        assert!(
            pinned.contains(id),
            "{id} holds state but is not pinned: add its replacement-triggering properties \
             to pinned() in tests/template/tests/stateful_resources.rs"
        );
    }
    for id in &pinned {
        assert!(
            present.contains(id),
            "{id} is gone from template.yaml: a renamed logical id is a new, empty resource \
             and the old one is deleted (or orphaned). Keep the id; see docs/upgrading.md"
        );
    }
}

#[test]
fn no_update_replaces_a_table_a_key_an_alias_a_secret_a_queue_or_a_bus() {
    let template = load_template();
    for (id, attributes, properties) in pinned() {
        let resource = &template["Resources"][id];
        let kind = attributes["Type"].as_str().unwrap();
        let (replacing, loss) = replacing_properties(kind)
            .unwrap_or_else(|| panic!("{id}: {kind} is not in STATEFUL_TYPES"));
        // The resource's attributes, then its replacing properties: each as
        // pinned.
        let checked = (RESOURCE_ATTRIBUTES
            .iter()
            .map(|name| (name, resource, &attributes)))
        .chain(
            replacing
                .iter()
                .map(|name| (name, &resource["Properties"], &properties)),
        );
        for (name, deployed, pins) in checked {
            let found = deployed.get(*name).unwrap_or(&Value::Null);
            let pinned = pins.get(*name).unwrap_or(&Value::Null);
            assert_eq!(found, pinned, "{}", breaking(id, name, loss, pinned, found));
        }
    }
}

/// Parameters whose default decides where existing state is looked for: a
/// stack updated without naming them takes the new default.
#[test]
fn the_defaults_that_locate_existing_installations_stay_put() {
    let template = load_template();
    for (parameter, default, loss) in [
        (
            "SecretPrefix",
            "shop-token-broker/",
            "every installation secret under the old prefix is no longer found",
        ),
        (
            "InstallationStore",
            "SecretsManager",
            "the functions read another store, where no installation has been copied",
        ),
    ] {
        let found = &template["Parameters"][parameter]["Default"];
        assert_eq!(
            found,
            &json!(default),
            "{}",
            breaking(parameter, "Default", loss, &json!(default), found)
        );
    }
}
