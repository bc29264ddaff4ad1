"""schemathesis hooks of the conformance step (scripts/test.sh, step `conformance`).

broker-local's sandbox verifies the platform callbacks like the real stack
does: Shoptet webhooks need an HMAC-SHA1 signature, Shoprenter redirects an
HMAC-SHA256 `hmac` and a fresh `timestamp`, later than the shop's last. Unsigned, every generated request
would stop at 401. So a generated request that carries no signature of its
own is signed here with the sandbox's public, not-for-production secrets
(`local/src/sandbox.rs`). Only what the schema allows is added (the
signature header, `timestamp` and `hmac` strings), so what schemathesis
counts as valid or invalid input stays as generated. A request that carries
a generated signature of its own is sent as generated (the 401 path).

After the run, the statuses seen per operation are written as JSON to
$CONFORMANCE_SUMMARY, so the step can prove that the seeded shop vended and
that signed deliveries got past the signature check.
"""

import atexit
import collections
import hashlib
import hmac
import json
import os
import time

import schemathesis
from schemathesis.core import NotSet

# local/src/sandbox.rs: SANDBOX_WEBHOOK_KEY, SANDBOX_SHOPRENTER_CLIENT_SECRET.
WEBHOOK_KEY = b"sandbox-webhook-key-not-for-production"
SHOPRENTER_APP_SECRET = b"sandbox-app-secret-not-for-production"

SIGNATURE_HEADER = "Shoptet-Webhook-Signature"
REDIRECTS = ("/shoprenter/install", "/shoprenter/uninstall")

# "METHOD /path" -> {"status": count}, and how many requests were signed here.
STATUSES = collections.defaultdict(collections.Counter)
SIGNED = set()
# Shop name -> the last timestamp a redirect for it was signed with here.
LAST_SIGNED = {}


def _label(case):
    return f"{case.method.upper()} {case.operation.path}"


def _sign_webhook(case, kwargs):
    headers = case.headers
    if case.method.upper() != "POST" or headers is None or SIGNATURE_HEADER in headers:
        return False
    if isinstance(case.body, (bytes, NotSet)):
        return False
    try:
        # What requests sends for `json=`; passed as `data`, it is sent verbatim.
        raw = json.dumps(case.body, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError):
        return False
    kwargs["data"] = raw
    headers[SIGNATURE_HEADER] = hmac.new(WEBHOOK_KEY, raw, hashlib.sha1).hexdigest()
    return True


def _sign_redirect(case):
    query = case.query
    if case.method.upper() != "GET" or query is None or "hmac" in query:
        return False
    shopname, code = query.get("shopname"), query.get("code", "")
    if not isinstance(shopname, str) or not isinstance(code, str):
        return False
    # The broker acts on a signed redirect once, and only on one signed
    # later than the shop's last: each shop's next signature is a second
    # after its previous one, as real redirects (seconds apart) would be.
    shop = shopname.strip().lower()
    signed_at = max(int(time.time()), LAST_SIGNED.get(shop, 0) + 1)
    LAST_SIGNED[shop] = signed_at
    timestamp = str(signed_at)
    # Shoprenter's documented message; the broker also accepts it when more
    # parameters (app_url) arrive.
    message = f"shopname={shopname}&code={code}&timestamp={timestamp}"
    query["timestamp"] = timestamp
    query["hmac"] = hmac.new(SHOPRENTER_APP_SECRET, message.encode(), hashlib.sha256).hexdigest()
    return True


@schemathesis.hook
def before_call(context, case, kwargs):
    path = case.operation.path
    signed = False
    if path == "/shoptet/webhook":
        signed = _sign_webhook(case, kwargs)
    elif path in REDIRECTS:
        signed = _sign_redirect(case)
    if signed:
        SIGNED.add(id(case))
    else:
        SIGNED.discard(id(case))


@schemathesis.hook
def after_call(context, case, response):
    label = _label(case)
    STATUSES[label][str(response.status_code)] += 1
    if id(case) in SIGNED:
        SIGNED.discard(id(case))
        STATUSES[label]["signed"] += 1
        if response.status_code == 401:
            raise AssertionError(
                f"{label} signed with the sandbox's secret got 401: "
                "have the secrets in local/src/sandbox.rs changed? (scripts/conformance_hooks.py)"
            )


@atexit.register
def _write_summary():
    path = os.environ.get("CONFORMANCE_SUMMARY")
    if path:
        with open(path, "w", encoding="utf-8") as out:
            json.dump({label: dict(counts) for label, counts in sorted(STATUSES.items())}, out, indent=1)
