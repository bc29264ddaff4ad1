//! The `shop-token` command line against the real broker (see `common`):
//! what it prints, where, and with which exit code.
#![cfg(feature = "cli")]

mod common;

use std::process::Output;

use common::{ESHOP, LocalBroker, Setup};
use platform_double::Endpoint;

/// Runs `shop-token args…` with only `env` from the environment (plus
/// PATH), off the runtime's threads: the broker answers on them.
async fn shop_token(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_shop-token"));
    command.args(args).env_clear();
    if let Ok(path) = std::env::var("PATH") {
        command.env("PATH", path);
    }
    command.envs(env.iter().copied());
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The one JSON error on stderr.
fn error_code(output: &Output) -> String {
    let error: serde_json::Value = serde_json::from_slice(&output.stderr).unwrap_or_else(|_| {
        panic!(
            "stderr is not JSON: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    error["error"]["code"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn token_prints_the_vendors_answer_and_exits_0() {
    let broker = LocalBroker::start(Setup::default()).await;
    broker.install(ESHOP).await;
    let eshop = ESHOP.to_string();

    let output = shop_token(&["token", "shoptet", &eshop, "--broker", &broker.url], &[]).await;

    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let answer: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(answer["platform"], "shoptet");
    assert_eq!(answer["shop"], eshop);
    assert_eq!(answer["header_name"], "Shoptet-Access-Token");
    assert!(answer["expires_in"].as_u64().unwrap() > 1700);
    assert_eq!(answer["header_value"], answer["access_token"]);
    assert_eq!(broker.mints(ESHOP), 1);
    assert!(output.stderr.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn call_reaches_the_api_with_the_broker_from_the_environment() {
    let broker = LocalBroker::start(Setup::default()).await;
    broker.install(ESHOP).await;
    let eshop = ESHOP.to_string();
    let env = [("SHOP_TOKEN_BROKER", broker.url.as_str())];

    let output = shop_token(&["call", "shoptet", &eshop, "GET", "/eshop"], &env).await;

    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let body: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(
        body["data"]["contactInformation"]["eshopName"],
        format!("Double e-shop {ESHOP}")
    );
    assert_eq!(broker.double.calls(Endpoint::ShoptetApi, &eshop), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_the_api_refuses_prints_its_body_and_exits_10() {
    let broker = LocalBroker::start(Setup::default()).await;
    broker.install(ESHOP).await;
    let eshop = ESHOP.to_string();
    let env = [("SHOP_TOKEN_BROKER", broker.url.as_str())];

    let output = shop_token(
        &[
            "call",
            "shoptet",
            &eshop,
            "POST",
            "/products",
            "--data",
            r#"{"data":{}}"#,
        ],
        &env,
    )
    .await;

    assert_eq!(output.status.code(), Some(10), "{output:?}");
    assert!(stdout(&output).contains("invalid-token-no-rights"));
    assert_eq!(error_code(&output), "api_status");
    assert_eq!(
        broker.double.calls(Endpoint::ShoptetApi, &eshop),
        1,
        "never retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_error_class_has_its_exit_code_and_a_json_error_on_stderr() {
    let broker = LocalBroker::start(Setup::default()).await;
    let env = [("SHOP_TOKEN_BROKER", broker.url.as_str())];

    let not_installed = shop_token(&["token", "shoptet", "999"], &env).await;
    assert_eq!(not_installed.status.code(), Some(3), "{not_installed:?}");
    assert_eq!(error_code(&not_installed), "not_installed");
    assert!(not_installed.stdout.is_empty());

    let too_long = shop_token(&["token", "shoptet", "999", "--min-ttl", "1800"], &env).await;
    assert_eq!(too_long.status.code(), Some(2), "{too_long:?}");
    assert_eq!(error_code(&too_long), "invalid_request");

    let nowhere = shop_token(&["token", "shoptet", "999"], &[]).await;
    assert_eq!(nowhere.status.code(), Some(2));
    assert_eq!(error_code(&nowhere), "usage");

    let cleartext = shop_token(
        &[
            "token",
            "shoptet",
            "999",
            "--broker",
            "http://broker.example:8787",
        ],
        &[],
    )
    .await;
    assert_eq!(cleartext.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&cleartext.stderr).contains("loopback"));

    let unreachable = shop_token(
        &["token", "shoptet", "999", "--broker", "http://127.0.0.1:9"],
        &[],
    )
    .await;
    assert_eq!(unreachable.status.code(), Some(7), "{unreachable:?}");
    assert_eq!(error_code(&unreachable), "transport");

    let help = shop_token(&["--help"], &[]).await;
    assert_eq!(help.status.code(), Some(0));
    assert!(stdout(&help).contains("EXIT CODES"));
}
