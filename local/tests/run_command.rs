//! The run command from a newcomer's point of view: start the binary, paste
//! the printed curl lines, restart, and find everything still there.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use broker_shared::storage::InstallationStore;
use broker_shared::storage::sqlite::SqliteStore;
use serde_json::Value;

struct Server {
    child: Child,
    printed: Vec<String>,
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
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, printed }
    }

    fn curl_lines(&self) -> Vec<&str> {
        self.printed
            .iter()
            .filter_map(|line| line.strip_prefix("  "))
            .filter(|line| line.starts_with("curl "))
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
    let dir = std::env::temp_dir().join(format!("broker-local-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("broker.db");
    let _ = std::fs::remove_file(&db);

    let server = Server::start(&db);
    let [install, token, api] = server.curl_lines()[..] else {
        panic!("expected three curl lines, got {:?}", server.printed);
    };
    let installed = shell(install);
    let vended = shell(token);
    let eshop = shell(api);

    assert_eq!(installed["status"], "installed", "{installed}");
    assert_eq!(vended["platform"], "shoptet");
    assert_eq!(vended["header_name"], "Shoptet-Access-Token");
    assert!(eshop["data"].is_object(), "{eshop}");
    let first_token = vended["access_token"].as_str().unwrap().to_owned();
    drop(server);

    let restarted = Server::start(&db);
    let again = shell(restarted.curl_lines()[1]);
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
    let _ = std::fs::remove_dir_all(&dir);
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

#[test]
fn with_a_bearer_token_the_token_routes_refuse_anonymous_callers() {
    let dir = std::env::temp_dir().join(format!("broker-local-bearer-{}", std::process::id()));
    let bearer = "a-bearer-token-of-at-least-32-characters";
    let server = Server::start_with(
        &dir.join("broker.db"),
        &["--allow-remote"],
        &[("BROKER_BEARER_TOKEN", bearer)],
    );
    let token_line = server.curl_lines()[1];
    let status = |extra: &str| {
        let line = token_line.replace(
            "curl -s",
            &format!("curl -s -o /dev/null -w '%{{http_code}}' {extra}"),
        );
        let output = Command::new("sh").arg("-c").arg(&line).output().unwrap();
        String::from_utf8(output.stdout).unwrap()
    };

    assert_eq!(status(""), "401");
    assert_eq!(
        status(&format!("-H 'Authorization: Bearer {bearer}x'")),
        "401"
    );
    // Authorised: the shop is not installed yet, so the vendor itself answers.
    assert_eq!(
        status(&format!("-H 'Authorization: Bearer {bearer}'")),
        "404"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
