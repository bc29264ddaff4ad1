//! The run command from a newcomer's point of view: start the binary, paste
//! the printed curl lines, restart, and find everything still there; play the
//! add-on's lifecycle through the platform double and watch the broker follow.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use broker_domain::storage::InstallationStore;
use broker_sqlite::SqliteStore;
use serde_json::Value;
use test_support::events::Received;

/// The sandbox e-shop's token route, as the walkthrough prints it.
const TOKEN_ROUTE: &str = "/tokens/shoptet/222651";

struct Server {
    child: Child,
    printed: Vec<String>,
    /// What it printed after `ready`.
    later: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    fn start(db: &Path) -> Self {
        Self::start_with(db, &[], &[])
    }

    fn start_with(db: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_broker-local"))
            .args(["--listen", "127.0.0.1:0", "--db"])
            .arg(db)
            .args(args)
            .envs(env.iter().copied())
            .env_remove("SHOPTET_OAUTH_URL")
            .env_remove("SHOPRENTER_CLIENT_ID")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let mut printed = Vec::new();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        for line in lines.by_ref() {
            let line = line.unwrap();
            if line == "ready" {
                break;
            }
            printed.push(line);
        }
        // Keep draining so the server never blocks on a full pipe.
        let later = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = later.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                kept.lock().unwrap().push(line);
            }
        });
        Self {
            child,
            printed,
            later,
        }
    }

    fn curl_lines(&self) -> Vec<&str> {
        self.printed
            .iter()
            .filter_map(|line| line.strip_prefix("  "))
            .filter(|line| line.starts_with("curl "))
            .collect()
    }

    /// Where the broker listens, as printed first.
    fn broker_url(&self) -> &str {
        self.printed
            .iter()
            .find_map(|line| line.strip_prefix("shop-token-broker local server: "))
            .expect("the broker's URL is printed")
    }

    /// The printed install line (it carries a fresh single-use code).
    fn install_line(&self) -> &str {
        self.curl_lines()
            .into_iter()
            .find(|line| line.contains("/shoptet/install?code="))
            .expect("an install line")
    }

    /// The one printed curl line ending with `tail` (a closing quote aside).
    fn curl_line(&self, tail: &str) -> &str {
        let lines = self.curl_lines();
        let matching: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|line| line.trim_end_matches('\'').ends_with(tail))
            .collect();
        let [line] = matching[..] else {
            panic!("expected one curl line ending with {tail:?}, got {lines:?}");
        };
        line
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a printed curl line; the HTTP status and the body as JSON.
fn http(line: &str) -> (u16, Value) {
    let line = line.replacen("curl -s", "curl -s -w '\\n%{http_code}'", 1);
    let output = Command::new("sh").arg("-c").arg(&line).output().unwrap();
    assert!(output.status.success(), "`{line}` failed");
    let printed = String::from_utf8(output.stdout).unwrap();
    let (body, status) = printed.rsplit_once('\n').expect("a status line");
    let body =
        serde_json::from_str(body).unwrap_or_else(|_| panic!("`{line}` printed no JSON: {body}"));
    (status.parse().unwrap(), body)
}

fn shell(line: &str) -> Value {
    let output = Command::new("sh").arg("-c").arg(line).output().unwrap();
    assert!(output.status.success(), "`{line}` failed");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
        panic!(
            "`{line}` printed no JSON: {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

#[tokio::test]
async fn the_printed_curl_lines_work_and_a_restart_keeps_the_installation_and_token() {
    let (_dir, db) = fresh_db();

    let server = Server::start(&db);
    let installed = shell(server.install_line());
    let vended = shell(server.curl_line(TOKEN_ROUTE));
    let eshop = shell(server.curl_line("/api/eshop"));

    assert_eq!(installed["status"], "installed", "{installed}");
    assert_eq!(vended["platform"], "shoptet");
    assert_eq!(vended["header_name"], "Shoptet-Access-Token");
    assert!(eshop["data"].is_object(), "{eshop}");
    let first_token = vended["access_token"].as_str().unwrap().to_owned();
    drop(server);

    let restarted = Server::start(&db);
    let again = shell(restarted.curl_line(TOKEN_ROUTE));
    assert_eq!(
        again["access_token"].as_str(),
        Some(first_token.as_str()),
        "the cached token survived"
    );
    let store = SqliteStore::open(&db).unwrap();
    let installation = store
        .load_shoptet_installation("222651".parse().unwrap())
        .await
        .unwrap();
    assert!(installation.is_some(), "the installation survived");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&db).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    drop(restarted);
}

#[test]
fn a_non_loopback_address_needs_an_explicit_flag() {
    let output = Command::new(env!("CARGO_BIN_EXE_broker-local"))
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--allow-remote"));
}

/// A fresh database path for one test, in a directory removed on drop.
fn fresh_db() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("broker.db");
    (dir, db)
}

#[test]
fn an_uninstall_played_by_the_double_stops_the_vend_and_the_registry_says_uninstalled() {
    let (_dir, db) = fresh_db();
    let server = Server::start(&db);
    assert_eq!(shell(server.install_line())["status"], "installed");
    let (status, vended) = http(server.curl_line(TOKEN_ROUTE));
    assert_eq!(status, 200, "{vended}");
    // The broker holds the sandbox's webhook key: an unsigned event is refused.
    let (status, forged) = http(&format!(
        "curl -s -X POST -d '{{\"eshopId\":222651,\"event\":\"addon:uninstall\"}}' {}/shoptet/webhook",
        server.broker_url()
    ));
    assert_eq!(status, 401, "{forged}");
    assert_eq!(forged["error"]["code"], "invalid_signature");

    let (status, uninstalled) = http(server.curl_line("/_double/shoptet/222651/uninstall"));

    assert_eq!(status, 200, "{uninstalled}");
    assert_eq!(
        uninstalled["webhook"]["status"], 200,
        "the broker took the signed webhook: {uninstalled}"
    );
    assert_eq!(uninstalled["webhook"]["body"]["status"], "processed");
    let (status, refused) = http(server.curl_line(TOKEN_ROUTE));
    assert_eq!(status, 404, "{refused}");
    assert_eq!(refused["error"]["code"], "not_installed");
    let (status, registration) = http(server.curl_line("/installations/shoptet/222651"));
    assert_eq!(status, 200, "{registration}");
    assert_eq!(registration["status"], "uninstalled");
    drop(server);
}

#[test]
fn a_suspension_played_by_the_double_refuses_the_vend_until_the_approval() {
    let (_dir, db) = fresh_db();
    let server = Server::start(&db);
    shell(server.install_line());
    assert_eq!(http(server.curl_line(TOKEN_ROUTE)).0, 200);

    let (_, suspended) = http(server.curl_line("/_double/shoptet/222651/suspend"));
    assert_eq!(
        suspended["webhook"]["body"]["status"], "processed",
        "{suspended}"
    );
    let (status, refused) = http(server.curl_line(TOKEN_ROUTE));
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["error"]["code"], "addon_suspended");

    let (_, approved) = http(server.curl_line("/_double/shoptet/222651/approve"));
    assert_eq!(
        approved["webhook"]["body"]["status"], "processed",
        "{approved}"
    );
    let (status, vended) = http(server.curl_line(TOKEN_ROUTE));
    assert_eq!(status, 200, "{vended}");
    let (_, registration) = http(server.curl_line("/installations/shoptet/222651"));
    assert_eq!(registration["status"], "active");
    drop(server);
}

#[test]
fn the_printed_shoprenter_lines_install_the_app_vend_its_token_and_uninstall_it() {
    let (_dir, db) = fresh_db();
    let server = Server::start(&db);
    let token_line = server.curl_line("/tokens/shoprenter/demo-shop");

    let installed = Command::new("sh")
        .arg("-c")
        .arg(server.curl_line("/_double/shoprenter/demo-shop/install"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&installed.stdout).contains("The app is installed"));
    let (status, vended) = http(token_line);
    assert_eq!(status, 200, "{vended}");
    assert_eq!(vended["header_name"], "Authorization");

    let uninstalled = Command::new("sh")
        .arg("-c")
        .arg(server.curl_line("/_double/shoprenter/demo-shop/uninstall"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&uninstalled.stdout).contains("The app is uninstalled"));
    let (status, refused) = http(token_line);
    assert_eq!(status, 404, "{refused}");
    assert_eq!(refused["error"]["code"], "not_installed");
    drop(server);
}

#[test]
fn with_a_bearer_token_the_token_and_operator_routes_refuse_anonymous_callers_and_the_platform_routes_stay_open()
 {
    let (_dir, db) = fresh_db();
    let bearer = "a-bearer-token-of-at-least-32-characters";
    let server = Server::start_with(&db, &["--allow-remote"], &[("BROKER_BEARER_TOKEN", bearer)]);
    let status = |line: &str, extra: &str| {
        let line = line.replacen(
            "curl -s",
            &format!("curl -s -o /dev/null -w '%{{http_code}}' {extra}"),
            1,
        );
        let output = Command::new("sh").arg("-c").arg(&line).output().unwrap();
        String::from_utf8(output.stdout).unwrap()
    };
    let token_line = server.curl_line(TOKEN_ROUTE);
    let operator_line = server.curl_line("/installations/shoptet/222651");
    let authorised = format!("-H 'Authorization: Bearer {bearer}'");

    for line in [token_line, operator_line] {
        assert_eq!(status(line, ""), "401", "{line}");
        assert_eq!(
            status(line, &format!("-H 'Authorization: Bearer {bearer}x'")),
            "401",
            "{line}"
        );
    }
    // Authorised: the shop is not installed yet, so the handlers answer.
    assert_eq!(status(token_line, &authorised), "404");
    assert_eq!(status(operator_line, &authorised), "404");
    // The platforms carry no bearer: the install and the webhook reach the
    // broker (the install succeeds; the uninstall's webhook is processed).
    assert_eq!(status(server.install_line(), ""), "200");
    let (_, uninstalled) = http(server.curl_line("/_double/shoptet/222651/uninstall"));
    assert_eq!(uninstalled["webhook"]["status"], 200, "{uninstalled}");
    drop(server);
}

#[test]
fn the_api_description_is_served_without_the_bearer_and_marks_exactly_the_platform_routes_public() {
    let (_dir, db) = fresh_db();
    let bearer = "a-bearer-token-of-at-least-32-characters";
    let server = Server::start_with(&db, &["--allow-remote"], &[("BROKER_BEARER_TOKEN", bearer)]);
    let url = format!("{}/openapi.yaml", server.broker_url());
    assert!(
        server.printed.iter().any(|line| line.ends_with(&url)),
        "the address is printed: {:?}",
        server.printed
    );
    let output = Command::new("curl")
        .args(["-s", "-i", &url])
        .output()
        .unwrap();
    assert!(output.status.success(), "curl {url} failed");
    let printed = String::from_utf8(output.stdout).unwrap();
    let (head, body) = printed.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.lines()
            .any(|line| line.eq_ignore_ascii_case("content-type: application/yaml")),
        "{head}"
    );
    assert_eq!(
        body,
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.yaml")).unwrap(),
        "the top-level openapi.yaml, as built"
    );

    let document: serde_yaml_ng::Value = serde_yaml_ng::from_str(body).expect("YAML");
    let version = document["openapi"].as_str().expect("an openapi version");
    assert!(version.starts_with("3.1."), "{version}");
    // As in template.yaml: SigV4 by default, none on the platform callbacks.
    let default_schemes: Vec<&str> = document["security"]
        .as_sequence()
        .expect("a default security requirement")
        .iter()
        .flat_map(|requirement| requirement.as_mapping().unwrap().keys())
        .map(|name| name.as_str().unwrap())
        .collect();
    assert!(default_schemes.contains(&"sigv4"), "{default_schemes:?}");
    let mut public = Vec::new();
    for (path, item) in document["paths"].as_mapping().expect("paths") {
        for (method, operation) in item.as_mapping().unwrap() {
            let method = method.as_str().unwrap();
            if method == "parameters" {
                continue;
            }
            let security = operation.get("security").and_then(|s| s.as_sequence());
            if security.is_some_and(|requirements| requirements.is_empty()) {
                public.push(format!("{} {}", method, path.as_str().unwrap()));
            }
        }
    }
    public.sort();
    assert_eq!(
        public,
        [
            "get /shoprenter/install",
            "get /shoprenter/uninstall",
            "get /shoptet/install",
            "post /shoptet/eshop-webhook",
            "post /shoptet/webhook",
        ]
    );
    drop(server);
}

/// One raw HTTP/1.1 request whose head claims `content_length` bytes but
/// whose body is never sent: the status line the server answers with,
/// within 5 s (a server that waited for the body would answer nothing).
fn status_before_the_body(broker_url: &str, head: &str, content_length: usize) -> String {
    use std::io::{Read, Write};
    let address = broker_url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    write!(stream, "{head}Content-Length: {content_length}\r\n\r\n").unwrap();
    let mut answer = [0u8; 64];
    let read = stream.read(&mut answer).unwrap_or(0);
    String::from_utf8_lossy(&answer[..read])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn a_foreign_host_an_unauthorised_caller_and_an_oversized_body_are_refused_before_a_body_is_read() {
    let (_dir, db) = fresh_db();
    let server = Server::start(&db);
    let url = server.broker_url().to_owned();
    let authority = url.trim_start_matches("http://").to_owned();

    // A page whose name rebinds to 127.0.0.1 still sends its own Host.
    let foreign = "POST /shoptet/webhook HTTP/1.1\r\nHost: attacker.example\r\n";
    assert_eq!(
        status_before_the_body(&url, foreign, 10_000_000),
        "HTTP/1.1 421 Misdirected Request"
    );
    // Loopback, but a body over 64 KiB (the head says so: nothing is read).
    let oversized = format!("POST /shoptet/webhook HTTP/1.1\r\nHost: {authority}\r\n");
    assert_eq!(
        status_before_the_body(&url, &oversized, 65 * 1024),
        "HTTP/1.1 413 Payload Too Large"
    );
    drop(server);

    let bearer = "a-bearer-token-of-at-least-32-characters";
    let server = Server::start_with(&db, &["--allow-remote"], &[("BROKER_BEARER_TOKEN", bearer)]);
    let url = server.broker_url().to_owned();
    let authority = url.trim_start_matches("http://").to_owned();
    // An operator route without the bearer: refused before its body.
    let unauthorised =
        format!("PUT /shoptet/222651/installation HTTP/1.1\r\nHost: {authority}\r\n");
    assert_eq!(
        status_before_the_body(&url, &unauthorised, 10_000_000),
        "HTTP/1.1 401 Unauthorized"
    );
    drop(server);
}

/// The documented check, as each of the three snippets in
/// `examples/events` runs it: whether it calls the delivery genuine.
fn snippets_accept(delivery: &Received, secret: &str) -> [bool; 3] {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".venv/bin/python");
    let scripts = root.join("examples/events");
    let commands = [
        (python.into_os_string(), scripts.join("verify_delivery.py")),
        ("node".into(), scripts.join("verify_delivery.js")),
        ("php".into(), scripts.join("verify_delivery.php")),
    ];
    commands.map(|(program, script)| {
        use std::io::Write;
        let mut child = Command::new(program)
            .arg(&script)
            .env("EVENTS_SECRET", secret)
            .env("WEBHOOK_ID", delivery.header("webhook-id"))
            .env("WEBHOOK_TIMESTAMP", delivery.header("webhook-timestamp"))
            .env("WEBHOOK_SIGNATURE", delivery.header("webhook-signature"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
        child
            .stdin
            .take()
            .unwrap()
            .write_all(&delivery.body)
            .unwrap();
        let output = child.wait_with_output().unwrap();
        let said = String::from_utf8_lossy(&output.stdout);
        assert_eq!(
            output.status.success(),
            said.starts_with("genuine"),
            "{}: {said}",
            script.display()
        );
        output.status.success()
    })
}

#[test]
fn local_mode_delivers_an_install_a_suspension_and_an_uninstall_signed_and_prints_them() {
    let (_dir, db) = fresh_db();
    let receiver = test_support::events::EventReceiver::start(204);
    let url = receiver.url.clone();
    let secret = "local-events-secret-for-this-test";
    let server = Server::start_with(&db, &["--events-url", &url, "--events-secret", secret], &[]);
    assert!(
        server
            .printed
            .iter()
            .any(|line| line.contains("delivered to")),
        "{:?}",
        server.printed
    );
    assert_eq!(shell(server.install_line())["status"], "installed");
    http(server.curl_line("/_double/shoptet/222651/suspend"));
    http(server.curl_line("/_double/shoptet/222651/uninstall"));

    // The install also registered the sandbox's e-shop webhooks, which
    // announced itself: four deliveries, three of them lifecycle events.
    let deliveries: Vec<_> = receiver
        .wait_for(4, std::time::Duration::from_secs(15))
        .into_iter()
        .filter(|d| {
            serde_json::from_slice::<Value>(&d.body)
                .unwrap()
                .get("kind")
                .is_some()
        })
        .collect();
    let events: Vec<Value> = deliveries
        .iter()
        .map(|d| serde_json::from_slice(&d.body).unwrap())
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["installed", "suspended", "uninstalled"]);
    let sequences: Vec<u64> = events
        .iter()
        .map(|e| e["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(sequences, [1, 2, 3]);

    let signing = broker_domain::secret::EventSigningSecret::new(secret);
    for (delivery, event) in deliveries.iter().zip(&events) {
        let header = |name: &str| delivery.header(name);
        assert_eq!(
            event["id"],
            header("webhook-id"),
            "the delivery's id is the event's"
        );
        assert_eq!(
            broker_events::verify(
                &signing,
                header("webhook-id"),
                header("webhook-timestamp"),
                header("webhook-signature"),
                &delivery.body,
                std::time::SystemTime::now(),
            ),
            Ok(())
        );
    }
    // The documented check in PHP, Node and Python takes the genuine
    // delivery and refuses it tampered (one byte of the body changed).
    let genuine = &deliveries[0];
    assert_eq!(snippets_accept(genuine, secret), [true; 3]);
    let mut tampered = genuine.clone();
    let text = String::from_utf8(tampered.body.clone()).unwrap();
    tampered.body = text
        .replacen("\"installed\"", "\"imported\"", 1)
        .into_bytes();
    assert_ne!(tampered.body, genuine.body);
    assert_eq!(snippets_accept(&tampered, secret), [false; 3]);
    assert_eq!(snippets_accept(genuine, "another-secret"), [false; 3]);
    assert!(
        broker_events::verify(
            &signing,
            tampered.header("webhook-id"),
            tampered.header("webhook-timestamp"),
            tampered.header("webhook-signature"),
            &tampered.body,
            std::time::SystemTime::now(),
        )
        .is_err()
    );

    // And each was printed, as delivered.
    let printed = server.later.lock().unwrap().clone();
    let printed_events = printed
        .iter()
        .filter(|l| l.starts_with("event: ") && l.contains("\"kind\""))
        .count();
    assert_eq!(printed_events, 3, "{printed:?}");
    drop(server);
}

/// The README's walkthrough: install, see the webhooks registered, place a
/// sandbox order, see the event.
#[test]
fn the_printed_webhook_lines_show_the_registration_and_a_sandbox_order_arrives_as_an_event() {
    let (_dir, db) = fresh_db();
    let server = Server::start(&db);
    assert_eq!(shell(server.install_line())["status"], "installed");

    let listing = server.curl_line("/_double/shoptet/222651/webhooks");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let registered = loop {
        let (status, body) = http(listing);
        assert_eq!(status, 200);
        let events: Vec<String> = body["webhooks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["event"].as_str().unwrap().to_owned())
            .collect();
        if events.len() == 3 || std::time::Instant::now() > deadline {
            break events;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let mut registered = registered;
    registered.sort();
    assert_eq!(registered, ["job:finished", "order:create", "order:paid"]);

    let (status, order) = http(server.curl_line("/_double/shoptet/222651/orders"));
    assert_eq!(status, 200, "{order}");
    let instance = order["eventInstance"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let forwarded = loop {
        let printed = server.later.lock().unwrap().clone();
        let found = printed
            .iter()
            .filter_map(|line| line.strip_prefix("event: "))
            .map(|json| serde_json::from_str::<Value>(json).unwrap())
            .find(|event| event["event_instance"] == instance.as_str());
        if let Some(found) = found {
            break found;
        }
        assert!(std::time::Instant::now() < deadline, "{printed:?}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(forwarded["event"], "order:create");
    assert_eq!(forwarded["delivery"], "live");
    let body: Value = serde_json::from_str(forwarded["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["eshopId"], 222651);
}
