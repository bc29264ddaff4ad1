"""Runs the consumer examples against the token vendor under `cargo lambda watch`.

    scripts/e2e.sh   (runs this after the Rust checks)

The examples, examples/python/shop_token.py (boto3),
examples/node/shop-token.mjs (AWS SDK v3) and examples/php (AsyncAws core's
signer, curl; its check is examples/php/e2e.php), are the README's "from
Python / Node / PHP" code; each is also its own check (vend, cache hit,
stale_token retry, a Shoprenter call answered in JSON, not_installed; PHP
also a second process reading the file cache, a 429 and a 423 waited out).
This script, with E2E_WATCH_URL, E2E_DOUBLE_URL, E2E_EXAMPLES_ESHOP_ID,
E2E_EXAMPLES_INSTALL_CODE, E2E_UNKNOWN_ESHOP_ID and E2E_SHOPRENTER_SHOP
(registered in the double with E2E_SHOPRENTER_CLIENT_ID and
E2E_SHOPRENTER_CLIENT_SECRET) from scripts/e2e.sh:

1. installs the examples' own e-shop (seeded in the platform double; the Rust
   checks uninstall theirs) by invoking install-callback with the API Gateway
   v2 install event, tests/events/install-apigw-v2.json, and registers the
   Shoprenter shop's own API credentials with the operator route's event,
   tests/events/shoprenter-credentials-apigw-v2.json;
2. serves Lambda's Invoke API on a loopback port in front of the watch server,
   answering a function error as Lambda does (HTTP 200 with
   `X-Amz-Function-Error: Unhandled`, the `{"errorType", "errorMessage"}`
   payload) where the watch server answers HTTP 500 without that header (see
   FUNCTION_ERROR_STATUS in tests/lambda_watch.rs); the SDKs would take that
   for a service error, retry it and lose the errorType. Everything else
   passes through unchanged;
3. runs each example with E2E_LAMBDA_ENDPOINT pointing there, and exits
   non-zero when either fails.
"""

import json
import os
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WATCH = os.environ.get("E2E_WATCH_URL", "")
TIMEOUT = int(os.environ.get("E2E_INVOKE_TIMEOUT", "300"))
INVOKE_PATH = re.compile(r"^/2015-03-31/functions/[A-Za-z0-9_-]+/invocations$")


def invoke_watch(path, body):
    """POSTs to the watch server; returns (status, body)."""
    request = urllib.request.Request(WATCH + path, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def is_function_error(body):
    try:
        return "errorType" in json.loads(body)
    except (ValueError, TypeError):
        return False


class InvokeApi(BaseHTTPRequestHandler):
    """Lambda's Invoke API, forwarded to the watch server."""

    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = {"Content-Type": "application/json"}
        if not INVOKE_PATH.match(self.path.split("?")[0]):
            status, body = 404, b'{"message":"not an Invoke path"}'
        else:
            status, body = invoke_watch(self.path, body)
            if status == 500 and is_function_error(body):
                status, headers["X-Amz-Function-Error"] = 200, "Unhandled"
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def required(name):
    value = os.environ.get(name, "")
    if not value:
        sys.exit(f"{name} is not set: run scripts/e2e.sh, which starts what this needs")
    return value


def install(shop, code):
    """Shoptet's install redirect for SHOP, as API Gateway v2 delivers it."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", code):
        sys.exit(f"unexpected install code from the double for e-shop {shop}")
    event = (ROOT / "tests/events/install-apigw-v2.json").read_text().replace("__CODE__", code)
    status, answer = invoke_watch("/2015-03-31/functions/install-callback/invocations",
                                  event.encode())
    what = f"examples: install e-shop {shop} (invoke install-callback, API Gateway v2 event)"
    try:
        payload = json.loads(answer)
        body = json.loads(payload["body"])
        ok = (status == 200 and payload["statusCode"] == 200
              and body["status"] == "installed" and body["shop"] == shop)
    except (ValueError, KeyError, TypeError):
        ok, payload = False, None
    if not ok:  # the install answer carries no token
        sys.exit(f"FAIL {what}: HTTP {status}: {answer[:600]!r}")
    print(f"PASS {what}: 200, installed", flush=True)


def register_shoprenter(shop, client_id, client_secret):
    """`PUT /shoprenter/{shop}/credentials` as API Gateway v2 delivers it
    (with the caller's IAM identity): the broker checks them with the double
    and stores them."""
    event = (ROOT / "tests/events/shoprenter-credentials-apigw-v2.json").read_text()
    for placeholder, value in (("__SHOP__", shop), ("__CLIENT_ID__", client_id),
                               ("__CLIENT_SECRET__", client_secret)):
        event = event.replace(placeholder, value)
    status, answer = invoke_watch("/2015-03-31/functions/install-callback/invocations",
                                  event.encode())
    what = f"examples: register Shoprenter shop {shop}'s credentials (invoke install-callback)"
    try:
        ok = status == 200 and json.loads(answer)["statusCode"] in (200, 201)
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:  # the answer carries no secret
        sys.exit(f"FAIL {what}: HTTP {status}: {answer[:600]!r}")
    print(f"PASS {what}", flush=True)


class Elsewhere(BaseHTTPRequestHandler):
    """Another host: counts whatever reaches it (a token must never)."""

    reached = []

    def do_GET(self):  # noqa: N802 (the stdlib's naming)
        Elsewhere.reached.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def redirecting_to(target):
    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(307)
            self.send_header("Location", target + self.path)
            self.end_headers()

        def log_message(self, *args):
            pass

    return Redirect


def check_redirects():
    """Each example's API call answers a 307 to another host as it came: the
    token header never reaches that host."""
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), Elsewhere)]
    other = f"http://127.0.0.1:{servers[0].server_address[1]}"
    servers.append(ThreadingHTTPServer(("127.0.0.1", 0), redirecting_to(other)))
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    token = {
        "api_base_url": f"http://127.0.0.1:{servers[1].server_address[1]}",
        "header_name": "Shoptet-Access-Token",
        "header_value": "e2e-redirect-token",
    }
    python = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import shop_token; "
        "print(shop_token.send_http('GET', json.loads(sys.argv[2]), '/eshop')[0])"
    )
    node = (
        # The token first: the example runs its own check when argv[1] is its path.
        "const { sendHttp } = await import(process.argv[2]); "
        "console.log((await sendHttp('GET', JSON.parse(process.argv[1]), '/eshop')).status)"
    )
    checks = {
        "python": [sys.executable, "-c", python, str(ROOT / "examples/python"), json.dumps(token)],
        "node": ["node", "--input-type=module", "-e", node, json.dumps(token), str(ROOT / "examples/node/shop-token.mjs")],
    }
    failed = []
    for name, command in checks.items():
        answer = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        status = answer.stdout.strip()
        if answer.returncode or status != "307" or Elsewhere.reached:
            failed.append(f"{name}: status {status!r}, reached {Elsewhere.reached}, {answer.stderr[-400:]}")
        Elsewhere.reached.clear()
    for server in servers:
        server.shutdown()
    if failed:
        sys.exit("examples: a redirect was followed: " + "; ".join(failed))
    print("examples: no redirect followed (python, node)", flush=True)


def main():
    required("E2E_WATCH_URL")
    check_redirects()
    shop = required("E2E_EXAMPLES_ESHOP_ID")
    install(shop, required("E2E_EXAMPLES_INSTALL_CODE"))
    shoprenter = required("E2E_SHOPRENTER_SHOP")
    register_shoprenter(shoprenter, required("E2E_SHOPRENTER_CLIENT_ID"),
                        required("E2E_SHOPRENTER_CLIENT_SECRET"))

    server = ThreadingHTTPServer(("127.0.0.1", 0), InvokeApi)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {
        **os.environ,
        "E2E_LAMBDA_ENDPOINT": f"http://127.0.0.1:{server.server_address[1]}",
        "E2E_SHOP": shop,
        "E2E_UNKNOWN_SHOP": required("E2E_UNKNOWN_ESHOP_ID"),
        "E2E_SHOPRENTER_SHOP": shoprenter,
        "E2E_DOUBLE_URL": required("E2E_DOUBLE_URL"),
        "SHOP_TOKEN_FUNCTION": "token-vendor",
        # Dummy credentials: the SDKs sign, nobody checks.
        "AWS_ACCESS_KEY_ID": "e2e",
        "AWS_SECRET_ACCESS_KEY": "e2e",
        "AWS_REGION": os.environ.get("AWS_REGION", "eu-central-1"),
    }
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        env.pop(name, None)
    examples = [
        [sys.executable, str(ROOT / "examples/python/shop_token.py")],
        ["node", str(ROOT / "examples/node/shop-token.mjs")],
        ["php", str(ROOT / "examples/php/e2e.php")],
    ]
    failed = []
    for command in examples:
        name = os.path.relpath(command[-1], ROOT)
        print(f"==> {name}", flush=True)
        if subprocess.run(command, env=env, timeout=2 * TIMEOUT, check=False).returncode:
            failed.append(name)
    server.shutdown()
    if failed:
        sys.exit(f"examples: FAILED: {', '.join(failed)}")
    print("examples: all passed", flush=True)


if __name__ == "__main__":
    main()
