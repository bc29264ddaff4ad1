// Shop API tokens from the shop-token-broker's token vendor, from Node.js
// (AWS SDK v3, `npm install @aws-sdk/client-lambda`).
//
// Copy `ShopTokens` (and `BrokerError`) into your code:
//
//   const tokens = new ShopTokens("<TokenVendorFunctionName>");
//   const { status, body } = await tokens.callApi("shoptet", "222651", "GET", "/eshop");
//   const token = await tokens.token("shoptet", "222651"); // or send the header yourself:
//   // token.header_name: token.header_value to token.api_base_url + path
//
// Run as a script, this file is the end-to-end check that scripts/e2e.sh runs
// against the real vendor under `cargo lambda watch` (see `main`).

import { pathToFileURL } from "node:url";

import { InvokeCommand, LambdaClient } from "@aws-sdk/client-lambda";

/** How a function error's message says when to come back (rate_limited,
 * token_cap_reached): it ends with "(retry after N s)". */
const RETRY_AFTER = /\(retry after (\d+) s\)$/;

/** The vendor's answer was an error; `code` is its stable code (not_installed,
 * addon_suspended, rate_limited, ...; README, "Token vendor interface");
 * `retryAfter` the seconds to wait before asking again, or null when the
 * refusal names no wait. */
export class BrokerError extends Error {
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.name = "BrokerError";
    this.code = code;
    const match = RETRY_AFTER.exec(message ?? "");
    this.retryAfter = match ? Number(match[1]) : null;
  }
}

/** Vends tokens by invoking the token vendor, and caches each one in this
 * process until `marginSeconds` before its `expires_at`. */
export class ShopTokens {
  #cache = new Map(); // "platform/shop" -> { token: vend answer, expiresAt: epoch ms }

  constructor(functionName, { lambda = new LambdaClient({}), marginSeconds = 60 } = {}) {
    this.functionName = functionName;
    this.lambda = lambda;
    this.marginSeconds = marginSeconds;
    this.send = sendHttp; // (method, token, path, body) -> { status, body: JSON or null }
  }

  /** The vend answer: access_token, header_name, header_value, api_base_url,
   * expires_at, ... Throws BrokerError. */
  async token(platform, shop, { minTtlSeconds = 0 } = {}) {
    const hit = this.#cache.get(`${platform}/${shop}`);
    if (hit && hit.expiresAt - Date.now() > Math.max(this.marginSeconds, minTtlSeconds) * 1000) {
      return hit.token;
    }
    return this.#vend(platform, shop, minTtlSeconds ? { min_ttl_seconds: minTtlSeconds } : {});
  }

  /** Reports a token the platform refused; returns its replacement. */
  refresh(platform, shop, refusedToken) {
    return this.#vend(platform, shop, { stale_token: refusedToken });
  }

  async #vend(platform, shop, options) {
    const answer = await this.lambda.send(new InvokeCommand({
      FunctionName: this.functionName,
      Payload: JSON.stringify({ platform, shop, ...options }),
    }));
    const body = JSON.parse(new TextDecoder().decode(answer.Payload));
    if (answer.FunctionError) { // body: { errorType: code, errorMessage }
      throw new BrokerError(body.errorType ?? "unknown", body.errorMessage ?? "");
    }
    this.#cache.set(`${platform}/${shop}`, { token: body, expiresAt: Date.parse(body.expires_at) });
    return body;
  }

  /** Calls the shop's API (path relative to api_base_url, e.g. "/eshop"). A
   * token the platform refuses is reported once and the call retried with its
   * replacement. Returns { status, body: JSON or null }. */
  async callApi(platform, shop, method, path, body) {
    let token = await this.token(platform, shop);
    let answer = await this.send(method, token, path, body);
    if (isRefusedToken(platform, answer)) {
      token = await this.refresh(platform, shop, token.access_token);
      answer = await this.send(method, token, path, body);
    }
    return answer;
  }
}

/** 401 with Shoptet's expired-token / invalid-token, or any Shoprenter 401.
 * (Shoptet's 403 invalid-token-no-rights is about rights: not retried.) */
export function isRefusedToken(platform, { status, body }) {
  if (status !== 401) return false;
  if (platform === "shoprenter") return true;
  const errors = Array.isArray(body?.errors) ? body.errors : [];
  return errors.some((e) => e?.errorCode === "expired-token" || e?.errorCode === "invalid-token");
}

/** One request to the platform API with the token's header. */
export async function sendHttp(method, token, path, body) {
  const headers = { [token.header_name]: token.header_value, "Content-Type": "application/json" };
  if (token.platform === "shoprenter") headers.Accept = "application/json"; // XML without it
  const response = await fetch(token.api_base_url + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    // Never follow a redirect: the token header would go along to whatever
    // host the answer names. The redirect is answered as it came.
    redirect: "manual",
    signal: AbortSignal.timeout(30_000),
  });
  const text = await response.text();
  try {
    return { status: response.status, body: JSON.parse(text) };
  } catch {
    return { status: response.status, body: null };
  }
}

// ---------------------------------------------------------------------------
// The end-to-end check (tests/e2e/examples.py runs it; never prints a token).

async function main() {
  const { createHash } = await import("node:crypto");
  const env = (name) => process.env[name] ?? (() => { throw new Error(`${name} is not set`); })();
  const functionName = process.env.SHOP_TOKEN_FUNCTION ?? "token-vendor";
  const shop = env("E2E_SHOP");
  const unknown = env("E2E_UNKNOWN_SHOP");
  // Lambda's Invoke API (tests/e2e/examples.py: the watch server's, as AWS answers).
  const lambda = new LambdaClient({ endpoint: env("E2E_LAMBDA_ENDPOINT") });
  let invocations = 0; // Invoke requests sent
  lambda.middlewareStack.add((next) => (args) => { invocations += 1; return next(args); },
    { step: "finalizeRequest", priority: "low", name: "countInvocations" });
  const invoked = () => { // Invoke requests since the last call
    const count = invocations;
    invocations = 0;
    return count;
  };
  const tokens = new ShopTokens(functionName, { lambda });
  const failures = [];
  const check = (ok, what) => {
    console.log(`${ok ? "PASS" : "FAIL"} node: ${what}`);
    if (!ok) failures.push(what);
  };
  const shown = (token) => { // never the token itself
    const digest = createHash("sha256").update(token.access_token).digest("hex").slice(0, 12);
    return `${token.access_token.length} chars, sha256 ${digest}…`;
  };

  const first = await tokens.token("shoptet", shop);
  check(invoked() === 1 && first.header_name === "Shoptet-Access-Token",
    `1. cache miss: vended (${shown(first)}, expires_at ${first.expires_at}), 1 invocation`);
  const again = await tokens.token("shoptet", shop);
  check(again.access_token === first.access_token && invoked() === 0,
    "2. cache hit: the same token, no invocation");

  let answer = await tokens.callApi("shoptet", shop, "GET", "/eshop");
  check(answer.status === 200 && answer.body?.data != null && invoked() === 0,
    `3. GET ${first.api_base_url}/eshop with the cached token: ${answer.status}`);

  // The platform refuses the cached token once (as Shoptet does when it
  // expired early): the token is reported as stale_token, the replacement used.
  const realSend = tokens.send;
  const sent = [];
  tokens.send = (method, token, path, body) => {
    sent.push(token.access_token);
    if (sent.length === 1) {
      return { status: 401, body: { data: null, errors: [{ errorCode: "expired-token", message: "Token is expired." }] } };
    }
    return realSend(method, token, path, body);
  };
  answer = await tokens.callApi("shoptet", shop, "GET", "/eshop");
  tokens.send = realSend;
  const renewed = await tokens.token("shoptet", shop);
  check(answer.status === 200 && sent.length === 2 && sent[0] === first.access_token
    && sent[1] === renewed.access_token && renewed.access_token !== first.access_token
    && invoked() === 1,
    `4. refused token (401 expired-token): stale_token retry got a different token (${shown(renewed)}), `
    + `retried call ${answer.status}, 1 invocation`);

  // A cached token within the margin of its expires_at is not served: a
  // client whose margin exceeds the token's remaining life vends again.
  const strict = new ShopTokens(functionName, { lambda, marginSeconds: 3600 });
  await strict.token("shoptet", shop);
  await strict.token("shoptet", shop);
  check(invoked() === 2, "5. a token within the margin of expires_at: vended again");

  // Shoprenter answers XML unless asked for JSON: callApi asks.
  answer = await tokens.callApi("shoprenter", env("E2E_SHOPRENTER_SHOP"), "GET", "/products");
  check(answer.status === 200 && answer.body?.ok === true && invoked() === 1,
    `5b. Shoprenter GET /products: ${answer.status}, answered in JSON`);

  try {
    await tokens.token("shoptet", unknown);
    check(false, `6. unknown shop ${unknown}: no error thrown`);
  } catch (error) {
    check(error instanceof BrokerError && error.code === "not_installed" && invoked() === 1,
      `6. unknown shop ${unknown}: BrokerError ${error.code ?? error}`);
  }

  const capped = new BrokerError("token_cap_reached",
    "the shop already has the maximum number of live API tokens (retry after 2 s)");
  check(capped.retryAfter === 2 && new BrokerError("not_installed", "no").retryAfter === null,
    `7. a function error's "(retry after N s)" is read as retryAfter`);

  if (failures.length) {
    console.error(`node example: ${failures.length} check(s) failed`);
    process.exit(1);
  }
  console.log("node example: all checks passed");
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
