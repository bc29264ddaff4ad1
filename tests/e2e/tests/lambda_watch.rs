//! End to end through `cargo lambda watch`: the real `bootstrap` mains of both
//! functions, against moto and the platform double, all started by
//! scripts/e2e.sh, which exports where they listen and then runs this test:
//!
//! ```text
//! scripts/e2e.sh
//! ```
//!
//! The checks build on each other (the install stores the token the later
//! checks vend), so they run in order inside one test. Run without the
//! script's environment, the test fails: it never skips.
//!
//! The script runs this test once per installation store the functions were
//! started with (`E2E_INSTALLATION_STORE`, as the template's
//! `InstallationStore`): checks 2b and 11b look into that store itself —
//! Secrets Manager, or the DynamoDB table whose items must hold no plaintext
//! token (and then no secret may appear in Secrets Manager at all).

use broker_e2e::{note_secret, required};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;

use broker_domain::secret::WebhookKey;
use broker_platforms::shoptet_webhook;
use reqwest::header::CONTENT_TYPE;
use reqwest::{Client, Response, StatusCode};
use serde_json::Value;
use shop_token_client::{ApiClient, ClientError, ExposeSecret, LambdaTransport, Shop, TokenClient};
use test_support::LeakScanner;

/// How the watch server's Lambda Invoke API (where `cargo lambda invoke`
/// posts) answers a function error, i.e. the function posting to the runtime's
/// `/invocation/{id}/error`: HTTP 500, no `X-Amz-Function-Error` header (unlike
/// AWS's 200 with that header), the Diagnostic `{"errorType", "errorMessage"}`
/// as the body. A successful invocation answers 200 with the payload.
const FUNCTION_ERROR_STATUS: StatusCode = StatusCode::INTERNAL_SERVER_ERROR;

/// What scripts/e2e.sh exports for this test.
struct Env {
    /// `http://127.0.0.1:PORT` of `cargo lambda watch`.
    watch: String,
    /// Base URL of the platform double.
    double: String,
    /// The Shoptet e-shop seeded in the double.
    eshop: String,
    /// An e-shop that never installed the add-on.
    unknown_eshop: String,
    /// The seeded e-shop's install code (single use).
    install_code: String,
    /// The `shop-token` binary (built with the client's `cli` feature).
    shop_token: String,
    /// Per request; an invocation compiles the function first if its sources
    /// changed since the script's build.
    timeout: Duration,
    /// Where the functions keep installations.
    store: Store,
    /// The functions' Shoptet webhook signature key (signed webhooks are
    /// the recommended setup).
    webhook_key: String,
    /// Where the checks note secrets the double never sees (signatures),
    /// for tests/function_logs.rs to look for.
    known_secrets: String,
}

/// The installation store the functions were started with
/// (`E2E_INSTALLATION_STORE`, spelled as their `INSTALLATION_STORE`).
#[derive(Debug)]
enum Store {
    /// `E2E_SECRET_PREFIX`: the functions' `SECRET_PREFIX`.
    SecretsManager { prefix: String },
    /// `E2E_INSTALLATION_TABLE`: the functions' `INSTALLATION_TABLE`.
    DynamoDb { table: String },
}

impl Store {
    fn from_process() -> Self {
        match required("E2E_INSTALLATION_STORE").as_str() {
            "SecretsManager" => Self::SecretsManager {
                prefix: required("E2E_SECRET_PREFIX"),
            },
            "DynamoDB" => Self::DynamoDb {
                table: required("E2E_INSTALLATION_TABLE"),
            },
            other => panic!("E2E_INSTALLATION_STORE={other:?}: want SecretsManager or DynamoDB"),
        }
    }
}

impl Env {
    fn from_process() -> Self {
        let timeout = match std::env::var("E2E_INVOKE_TIMEOUT") {
            Ok(seconds) => seconds
                .parse()
                .unwrap_or_else(|_| panic!("E2E_INVOKE_TIMEOUT={seconds:?} is not whole seconds")),
            Err(_) => 300,
        };
        Self {
            watch: required("E2E_WATCH_URL"),
            double: required("E2E_DOUBLE_URL"),
            eshop: required("E2E_ESHOP_ID"),
            unknown_eshop: required("E2E_UNKNOWN_ESHOP_ID"),
            install_code: required("E2E_INSTALL_CODE"),
            shop_token: required("E2E_SHOP_TOKEN_BIN"),
            timeout: Duration::from_secs(timeout),
            store: Store::from_process(),
            webhook_key: required("E2E_WEBHOOK_KEY"),
            known_secrets: required("E2E_KNOWN_SECRETS"),
        }
    }
}

/// A fixture of tests/events/ with each `__NAME__` replaced by its value.
fn fixture(name: &str, values: &[(&str, &str)]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(name);
    let mut text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
    for (key, value) in values {
        assert!(
            !value.is_empty()
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)),
            "unsafe value for __{key}__ in {name}: {value:?}"
        );
        let placeholder = format!("__{key}__");
        assert!(
            text.contains(&placeholder),
            "{name} has no {placeholder} to substitute"
        );
        text = text.replace(&placeholder, value);
    }
    serde_json::from_str::<Value>(&text)
        .unwrap_or_else(|error| panic!("{name} after substitution is not JSON: {error}"));
    text
}

/// An answer of the watch server or the double, read whole.
struct Answer {
    status: StatusCode,
    content_type: String,
    function_error: Option<String>,
    body: String,
}

impl Answer {
    async fn read(response: Response, what: &str) -> Self {
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|value| value.to_str().unwrap_or("(not text)").to_owned())
        };
        let content_type = header(CONTENT_TYPE.as_str()).unwrap_or_default();
        let function_error = header("x-amz-function-error");
        let body = response
            .text()
            .await
            .unwrap_or_else(|error| panic!("{what}: reading the body: {error}"));
        Self {
            status,
            content_type,
            function_error,
            body,
        }
    }

    /// The body as JSON; on failure names the check and shows the body.
    fn json(&self, what: &str) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|error| {
            panic!(
                "{what}: body is not JSON ({error}): {}",
                redacted(&self.body)
            )
        })
    }
}

/// A body for an assertion message: JSON with every secret field blanked
/// (also inside a JSON string such as a proxy response's `body`), else its
/// start, unless it mentions a token at all.
/// The command's stderr: its JSON error, never a token.
fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn redacted(body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(mut json) => {
            redact(&mut json);
            json.to_string()
        }
        Err(_) if body.contains("token") => "(not JSON, mentions a token: withheld)".into(),
        Err(_) => body.chars().take(600).collect(),
    }
}

/// `access_token`, `header_value` (the same token), `refresh_token`, …
fn is_secret(key: &str) -> bool {
    key.ends_with("_token") || key.contains("secret") || key == "header_value"
}

fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                if is_secret(key) {
                    *value = Value::String("(redacted)".into());
                } else {
                    redact(value);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        Value::String(text) => {
            if let Ok(mut inner @ Value::Object(_)) = serde_json::from_str(text) {
                redact(&mut inner);
                *text = inner.to_string();
            }
        }
        _ => {}
    }
}

struct Checks {
    env: Env,
    client: Client,
}

impl Checks {
    /// What a consumer function builds: a token client invoking the vendor
    /// through the SDK, pointed at watch's Invoke API with retries off (watch
    /// answers a function error as 500, which the SDK would retry).
    async fn consumer_api(&self) -> ApiClient<LambdaTransport> {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.env.watch)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .load()
            .await;
        let transport = LambdaTransport::new(aws_sdk_lambda::Client::new(&config), "token-vendor");
        ApiClient::new(TokenClient::new(transport))
    }

    /// Runs the `shop-token` command line against watch's Invoke API (one
    /// attempt per invocation, as above).
    fn shop_token(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(&self.env.shop_token)
            .args(args)
            .env("AWS_ENDPOINT_URL_LAMBDA", &self.env.watch)
            .env("AWS_MAX_ATTEMPTS", "1")
            .output()
            .unwrap_or_else(|error| panic!("running {}: {error}", self.env.shop_token))
    }

    /// Invokes FUNCTION with EVENT through the Lambda Invoke API of the watch
    /// server (what `cargo lambda invoke` does).
    async fn invoke(&self, function: &str, event: String, what: &str) -> Answer {
        let url = format!(
            "{}/2015-03-31/functions/{function}/invocations",
            self.env.watch
        );
        self.post(&url, event, what).await
    }

    /// POST of a JSON body (empty for none) to any URL of the run.
    async fn post(&self, url: &str, body: String, what: &str) -> Answer {
        let response = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .unwrap_or_else(|error| panic!("{what}: POST {url}: {error}"));
        Answer::read(response, what).await
    }

    /// GET on the watch server (a Function URL, `/lambda-url/<function>/…`).
    async fn get(&self, path: &str, what: &str) -> Answer {
        self.get_url(&format!("{}{path}", self.env.watch), what)
            .await
    }

    /// GET of any URL of the run.
    async fn get_url(&self, url: &str, what: &str) -> Answer {
        let response = self
            .client
            .get(url)
            .send()
            .await
            .unwrap_or_else(|error| panic!("{what}: GET {url}: {error}"));
        Answer::read(response, what).await
    }
}

/// Looks into the installation store itself (moto, through the SDK): what
/// the install wrote there and what the uninstall left.
struct StoreChecks {
    secrets: aws_sdk_secretsmanager::Client,
    dynamo: aws_sdk_dynamodb::Client,
    /// Every secret's name before the install.
    secrets_before: BTreeSet<String>,
    /// The shop's secret, once [`StoreChecks::installed`] found it
    /// (Secrets Manager only).
    secret: Option<String>,
}

impl StoreChecks {
    async fn open() -> Self {
        let aws = test_support::emulator_sdk_config().await;
        let mut checks = Self {
            secrets: aws_sdk_secretsmanager::Client::new(&aws),
            dynamo: aws_sdk_dynamodb::Client::new(&aws),
            secrets_before: BTreeSet::new(),
            secret: None,
        };
        checks.secrets_before = checks.secret_names().await;
        checks
    }

    /// Every secret's name, those scheduled for deletion included.
    async fn secret_names(&self) -> BTreeSet<String> {
        let mut pages = self
            .secrets
            .list_secrets()
            .include_planned_deletion(true)
            .into_paginator()
            .send();
        let mut names = BTreeSet::new();
        while let Some(page) = pages.next().await {
            let page = page.unwrap_or_else(|error| panic!("ListSecrets: {error:?}"));
            names.extend(
                page.secret_list()
                    .iter()
                    .filter_map(|secret| secret.name().map(str::to_owned)),
            );
        }
        names
    }

    /// Every item of the installation table.
    async fn items(&self, table: &str) -> Vec<std::collections::HashMap<String, AttributeValue>> {
        let mut pages = self
            .dynamo
            .scan()
            .table_name(table)
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        let mut items = Vec::new();
        while let Some(item) = pages.next().await {
            items.push(item.unwrap_or_else(|error| panic!("Scan {table}: {error:?}")));
        }
        items
    }

    /// The only item of the installation table, after asserting it is the
    /// shop's.
    async fn only_item(
        &self,
        table: &str,
        shop_key: &str,
        what: &str,
    ) -> std::collections::HashMap<String, AttributeValue> {
        let mut items = self.items(table).await;
        assert_eq!(items.len(), 1, "{what}: want one item in {table}");
        let item = items.pop().expect("one item");
        assert_eq!(
            item.get("pk")
                .and_then(|pk| pk.as_s().ok())
                .map(String::as_str),
            Some(shop_key),
            "{what}: the item's pk"
        );
        item
    }

    /// After the install: the installation is in the configured store and
    /// only there. DynamoDB: one item for the shop in which no attribute
    /// holds any part of `tokens` (the OAuth token, the vended one), and no
    /// new secret in Secrets Manager.
    async fn installed(&mut self, store: &Store, shop_key: &str, tokens: &LeakScanner, what: &str) {
        let created: Vec<String> = self
            .secret_names()
            .await
            .difference(&self.secrets_before)
            .cloned()
            .collect();
        match store {
            Store::SecretsManager { prefix } => {
                assert!(
                    created.len() == 1 && created[0].starts_with(prefix.as_str()),
                    "{what}: want one new secret under {prefix:?}, got {created:?}"
                );
                self.secret = created.into_iter().next();
            }
            Store::DynamoDb { table } => {
                assert!(
                    created.is_empty(),
                    "{what}: secrets created in Secrets Manager: {created:?}"
                );
                let item = self.only_item(table, shop_key, what).await;
                assert_eq!(
                    item.get("platform")
                        .and_then(|p| p.as_s().ok())
                        .map(String::as_str),
                    Some("shoptet"),
                    "{what}: the item's platform"
                );
                assert!(
                    item.values().any(AttributeValue::is_b),
                    "{what}: no binary (sealed) attribute in the item"
                );
                for (name, value) in &item {
                    tokens.assert_absent(&format!("{what}: attribute name {name:?}"), name);
                    tokens.assert_absent(&format!("{what}: attribute {name:?}"), &rendered(value));
                }
                assert!(
                    !item.contains_key("delete_at") && !item.contains_key("ttl"),
                    "{what}: a fresh installation is scheduled for deletion"
                );
            }
        }
    }

    /// After the uninstall: the installation is scheduled for deletion (the
    /// secret's recovery window; the item's `delete_at` and TTL `ttl`).
    async fn retired(&self, store: &Store, shop_key: &str, what: &str) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after the epoch");
        match store {
            Store::SecretsManager { .. } => {
                let name = self.secret.as_deref().expect("check 2b found the secret");
                let described = self
                    .secrets
                    .describe_secret()
                    .secret_id(name)
                    .send()
                    .await
                    .unwrap_or_else(|error| panic!("{what}: DescribeSecret: {error:?}"));
                assert!(
                    described.deleted_date().is_some(),
                    "{what}: the secret is not scheduled for deletion"
                );
            }
            Store::DynamoDb { table } => {
                let item = self.only_item(table, shop_key, what).await;
                let number = |name: &str| -> u128 {
                    item.get(name)
                        .and_then(|value| value.as_n().ok())
                        .and_then(|n| n.parse().ok())
                        .unwrap_or_else(|| panic!("{what}: no numeric {name:?} on the item"))
                };
                let (delete_at, ttl) = (number("delete_at"), number("ttl"));
                assert!(
                    delete_at > now.as_millis(),
                    "{what}: delete_at {delete_at} is not in the future"
                );
                assert_eq!(
                    ttl,
                    delete_at / 1000,
                    "{what}: the TTL (epoch seconds) is not delete_at's"
                );
            }
        }
    }
}

/// An attribute's value as text to scan: strings and numbers as they are,
/// binaries byte for byte (as UTF-8, lossily), anything else debug-printed.
fn rendered(value: &AttributeValue) -> String {
    match value {
        AttributeValue::S(text) | AttributeValue::N(text) => text.clone(),
        AttributeValue::B(bytes) => String::from_utf8_lossy(bytes.as_ref()).into_owned(),
        other => format!("{other:?}"),
    }
}

/// Asserts a successful invocation (no function error) and returns its payload.
fn invocation_payload(answer: &Answer, what: &str) -> Value {
    assert!(
        answer.status == StatusCode::OK && answer.function_error.is_none(),
        "{what}: want HTTP 200 without a function error, got {} (X-Amz-Function-Error {:?}): {}",
        answer.status,
        answer.function_error,
        redacted(&answer.body)
    );
    answer.json(what)
}

/// The JSON body of an API Gateway proxy response payload, after asserting
/// its statusCode.
fn proxy_body(payload: &Value, status: u16, what: &str) -> Value {
    assert_eq!(
        payload["statusCode"],
        status,
        "{what}: statusCode of the proxy response (headers {}, body without tokens: {})",
        payload["headers"],
        payload["body"]
            .as_str()
            .map(redacted)
            .unwrap_or_else(|| "(none)".into())
    );
    let body = payload["body"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: the proxy response has no string body"));
    serde_json::from_str(body).unwrap_or_else(|error| {
        panic!(
            "{what}: the proxy response body is not JSON ({error}): {}",
            redacted(body)
        )
    })
}

/// The access token in a vend answer; asserts it is there and not empty.
fn access_token(body: &Value, what: &str) -> String {
    match body["access_token"].as_str() {
        Some(token) if !token.is_empty() => token.to_owned(),
        _ => panic!("{what}: no access_token in {}", redacted(&body.to_string())),
    }
}

/// Asserts a Function URL answer's status and JSON content type; returns the body.
fn url_json(answer: &Answer, status: StatusCode, what: &str) -> Value {
    assert!(
        answer.status == status && answer.content_type.starts_with("application/json"),
        "{what}: want {status} application/json, got {} {:?}: {}",
        answer.status,
        answer.content_type,
        redacted(&answer.body)
    );
    answer.json(what)
}

#[tokio::test]
async fn lambda_functions_under_cargo_lambda_watch() {
    let env = Env::from_process();
    let client = Client::builder()
        .timeout(env.timeout)
        .build()
        .expect("an HTTP client");
    let checks = Checks { env, client };
    let env = &checks.env;
    let eshop = env.eshop.as_str();
    let unknown = env.unknown_eshop.as_str();
    let shop_key = format!("shoptet#{eshop}");
    let mut store = StoreChecks::open().await;
    println!("installation store: {:?}", env.store);

    // 1. Shoptet's install redirect as API Gateway v2 delivers it.
    let what = "1. invoke install-callback (API Gateway v2 install event)";
    let event = fixture("install-apigw-v2.json", &[("CODE", &env.install_code)]);
    let answer = checks.invoke("install-callback", event, what).await;
    let body = proxy_body(&invocation_payload(&answer, what), 200, what);
    assert_eq!(body["status"], "installed", "{what}: body status");
    assert_eq!(body["shop"], eshop, "{what}: body shop");
    println!("PASS {what}: 200, installed");

    // 2. A consumer's SigV4-signed token request (IAM authorizer context).
    let what = "2. invoke token-vendor (API Gateway v2, IAM)";
    let event = fixture("token-apigw-v2.json", &[("SHOP", eshop)]);
    let answer = checks.invoke("token-vendor", event, what).await;
    let body = proxy_body(&invocation_payload(&answer, what), 200, what);
    let token = access_token(&body, what);
    assert_eq!(body["platform"], "shoptet", "{what}: body platform");
    assert_eq!(body["shop"], eshop, "{what}: body shop");
    println!("PASS {what}: 200 with access_token");

    // 2b. The installation in the store the functions were configured with,
    //     and nowhere else; the table holds neither the OAuth token the
    //     double issued nor the vended token in plaintext.
    let what = "2b. the installation in the configured store";
    let url = format!("{}/_double/shoptet/{eshop}", env.double);
    let answer = checks.get_url(&url, what).await;
    assert_eq!(answer.status, StatusCode::OK, "{what}: GET {url}");
    let shown = answer.json(what);
    assert_eq!(
        shown["state"], "active",
        "{what}: the double's installation state"
    );
    let oauth_token = shown["oauth_access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: the double shows no OAuth token"));
    let tokens = LeakScanner::new([oauth_token, token.as_str()]);
    store.installed(&env.store, &shop_key, &tokens, what).await;
    println!(
        "PASS {what}: {}",
        match env.store {
            Store::SecretsManager { .. } => "one new secret under the prefix",
            Store::DynamoDb { .. } => "one item, no token in plaintext, no secret created",
        }
    );

    // 3. Direct invocation (the consumer function's SDK Invoke).
    let what = "3. invoke token-vendor (direct payload)";
    let event = fixture("token-direct.json", &[("SHOP", eshop)]);
    let answer = checks.invoke("token-vendor", event, what).await;
    let payload = invocation_payload(&answer, what);
    assert!(
        access_token(&payload, what) == token,
        "{what}: a different access_token than check 2 vended"
    );
    assert_eq!(payload["shop"], eshop, "{what}: shop");
    println!("PASS {what}: the same access_token");

    // 4. Direct invocation for a shop that never installed: a function error
    //    whose errorType is the stable code.
    let what = "4. invoke token-vendor (direct payload, unknown shop)";
    let event = fixture("token-direct.json", &[("SHOP", unknown)]);
    let answer = checks.invoke("token-vendor", event, what).await;
    assert_eq!(
        answer.status,
        FUNCTION_ERROR_STATUS,
        "{what}: want a function error, got: {}",
        redacted(&answer.body)
    );
    let error = answer.json(what);
    assert_eq!(
        error["errorType"],
        "not_installed",
        "{what}: errorType of {}",
        redacted(&answer.body)
    );
    assert!(
        error.get("access_token").is_none() && !answer.body.contains("access_token"),
        "{what}: the error carries an access_token"
    );
    println!("PASS {what}: function error not_installed");

    // 5. Function URL of the vendor (watch strips /lambda-url/<function>).
    let path = format!("/lambda-url/token-vendor/tokens/shoptet/{eshop}");
    let what = format!("5. GET {path}");
    let answer = checks.get(&path, &what).await;
    let body = url_json(&answer, StatusCode::OK, &what);
    assert!(
        access_token(&body, &what) == token,
        "{what}: a different access_token than check 2 vended"
    );
    println!("PASS {what}: 200 JSON, the same access_token");

    // 6. Function URL of the vendor, unknown shop.
    let path = format!("/lambda-url/token-vendor/tokens/shoptet/{unknown}");
    let what = format!("6. GET {path}");
    let answer = checks.get(&path, &what).await;
    let body = url_json(&answer, StatusCode::NOT_FOUND, &what);
    assert_eq!(body["error"]["code"], "not_installed", "{what}: error.code");
    println!("PASS {what}: 404 not_installed");

    // 7. Function URL of the install callback, replaying the used code: the
    //    double refuses it (invalid_grant) and the callback says so.
    let path = format!(
        "/lambda-url/install-callback/shoptet/install?code={}",
        env.install_code
    );
    let what = "7. GET /lambda-url/install-callback/shoptet/install (used code)";
    let answer = checks.get(&path, what).await;
    let body = url_json(&answer, StatusCode::BAD_GATEWAY, what);
    assert_eq!(
        body["error"]["code"], "upstream_rejected",
        "{what}: error.code in {body}"
    );
    assert_eq!(
        body["error"]["upstream_code"], "invalid_grant",
        "{what}: error.upstream_code in {body}"
    );
    println!("PASS {what}: 502 upstream_rejected (invalid_grant)");

    // 8. The vended token works on the (double's) Shoptet API.
    let what = "8. the vended token on the platform's GET /api/eshop";
    let url = format!("{}/api/eshop", env.double);
    let response = checks
        .client
        .get(&url)
        .header("Shoptet-Access-Token", &token)
        .send()
        .await
        .unwrap_or_else(|error| panic!("{what}: GET {url}: {error}"));
    let answer = Answer::read(response, what).await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "{what}: {}",
        redacted(&answer.body)
    );
    println!("PASS {what}: 200");

    // 9. The consumer crate as a user's function runs it: shop-token-client
    //    invoking the vendor binary directly (LambdaTransport, the SDK's
    //    Invoke), its ApiClient calling the double's API with the token.
    let what = "9. shop-token-client: LambdaTransport, then ApiClient GET /eshop";
    let api = checks.consumer_api().await;
    let shop = Shop::shoptet(eshop.parse().expect("a numeric eshopId")).expect("a valid eshopId");
    let response = api
        .get(&shop, "/eshop")
        .await
        .unwrap_or_else(|error| panic!("{what}: {error}"));
    assert_eq!(response.status(), StatusCode::OK, "{what}");
    let cached = api
        .tokens()
        .cached_token(&shop)
        .expect("the token is cached");
    assert!(
        cached.access_token().expose_secret() == token,
        "{what}: a different access_token than check 2 vended"
    );
    let never_installed = Shop::shoptet(unknown.parse().expect("a numeric eshopId")).unwrap();
    let error = api.tokens().token(&never_installed).await.unwrap_err();
    assert_eq!(error, ClientError::NotInstalled, "{what}: unknown shop");
    println!("PASS {what}: 200 with the same token; unknown shop NotInstalled");

    // 10. The shop-token command line, invoking the vendor directly.
    let what = "10. shop-token token|call shoptet <eshop> --function token-vendor";
    let output = checks.shop_token(&["token", "shoptet", eshop, "--function", "token-vendor"]);
    assert_eq!(output.status.code(), Some(0), "{what}: {}", stderr(&output));
    let printed: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("{what}: stdout is not JSON"));
    assert!(
        access_token(&printed, what) == token,
        "{what}: a different access_token than check 2 vended"
    );
    let output = checks.shop_token(&[
        "call",
        "shoptet",
        eshop,
        "GET",
        "/eshop",
        "--function",
        "token-vendor",
    ]);
    assert_eq!(output.status.code(), Some(0), "{what}: {}", stderr(&output));
    let output = checks.shop_token(&["token", "shoptet", unknown, "--function", "token-vendor"]);
    assert_eq!(
        output.status.code(),
        Some(3),
        "{what}: unknown shop: {}",
        stderr(&output)
    );
    println!("PASS {what}: token and call exit 0; unknown shop exits 3");

    // 11. The e-shop uninstalls the add-on (the double revokes its OAuth
    //    token) and Shoptet's webhook reaches the install callback's Function
    //    URL: confirmed upstream, the installation is retired.
    let what = "11. uninstall at the double, then POST /shoptet/webhook";
    let url = format!("{}/_double/shoptet/{eshop}/uninstall", env.double);
    let answer = checks.post(&url, String::new(), what).await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "{what}: {}",
        redacted(&answer.body)
    );
    let created = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace('Z', "+0000");
    let event = format!(
        r#"{{"eshopId":{eshop},"event":"addon:uninstall","eventCreated":"{created}","eventInstance":"{eshop}"}}"#
    );
    let signature = shoptet_webhook::sign(&WebhookKey::new(&env.webhook_key), event.as_bytes());
    note_secret(&env.known_secrets, &signature);
    let url = format!("{}/lambda-url/install-callback/shoptet/webhook", env.watch);
    let response = checks
        .client
        .post(&url)
        .header(shoptet_webhook::SIGNATURE_HEADER, &signature)
        .body(event)
        .send()
        .await
        .unwrap_or_else(|error| panic!("{what}: POST {url}: {error}"));
    let answer = Answer::read(response, what).await;
    let body = url_json(&answer, StatusCode::OK, what);
    assert_eq!(body["status"], "processed", "{what}: {body}");
    println!("PASS {what}: 200 processed");

    // 11b. The store keeps the installation for the recovery window only.
    let what = "11b. the installation scheduled for deletion in the store";
    store.retired(&env.store, &shop_key, what).await;
    println!(
        "PASS {what}: {}",
        match env.store {
            Store::SecretsManager { .. } => "the secret's deletion is scheduled",
            Store::DynamoDb { .. } => "delete_at and its TTL set",
        }
    );

    // 12. The warm vendor, told its token was refused, answers not_installed
    //     from the registry (no upstream call, no secret read).
    let what = "12. invoke token-vendor (direct payload, stale token of an uninstalled shop)";
    let event = serde_json::json!({"platform": "shoptet", "shop": eshop, "stale_token": token});
    let answer = checks.invoke("token-vendor", event.to_string(), what).await;
    assert_eq!(
        answer.status,
        FUNCTION_ERROR_STATUS,
        "{what}: want a function error, got: {}",
        redacted(&answer.body)
    );
    assert_eq!(answer.json(what)["errorType"], "not_installed", "{what}");
    println!("PASS {what}: function error not_installed");
}
