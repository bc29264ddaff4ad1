#!/usr/bin/env bash
# End to end through a Lambda runtime emulator: the real `bootstrap` mains of
# both functions (config loading, AWS clients, event decoding) served by
# `cargo lambda watch`, against moto and the platform double.
#
#   scripts/e2e.sh
#
# Run by scripts/test.sh (step e2e) with moto up and the AWS env exported;
# run alone, it starts its own moto_server. It
#   1. creates a token table (TTL on `ttl`) and the add-on's client-secret
#      secret in moto,
#   2. starts the platform double with a seeded Shoptet e-shop,
#   3. starts `cargo lambda watch` (debug builds) with both functions' env,
#   4. sends the fixtures of tests/events/ with `cargo lambda invoke` (API
#      Gateway v2 install event, IAM-authorized API Gateway v2 token request,
#      direct-invocation payloads) and calls the watch server's Function URL
#      endpoints with curl,
# printing one PASS/FAIL line per check. Exits non-zero on any failure; stops
# everything it started on every exit path. Logs: target/e2e-*.log.
#
# Environment:
#   E2E_READY_TIMEOUT    seconds to wait for the watch server (default 60)
#   E2E_INVOKE_TIMEOUT   seconds per invocation or request (default 300: an
#                        invocation compiles the function first if its sources
#                        changed since the build this script starts with)
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

EVENTS="$REPO_ROOT/tests/events"
EMULATOR_LOG="$REPO_ROOT/target/moto-e2e.log"
WATCH_LOG="$REPO_ROOT/target/e2e-watch.log"
DOUBLE_LOG="$REPO_ROOT/target/e2e-double.log"
READY_TIMEOUT="${E2E_READY_TIMEOUT:-60}"
INVOKE_TIMEOUT="${E2E_INVOKE_TIMEOUT:-300}"
# The binaries `cargo lambda watch` runs (cargo run --bin NAME).
FUNCTIONS="install-callback token-vendor"
ESHOP_ID=314159
UNKNOWN_ESHOP_ID=271828

WORK=""
DOUBLE_PID=""
WATCH_PID=""
CHILD_PID=""
STATUS=""
WATCH_PORT=""
DOUBLE_URL=""
CHECKS=0
FAILURES=0

pass() {
    CHECKS=$((CHECKS + 1))
    printf 'PASS %s\n' "$*"
}

# fail WHAT [FILE...]: reports a failed check with the start of each file.
fail() {
    CHECKS=$((CHECKS + 1))
    FAILURES=$((FAILURES + 1))
    printf 'FAIL %s\n' "$1"
    shift
    local file
    for file in "$@"; do
        if [[ -s "$file" ]]; then
            printf '     %s: %s\n' "$(basename "$file")" "$(head -c 600 "$file" | tr '\n' ' ')"
        fi
    done
}

# json_eval FILE EXPR: evaluates the Python expression EXPR over the JSON in
# FILE (`d`; `body(d)` parses an API Gateway response's body) and prints the
# result. Fails if FILE is not JSON or EXPR raises.
json_eval() {
    "$VENV/bin/python" - "$1" "$2" <<'PY'
import json, sys
with open(sys.argv[1]) as f:
    d = json.load(f)
def body(response):
    return json.loads(response["body"])
value = eval(sys.argv[2], {"d": d, "body": body})
print(value if isinstance(value, str) else json.dumps(value))
PY
}

# check WHAT FILE EXPR [MORE FILES TO SHOW ON FAILURE...]
check() {
    local what="$1" file="$2" expr="$3"
    shift 3
    if [[ "$(json_eval "$file" "$expr" 2>/dev/null)" == true ]]; then
        pass "$what"
    else
        fail "$what" "$file" "$@"
    fi
}

# Prints the process ids of every descendant of $1.
descendants() {
    command -v ps >/dev/null || return 0
    ps -e -o pid=,ppid= | awk -v root="$1" '
        { parent[$1] = $2 }
        END {
            for (pid in parent) {
                p = parent[pid]
                while (p != "" && p != 0 && p != 1) {
                    if (p == root) { print pid; break }
                    p = parent[p]
                }
            }
        }'
}

# `cargo lambda watch` runs each function in its own session (cargo run, which
# execs the binary): stop watch, then whatever of its descendants is left.
stop_watch() {
    [[ -n "$WATCH_PID" ]] || return 0
    local children pid
    children="$(descendants "$WATCH_PID" || true)"
    stop_process "$WATCH_PID" 10
    for pid in $children; do
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            sleep 1
            kill -9 "$pid" 2>/dev/null || true
        fi
    done
    WATCH_PID=""
}

on_exit() {
    local rc=$?
    trap - EXIT
    stop_process "$CHILD_PID" 2
    stop_watch
    stop_process "$DOUBLE_PID"
    DOUBLE_PID=""
    stop_emulator
    [[ -z "$WORK" ]] || rm -rf "$WORK"
    exit "$rc"
}

# wait_for SECONDS WHAT PID COMMAND...: polls COMMAND until it succeeds;
# dies when process PID exits or SECONDS pass.
wait_for() {
    local seconds="$1" what="$2" pid="$3"
    shift 3
    local deadline=$((SECONDS + seconds))
    until "$@"; do
        kill -0 "$pid" 2>/dev/null || return 1
        if ((SECONDS >= deadline)); then
            log "$what: not ready within $seconds s"
            return 1
        fi
        sleep 0.2
    done
}

# substitute FIXTURE OUT NAME=VALUE...: copies a fixture, replacing __NAME__.
substitute() {
    local fixture="$1" out="$2" pair
    shift 2
    cp "$EVENTS/$fixture" "$out"
    for pair in "$@"; do
        [[ "${pair#*=}" =~ ^[A-Za-z0-9_.-]+$ ]] || die "unsafe fixture value for ${pair%%=*}"
        sed -i "s/__${pair%%=*}__/${pair#*=}/g" "$out"
    done
}

# Creates the table and the client-secret secret; prints the secret's ARN.
create_aws_resources() {
    "$VENV/bin/python" - "$1" "$2" <<'PY'
import sys
import boto3

table, secret_name = sys.argv[1:3]
dynamodb = boto3.client("dynamodb")
dynamodb.create_table(
    TableName=table,
    AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    BillingMode="PAY_PER_REQUEST",
)
dynamodb.get_waiter("table_exists").wait(
    TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 20}
)
dynamodb.update_time_to_live(
    TableName=table,
    TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"},
)
secret = boto3.client("secretsmanager").create_secret(
    Name=secret_name, SecretString="double-client-secret"
)
print(secret["ARN"])
PY
}

start_double() {
    local out="$WORK/double.out"
    "$REPO_ROOT/target/debug/platform-double" --port 0 --seed-shoptet "$ESHOP_ID" \
        >"$out" 2>"$DOUBLE_LOG" &
    DOUBLE_PID=$!
    if ! wait_for 20 "platform double" "$DOUBLE_PID" grep -q "^shoptet-code $ESHOP_ID " "$out"; then
        cat "$out" "$DOUBLE_LOG" >&2 || true
        die "the platform double did not start"
    fi
    DOUBLE_URL="$(head -n 1 "$out")"
    INSTALL_CODE="$(sed -n "s/^shoptet-code $ESHOP_ID //p" "$out")"
    [[ "$DOUBLE_URL" == http://127.0.0.1:* && -n "$INSTALL_CODE" ]] \
        || die "unexpected platform double output: $(cat "$out")"
    log "platform double at $DOUBLE_URL (e-shop $ESHOP_ID seeded)"
}

watch_ready() {
    local code
    code="$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$WATCH_PORT/" || true)"
    [[ "$code" != 000 && -n "$code" ]]
}

# Starts `cargo lambda watch` on a free port with both functions' env (the
# AWS_* env pointing at moto is inherited).
start_watch() {
    local secret_arn="$1" id="$2" attempt
    local fn_env=(
        "SHOPTET_OAUTH_URL=$DOUBLE_URL"
        "SHOPTET_API_URL=$DOUBLE_URL/api"
        "SHOPTET_CLIENT_ID=double-client-id"
        "SHOPTET_CLIENT_SECRET_ID=$secret_arn"
        "SHOPTET_REDIRECT_URI=https://abc123.execute-api.eu-central-1.amazonaws.com/shoptet/install"
        "SHOPRENTER_OAUTH_URL=$DOUBLE_URL/shoprenter"
        "SHOPRENTER_API_URL=$DOUBLE_URL/shoprenter-api/{shop}/api"
        "SECRET_PREFIX=e2e-$id/"
        "TOKEN_TABLE=e2e-tokens-$id"
        # As Lambda sets it for LoggingConfig.LogFormat JSON (template.yaml).
        "AWS_LAMBDA_LOG_FORMAT=JSON"
    )
    for attempt in 1 2 3; do
        WATCH_PORT="$(free_port)"
        log "cargo lambda watch on 127.0.0.1:$WATCH_PORT (log: ${WATCH_LOG#"$REPO_ROOT"/})"
        # --ignore-changes: edits made while the checks run restart nothing.
        env "${fn_env[@]}" cargo lambda watch --ignore-changes --color never \
            -A 127.0.0.1 -P "$WATCH_PORT" >"$WATCH_LOG" 2>&1 &
        WATCH_PID=$!
        if wait_for "$READY_TIMEOUT" "cargo lambda watch" "$WATCH_PID" watch_ready; then
            return 0
        fi
        if kill -0 "$WATCH_PID" 2>/dev/null; then
            tail -n 30 "$WATCH_LOG" >&2 || true
            die "cargo lambda watch did not answer within $READY_TIMEOUT s"
        fi
        wait "$WATCH_PID" 2>/dev/null || true
        WATCH_PID=""
        log "cargo lambda watch exited during start-up (attempt $attempt)"
    done
    tail -n 30 "$WATCH_LOG" >&2 || true
    die "cargo lambda watch failed to start"
}

# bounded OUT ERR COMMAND...: runs COMMAND in the background (stdout to OUT,
# stderr to ERR) and waits for it, for at most INVOKE_TIMEOUT seconds (then
# status 124). When a function process exits meanwhile, e.g. on a
# configuration error at start-up, `cargo lambda watch` logs "command exited"
# but leaves the invocation (and every later one) waiting: that fails the
# whole run at once. Waiting in a loop also keeps INT/TERM responsive.
bounded() {
    local out="$1" err="$2" deadline=$((SECONDS + INVOKE_TIMEOUT)) exits rc=0
    shift 2
    exits="$(grep -c 'command exited' "$WATCH_LOG" || true)"
    "$@" >"$out" 2>"$err" &
    CHILD_PID=$!
    while kill -0 "$CHILD_PID" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            log "no answer within $INVOKE_TIMEOUT s: $*"
            rc=124
            break
        fi
        if (($(grep -c 'command exited' "$WATCH_LOG" || true) > exits)); then
            fail "a function process exited while serving: $*"
            printf '%s\n' "--- last lines of ${WATCH_LOG#"$REPO_ROOT"/}:" >&2
            tail -n 20 "$WATCH_LOG" >&2 || true
            die "e2e: a Lambda function exited (see the log above); $FAILURES of $CHECKS checks failed"
        fi
        sleep 0.1
    done
    if ((rc)); then
        stop_process "$CHILD_PID" 2
    else
        wait "$CHILD_PID" || rc=$?
    fi
    CHILD_PID=""
    return "$rc"
}

# invoke FUNCTION EVENT_FILE NAME: `cargo lambda invoke`; output in
# $WORK/NAME.out and $WORK/NAME.err; returns its exit status.
invoke() {
    local function="$1" event="$2" name="$3"
    bounded "$WORK/$name.out" "$WORK/$name.err" \
        cargo lambda invoke "$function" --color never \
        --invoke-address 127.0.0.1 --invoke-port "$WATCH_PORT" --data-file "$event"
}

# get PATH NAME: GET on the watch server; body in $WORK/NAME.out; sets
# STATUS to "HTTP-STATUS CONTENT-TYPE" ("000" when there was no answer).
get() {
    bounded "$WORK/$2.status" "$WORK/$2.err" \
        curl -s -o "$WORK/$2.out" -w '%{http_code} %{content_type}' \
        "http://127.0.0.1:$WATCH_PORT$1" || true
    STATUS="$(cat "$WORK/$2.status")"
    STATUS="${STATUS:-000}"
}

run_checks() {
    local rc token

    # 1. Shoptet's install redirect as API Gateway v2 delivers it.
    substitute install-apigw-v2.json "$WORK/install.json" "CODE=$INSTALL_CODE"
    rc=0 && invoke install-callback "$WORK/install.json" install || rc=$?
    if ((rc == 0)); then
        check "invoke install-callback (API Gateway v2 install event): 200, installed" \
            "$WORK/install.out" \
            "d['statusCode'] == 200 and body(d)['status'] == 'installed' and body(d)['shop'] == '$ESHOP_ID'"
    else
        fail "invoke install-callback (API Gateway v2 install event): exit status $rc" \
            "$WORK/install.out" "$WORK/install.err"
    fi

    # 2. A consumer's SigV4-signed token request (IAM authorizer context).
    substitute token-apigw-v2.json "$WORK/token-apigw.json" "SHOP=$ESHOP_ID"
    rc=0 && invoke token-vendor "$WORK/token-apigw.json" token-apigw || rc=$?
    token=""
    if ((rc == 0)); then
        check "invoke token-vendor (API Gateway v2, IAM): 200 with access_token" \
            "$WORK/token-apigw.out" \
            "d['statusCode'] == 200 and len(body(d)['access_token']) > 0 and body(d)['platform'] == 'shoptet' and body(d)['shop'] == '$ESHOP_ID'"
        token="$(json_eval "$WORK/token-apigw.out" "body(d)['access_token']" 2>/dev/null || true)"
    else
        fail "invoke token-vendor (API Gateway v2, IAM): exit status $rc" \
            "$WORK/token-apigw.out" "$WORK/token-apigw.err"
    fi
    [[ -n "$token" ]] || token="(no token vended)"

    # 3. Direct invocation (the consumer function's SDK Invoke).
    substitute token-direct.json "$WORK/token-direct.json" "SHOP=$ESHOP_ID"
    rc=0 && invoke token-vendor "$WORK/token-direct.json" token-direct || rc=$?
    if ((rc == 0)); then
        check "invoke token-vendor (direct payload): the same access_token" \
            "$WORK/token-direct.out" "d['access_token'] == '$token' and d['shop'] == '$ESHOP_ID'"
    else
        fail "invoke token-vendor (direct payload): exit status $rc" \
            "$WORK/token-direct.out" "$WORK/token-direct.err"
    fi

    # 4. Direct invocation for a shop that never installed: a function error
    #    whose errorType is the stable code (cargo lambda invoke exits 1 and
    #    prints "Error: <errorType>").
    substitute token-direct.json "$WORK/token-unknown.json" "SHOP=$UNKNOWN_ESHOP_ID"
    rc=0 && invoke token-vendor "$WORK/token-unknown.json" token-unknown || rc=$?
    if ((rc != 0)) && grep -qx 'Error: not_installed' "$WORK/token-unknown.err" \
        && ! grep -q access_token "$WORK/token-unknown.out"; then
        pass "invoke token-vendor (direct payload, unknown shop): function error not_installed"
    else
        fail "invoke token-vendor (direct payload, unknown shop): exit status $rc, want a not_installed function error" \
            "$WORK/token-unknown.out" "$WORK/token-unknown.err"
    fi

    # 5. Function URL of the vendor (watch strips /lambda-url/<function>).
    get "/lambda-url/token-vendor/tokens/shoptet/$ESHOP_ID" url-token
    if [[ "$STATUS" == "200 application/json"* ]]; then
        check "GET /lambda-url/token-vendor/tokens/shoptet/$ESHOP_ID: 200 JSON, the same access_token" \
            "$WORK/url-token.out" "d['access_token'] == '$token'"
    else
        fail "GET /lambda-url/token-vendor/tokens/shoptet/$ESHOP_ID: got '$STATUS', want 200 JSON" \
            "$WORK/url-token.out" "$WORK/url-token.err"
    fi

    # 6. Function URL of the vendor, unknown shop.
    get "/lambda-url/token-vendor/tokens/shoptet/$UNKNOWN_ESHOP_ID" url-unknown
    if [[ "$STATUS" == "404 application/json"* ]]; then
        check "GET /lambda-url/token-vendor/tokens/shoptet/$UNKNOWN_ESHOP_ID: 404 not_installed" \
            "$WORK/url-unknown.out" "d['error']['code'] == 'not_installed'"
    else
        fail "GET /lambda-url/token-vendor/tokens/shoptet/$UNKNOWN_ESHOP_ID: got '$STATUS', want 404 JSON" \
            "$WORK/url-unknown.out" "$WORK/url-unknown.err"
    fi

    # 7. Function URL of the install callback, replaying the used code: the
    #    handler is reached (not a route miss) and refuses with a JSON error.
    get "/lambda-url/install-callback/shoptet/install?code=$INSTALL_CODE" url-reuse
    if [[ "$STATUS" =~ ^[45][0-9][0-9]\ application/json ]] && [[ "$STATUS" != 404* ]]; then
        check "GET /lambda-url/install-callback/shoptet/install (used code): ${STATUS%% *} $(json_eval "$WORK/url-reuse.out" "d['error']['code']" 2>/dev/null || echo '?')" \
            "$WORK/url-reuse.out" "d['error']['code'] not in ('', 'not_found')"
    else
        fail "GET /lambda-url/install-callback/shoptet/install (used code): got '$STATUS', want a JSON 4xx/5xx" \
            "$WORK/url-reuse.out" "$WORK/url-reuse.err"
    fi

    # 8. The vended token works on the (double's) Shoptet API.
    STATUS="$(curl -s -m 30 -o "$WORK/api.out" -w '%{http_code}' \
        -H "Shoptet-Access-Token: $token" "$DOUBLE_URL/api/eshop" || true)"
    if [[ "$STATUS" == 200 ]]; then
        pass "the vended token is accepted by the platform's GET /api/eshop"
    else
        fail "the vended token on GET /api/eshop: got HTTP '$STATUS', want 200" "$WORK/api.out"
    fi
}

main() {
    cd "$REPO_ROOT"
    trap on_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    local start=$SECONDS

    ensure_deploy_tools
    command -v curl >/dev/null || die "curl is required"
    if [[ -z "${AWS_ENDPOINT_URL:-}" ]]; then
        start_emulator
    fi
    mkdir -p "$REPO_ROOT/target"
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/broker-e2e.XXXXXX")"

    # Build what watch runs up front (as `cargo run --bin` builds it, one
    # binary at a time), so that no invocation waits for a compile.
    local bin
    for bin in $FUNCTIONS platform-double; do
        log "cargo build --bin $bin"
        cargo build --quiet --bin "$bin"
    done

    local id secret_arn
    id="$(date +%s)-$$"
    secret_arn="$(create_aws_resources "e2e-tokens-$id" "e2e-$id-shoptet-client-secret")" \
        || die "creating the table and secret in moto failed"
    log "moto: table e2e-tokens-$id, secret e2e-$id-shoptet-client-secret"
    start_double
    start_watch "$secret_arn" "$id"

    run_checks
    if ((FAILURES)); then
        printf '%s\n' "--- last lines of ${WATCH_LOG#"$REPO_ROOT"/}:" >&2
        tail -n 40 "$WATCH_LOG" >&2 || true
        die "e2e: $FAILURES of $CHECKS checks failed ($((SECONDS - start)) s)"
    fi
    log "e2e: all $CHECKS checks passed ($((SECONDS - start)) s)"
}

main "$@"
