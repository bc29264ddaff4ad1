//! The e-shop webhooks' worker binary (`shoptet-webhooks`) under `cargo
//! lambda watch`, invoked directly as the operator's command invokes it:
//! its real bootstrap reads the pass's configuration, opens the pass's
//! stores and answers a dry-run re-registration page for the pass's active
//! Shoptet installations (a token minted at the double for each, their
//! webhooks listed, nothing registered). In the Shoptet-less pass it says
//! it has nothing configured. Its log lines are in the watch log the leak
//! scan reads next.

use broker_e2e::required;
use serde_json::{Value, json};

#[tokio::test]
async fn the_worker_binary_answers_a_dry_run_re_registration_page() {
    let watch = required("E2E_WATCH_URL");
    let events = std::env::var("E2E_PASS_WEBHOOK_EVENTS").unwrap_or_default();
    let url = format!("{watch}/2015-03-31/functions/shoptet-webhooks/invocations");

    let response = reqwest::Client::new()
        .post(&url)
        .json(&json!({"reregister": {"limit": 100, "dry_run": true}}))
        .send()
        .await
        .expect("invoking shoptet-webhooks through the watch server");
    let status = response.status();
    let answer: Value = response.json().await.expect("the worker's answer");

    assert!(
        status.is_success(),
        "shoptet-webhooks answered {status}: {answer}"
    );
    if events.is_empty() {
        assert_eq!(answer, json!({"configured": false}));
        return;
    }
    assert_eq!(answer["dry_run"], true, "{answer}");
    assert_eq!(answer["next"], Value::Null, "{answer}");
    let configured: Vec<Value> = events.split(',').map(|e| json!(e)).collect();
    let installations = answer["installations"].as_array().expect("a page");
    for installation in installations {
        assert_eq!(installation.get("error"), None, "{installation}");
    }
    // The SecretsManager pass leaves the examples' e-shop installed (the
    // others are uninstalled by the checks): nothing registered there yet,
    // so all the configured events and a key are to come.
    if required("E2E_INSTALLATION_STORE") == "SecretsManager" {
        let examples = required("E2E_EXAMPLES_ESHOP_ID");
        let listed = installations
            .iter()
            .find(|i| i["shop"] == examples.as_str())
            .unwrap_or_else(|| panic!("the examples' e-shop is listed: {answer}"));
        assert_eq!(listed["added"], Value::Array(configured), "{listed}");
        assert_eq!(listed["key_renewed"], true, "{listed}");
    }
    eprintln!(
        "e2e webhooks: a dry-run page of {} installations: {answer}",
        installations.len()
    );
}
