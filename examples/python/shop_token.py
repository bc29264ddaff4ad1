"""Shop API tokens from the shop-token-broker's token vendor, from Python.

Copy `ShopTokens` (and `BrokerError`) into your code; it needs only boto3:

    tokens = ShopTokens("<TokenVendorFunctionName>")
    status, eshop = tokens.call_api("shoptet", "222651", "GET", "/eshop")
    token = tokens.token("shoptet", "222651")  # or send the header yourself:
    # token["header_name"]: token["header_value"] to token["api_base_url"] + path

Run as a script, this file is the end-to-end check that scripts/e2e.sh runs
against the real vendor under `cargo lambda watch` (see `main`).
"""

import json
import re
import time
import urllib.error
import urllib.request
from datetime import datetime

import boto3


# How a function error's message says when to come back (rate_limited,
# token_cap_reached): it ends with "(retry after N s)".
_RETRY_AFTER = re.compile(r"\(retry after (\d+) s\)$")


class BrokerError(Exception):
    """The vendor's answer was an error; `code` is its stable code
    (not_installed, addon_suspended, rate_limited, ...; README, "Token vendor
    interface"); `retry_after` the seconds to wait before asking again, or
    None when the refusal names no wait."""

    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code
        match = _RETRY_AFTER.search(message or "")
        self.retry_after = int(match.group(1)) if match else None


class ShopTokens:
    """Vends tokens by invoking the token vendor, and caches each one in this
    process until `margin_seconds` before its `expires_at`."""

    def __init__(self, function_name, lambda_client=None, margin_seconds=60):
        self.function_name = function_name
        self.lambda_client = lambda_client or boto3.client("lambda")
        self.margin_seconds = margin_seconds
        self.send = send_http  # (method, token, path, body) -> (status, JSON or None)
        self._cache = {}  # (platform, shop) -> (vend answer, expires_at in epoch seconds)

    def token(self, platform, shop, min_ttl_seconds=0):
        """The vend answer: access_token, header_name, header_value,
        api_base_url, expires_at, ... Raises BrokerError."""
        hit = self._cache.get((platform, shop))
        if hit and hit[1] - time.time() > max(self.margin_seconds, min_ttl_seconds):
            return hit[0]
        return self._vend(platform, shop, min_ttl_seconds=min_ttl_seconds or None)

    def refresh(self, platform, shop, refused_token):
        """Reports a token the platform refused; returns its replacement."""
        return self._vend(platform, shop, stale_token=refused_token)

    def _vend(self, platform, shop, **options):
        payload = {"platform": platform, "shop": shop}
        payload.update((key, value) for key, value in options.items() if value is not None)
        answer = self.lambda_client.invoke(
            FunctionName=self.function_name, Payload=json.dumps(payload).encode()
        )
        body = json.loads(answer["Payload"].read())
        if answer.get("FunctionError"):  # body: {"errorType": code, "errorMessage": ...}
            raise BrokerError(body.get("errorType", "unknown"), body.get("errorMessage", ""))
        expires_at = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
        self._cache[(platform, shop)] = (body, expires_at.timestamp())
        return body

    def call_api(self, platform, shop, method, path, body=None):
        """Calls the shop's API (path relative to api_base_url, e.g. "/eshop").
        A token the platform refuses is reported once and the call retried
        with its replacement. Returns (HTTP status, JSON body or None)."""
        token = self.token(platform, shop)
        status, answer = self.send(method, token, path, body)
        if is_refused_token(platform, status, answer):
            token = self.refresh(platform, shop, token["access_token"])
            status, answer = self.send(method, token, path, body)
        return status, answer


def is_refused_token(platform, status, answer):
    """401 with Shoptet's expired-token / invalid-token, or any Shoprenter 401.
    (Shoptet's 403 invalid-token-no-rights is about rights: not retried.)"""
    if status != 401:
        return False
    if platform == "shoprenter":
        return True
    errors = (answer.get("errors") or []) if isinstance(answer, dict) else []
    return any(e.get("errorCode") in ("expired-token", "invalid-token") for e in errors)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Never follows a redirect: urllib would re-send the token header to
    whatever host the answer names. The redirect is answered as it came."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def send_http(method, token, path, body=None):
    """One request to the platform API with the token's header."""
    headers = {token["header_name"]: token["header_value"], "Content-Type": "application/json"}
    if token.get("platform") == "shoprenter":
        headers["Accept"] = "application/json"  # Shoprenter answers XML without it
    request = urllib.request.Request(
        token["api_base_url"] + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers=headers,
    )
    try:
        with _OPENER.open(request, timeout=30) as response:
            status, text = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, None


# ---------------------------------------------------------------------------
# The end-to-end check (tests/e2e/examples.py runs it; never prints a token).


def main():
    import hashlib
    import os
    import sys

    function = os.environ.get("SHOP_TOKEN_FUNCTION", "token-vendor")
    shop, unknown = os.environ["E2E_SHOP"], os.environ["E2E_UNKNOWN_SHOP"]
    # Lambda's Invoke API (tests/e2e/examples.py: the watch server's, as AWS answers).
    client = boto3.client("lambda", endpoint_url=os.environ["E2E_LAMBDA_ENDPOINT"])
    invocations = []  # one per Invoke request sent
    client.meta.events.register("before-send.lambda.Invoke", lambda **_: invocations.append(1))

    def invoked():  # Invoke requests since the last call
        count = len(invocations)
        invocations.clear()
        return count
    tokens = ShopTokens(function, lambda_client=client)
    failures = []

    def check(ok, what):
        print(f"{'PASS' if ok else 'FAIL'} python: {what}", flush=True)
        if not ok:
            failures.append(what)

    def shown(token):  # never the token itself
        digest = hashlib.sha256(token["access_token"].encode()).hexdigest()[:12]
        return f"{len(token['access_token'])} chars, sha256 {digest}…"

    first = tokens.token("shoptet", shop)
    check(invoked() == 1 and first["header_name"] == "Shoptet-Access-Token",
          f"1. cache miss: vended ({shown(first)}, expires_at {first['expires_at']}), 1 invocation")
    again = tokens.token("shoptet", shop)
    check(again["access_token"] == first["access_token"] and invoked() == 0,
          "2. cache hit: the same token, no invocation")

    status, eshop = tokens.call_api("shoptet", shop, "GET", "/eshop")
    check(status == 200 and (eshop or {}).get("data") is not None and invoked() == 0,
          f"3. GET {first['api_base_url']}/eshop with the cached token: {status}")

    # The platform refuses the cached token once (as Shoptet does when it
    # expired early): the token is reported as stale_token, the replacement used.
    real_send, sent = tokens.send, []

    def refuse_first(method, token, path, body=None):
        sent.append(token["access_token"])
        if len(sent) == 1:
            return 401, {"data": None, "errors": [{"errorCode": "expired-token",
                                                   "message": "Token is expired."}]}
        return real_send(method, token, path, body)

    tokens.send = refuse_first
    status, eshop = tokens.call_api("shoptet", shop, "GET", "/eshop")
    tokens.send = real_send
    renewed = tokens.token("shoptet", shop)
    check(status == 200 and len(sent) == 2 and sent[0] == first["access_token"]
          and sent[1] == renewed["access_token"] != first["access_token"]
          and invoked() == 1,
          f"4. refused token (401 expired-token): stale_token retry got a different token "
          f"({shown(renewed)}), retried call {status}, 1 invocation")

    # A cached token within the margin of its expires_at is not served: a
    # client whose margin exceeds the token's remaining life vends again.
    strict = ShopTokens(function, lambda_client=client, margin_seconds=3600)
    strict.token("shoptet", shop)
    strict.token("shoptet", shop)
    check(invoked() == 2, "5. a token within the margin of expires_at: vended again")

    # Shoprenter answers XML unless asked for JSON: call_api asks.
    shoprenter = os.environ["E2E_SHOPRENTER_SHOP"]
    status, products = tokens.call_api("shoprenter", shoprenter, "GET", "/products")
    check(status == 200 and (products or {}).get("ok") is True and invoked() == 1,
          f"5b. Shoprenter GET /products: {status}, answered in JSON")

    try:
        tokens.token("shoptet", unknown)
        check(False, f"6. unknown shop {unknown}: no error raised")
    except BrokerError as error:
        check(error.code == "not_installed" and invoked() == 1,
              f"6. unknown shop {unknown}: BrokerError {error.code}")

    capped = BrokerError("token_cap_reached",
                         "the shop already has the maximum number of live API tokens (retry after 2 s)")
    check(capped.retry_after == 2 and BrokerError("not_installed", "no").retry_after is None,
          "7. a function error's \"(retry after N s)\" is read as retry_after")

    if failures:
        sys.exit(f"python example: {len(failures)} check(s) failed")
    print("python example: all checks passed")


if __name__ == "__main__":
    main()
