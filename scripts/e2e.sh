#!/usr/bin/env bash
# End to end through a Lambda runtime emulator: the real `bootstrap` mains of
# both functions (config loading, AWS clients, event decoding) served by
# `cargo lambda watch`, against moto and the platform double, once per
# installation store (template.yaml's InstallationStore), then once as a
# Shoprenter-only stack (no Shoptet variable, the Shoprenter app configured;
# tests/e2e/tests/shoprenter_only.rs instead of the checks and examples).
#
#   scripts/e2e.sh
#
# Run by scripts/test.sh (step e2e) with moto up and the AWS env exported;
# run alone, it starts its own moto_server. It builds both functions, the
# platform double and the checks up front, once; then runs one pass per
# store, each with resources of its own: a token table, a registry table and
# the add-on's client-secret secret in moto (the DynamoDB pass also an
# installation table keyed as in template.yaml and a KMS key); the double
# (two seeded Shoptet e-shops) and `cargo lambda watch` with both functions'
# env (INSTALLATION_STORE=SecretsManager with SECRET_PREFIX, or
# INSTALLATION_STORE=DynamoDB with INSTALLATION_TABLE and INSTALLATION_KEY_ID,
# as the template sets them); then the checks,
# tests/e2e/tests/lambda_watch.rs (`cargo test -p broker-e2e --test
# lambda_watch`), with E2E_WATCH_URL, E2E_DOUBLE_URL, E2E_ESHOP_ID,
# E2E_UNKNOWN_ESHOP_ID, E2E_INSTALL_CODE, E2E_SHOP_TOKEN_BIN (the `shop-token`
# command line, built here) and E2E_INSTALLATION_STORE with
# E2E_SECRET_PREFIX or E2E_INSTALLATION_TABLE exported (checks 2b and 11b
# look into that store: the install wrote there only, the DynamoDB item holds
# no plaintext token, the uninstall scheduled the deletion). The
# SecretsManager pass then runs the consumer examples (examples/python,
# examples/node, examples/php, run by tests/e2e/examples.py) against the
# second e-shop, E2E_EXAMPLES_ESHOP_ID, which that script installs with
# E2E_EXAMPLES_INSTALL_CODE (the checks uninstall the first), and the
# Shoprenter shop E2E_SHOPRENTER_SHOP (its API client registered in the
# double); they see the vendor only, so the DynamoDB pass skips them. Every
# pass then hands its registry's stream (E2E_REGISTRY_TABLE) to the
# event-publisher binary through the watch server and reads the events off
# its bus (E2E_EVENT_BUS, tests/e2e/tests/events.rs), and asks the
# shoptet-webhooks binary for a dry-run re-registration page
# (tests/e2e/tests/webhooks.rs), before the log scan.
# Installs the Node example's dependencies (`npm ci`) when its
# package-lock.json changed, and PHP from Debian's packages (apt-get) when
# php, its curl extension or AsyncAws core is missing. Exits non-zero
# when a check fails or a function process exits meanwhile; stops everything
# it started on every exit path. Logs: target/e2e-*.log (watch and double
# per pass: target/e2e-watch-secretsmanager.log, …-dynamodb.log).
#
# Environment:
#   E2E_STORES           the passes, in order (default "SecretsManager DynamoDB
#                        ShoprenterOnly"; ShoprenterOnly: a Shoprenter-only
#                        stack, no Shoptet setting, on SecretsManager)
#   E2E_READY_TIMEOUT    seconds to wait for the watch server (default 60)
#   E2E_INVOKE_TIMEOUT   seconds per invocation or request (default 300: an
#                        invocation compiles the function first if its sources
#                        changed since the build this script starts with)
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

EMULATOR_LOG="$REPO_ROOT/target/moto-e2e.log"
# Per pass (run_pass sets them).
WATCH_LOG="" DOUBLE_LOG=""
STORES="${E2E_STORES:-SecretsManager DynamoDB ShoprenterOnly}"
BIN_DIR="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug"
READY_TIMEOUT="${E2E_READY_TIMEOUT:-60}"
# The binaries `cargo lambda watch` runs (cargo run --bin NAME).
FUNCTIONS="install-callback token-vendor event-publisher shoptet-webhooks"
export E2E_ESHOP_ID=314159 E2E_UNKNOWN_ESHOP_ID=271828 E2E_EXAMPLES_ESHOP_ID=161803
# The examples' Shoprenter shop, with its own API client registered in the
# double (tests/e2e/examples.py gives the broker the same credentials). The
# secret shares no 10 characters with the shop name, which the functions log:
# step e2e's log scan would take that for a leak.
export E2E_SHOPRENTER_SHOP=e2e-examples E2E_SHOPRENTER_CLIENT_ID=sr-app-4711 \
    E2E_SHOPRENTER_CLIENT_SECRET=Qm7vT2xK9pLw4RzN8cHd
CHECKS=(cargo test --quiet -p broker-e2e --test lambda_watch)
EXAMPLES=("$VENV/bin/python" tests/e2e/examples.py)
# Last in each pass: the function logs against every secret the pass used.
LEAK_SCAN=(cargo test --quiet -p broker-e2e --test function_logs)
# The event publisher's binary on the pass's registry stream, after the
# checks and examples changed it (tests/e2e/tests/events.rs).
EVENTS=(cargo test --quiet -p broker-e2e --test events)
# The e-shop webhooks' worker binary: a dry-run re-registration page
# (tests/e2e/tests/webhooks.rs); E2E_WEBHOOK_EVENTS is what the Shoptet
# passes configure (empty in the ShoprenterOnly pass: the worker says so).
WEBHOOKS=(cargo test --quiet -p broker-e2e --test webhooks)
export E2E_WEBHOOK_EVENTS="order:create,job:finished"
# The ShoprenterOnly pass's checks, instead of CHECKS and the examples.
SHOPRENTER_ONLY_CHECKS=(cargo test --quiet -p broker-e2e --test shoprenter_only)
NODE_EXAMPLE="$REPO_ROOT/examples/node"
WORK="" DOUBLE_PID="" WATCH_PID="" CHECKS_PID=""

# stop_tree PID: stops process PID, then whatever of its descendants is left
# (`cargo lambda watch` runs each function in its own session; cargo test
# runs the test binary).
stop_tree() {
    [[ -n "$1" ]] || return 0
    local children
    children="$(ps -e -o pid=,ppid= 2>/dev/null | awk -v root="$1" '{ up[$1] = $2 }
        END { for (pid in up) for (p = up[pid]; p > 1; p = up[p]) if (p == root) { print pid; break } }' || true)"
    stop_process "$1" 10
    [[ -n "$children" ]] || return 0
    # shellcheck disable=SC2086 # one pid per word
    kill $children 2>/dev/null && sleep 1
    # shellcheck disable=SC2086
    kill -9 $children 2>/dev/null || true
}

on_exit() {
    local rc=$?
    trap - EXIT
    stop_tree "$CHECKS_PID"
    stop_tree "$WATCH_PID"
    stop_process "$DOUBLE_PID"
    stop_emulator
    [[ -z "$WORK" ]] || rm -rf "$WORK"
    exit "$rc"
}

# wait_for SECONDS WHAT PID COMMAND...: polls COMMAND until it succeeds;
# fails when process PID exits or SECONDS pass.
wait_for() {
    local seconds="$1" what="$2" pid="$3"
    shift 3
    local deadline=$((SECONDS + seconds))
    until "$@"; do
        kill -0 "$pid" 2>/dev/null || return 1
        ((SECONDS < deadline)) || { log "$what: not ready within $seconds s"; return 1; }
        sleep 0.2
    done
}

# create_aws_resources ID STORE: creates the token table e2e-tokens-ID and
# the registry table e2e-registry-ID (keys, index and TTL as in
# template.yaml), a KMS key for the cached tokens (as TokenKey, with either
# store) and the client-secret secret e2e-ID-shoptet-client-secret; for STORE
# DynamoDB also the installation table e2e-installations-ID (as
# template.yaml's InstallationTable) and a KMS key (as InstallationKey).
# Prints the client secret's ARN, then the installation key's id (an empty
# line without one), then the token key's id. Also the webhook signature
# key's secret e2e-ID-shoptet-webhook-key (its value E2E_WEBHOOK_KEY;
# signed webhooks are the recommended setup):
# its ARN is printed then, and last the Shoprenter app's client-secret
# secret e2e-ID-shoprenter-app-secret's (E2E_SHOPRENTER_CLIENT_SECRET).
create_aws_resources() {
    "$VENV/bin/python" - "$1" "$2" <<'PY'
import os, sys, boto3
run, store = sys.argv[1:3]
ddb = boto3.client("dynamodb")

def keyed_table(name, attributes=(), **extra):
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, *attributes],
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}], **extra)
    return name

with_ttl = [keyed_table(f"e2e-tokens-{run}")]
tables = with_ttl + [keyed_table(
    f"e2e-registry-{run}",
    attributes=[{"AttributeName": "platform", "AttributeType": "S"}],
    GlobalSecondaryIndexes=[{
        "IndexName": "by-platform",
        "KeySchema": [{"AttributeName": "platform", "KeyType": "HASH"},
                      {"AttributeName": "pk", "KeyType": "RANGE"}],
        "Projection": {"ProjectionType": "ALL"}}],
    # As template.yaml declares it: the lifecycle events' outbox.
    StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})]
boto3.client("events").create_event_bus(Name=f"e2e-events-{run}")
kms = boto3.client("kms")
token_key_id = kms.create_key(
    KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT",
    Description=f"e2e {run}: token data keys")["KeyMetadata"]["KeyId"]
key_id = ""
if store == "DynamoDB":
    with_ttl.append(keyed_table(f"e2e-installations-{run}"))
    tables.append(with_ttl[-1])
    key_id = kms.create_key(
        KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT",
        Description=f"e2e {run}: installation data keys")["KeyMetadata"]["KeyId"]
for name in tables:
    ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 20})
for name in with_ttl:
    ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"})
secrets = boto3.client("secretsmanager")
print(secrets.create_secret(Name=f"e2e-{run}-shoptet-client-secret",
                            SecretString="double-client-secret")["ARN"])
print(key_id)
print(token_key_id)
print(secrets.create_secret(Name=f"e2e-{run}-shoptet-webhook-key",
                            SecretString=os.environ["E2E_WEBHOOK_KEY"])["ARN"])
print(secrets.create_secret(Name=f"e2e-{run}-shoprenter-app-secret",
                            SecretString=os.environ["E2E_SHOPRENTER_CLIENT_SECRET"])["ARN"])
PY
}

# Starts the double with both e-shops seeded; exports its URL and their
# install codes.
start_double() {
    local out="$WORK/double.out"
    "$BIN_DIR/platform-double" --port 0 --seed-shoptet "$E2E_ESHOP_ID" \
        --seed-shoptet "$E2E_EXAMPLES_ESHOP_ID" \
        --shoprenter "$E2E_SHOPRENTER_SHOP:$E2E_SHOPRENTER_CLIENT_ID:$E2E_SHOPRENTER_CLIENT_SECRET" \
        >"$out" 2>"$DOUBLE_LOG" &
    DOUBLE_PID=$!
    if ! wait_for 20 "platform double" "$DOUBLE_PID" grep -q "^shoptet-code $E2E_EXAMPLES_ESHOP_ID " "$out"; then
        cat "$out" "$DOUBLE_LOG" >&2 || true
        die "the platform double did not start"
    fi
    export E2E_DOUBLE_URL E2E_INSTALL_CODE E2E_EXAMPLES_INSTALL_CODE
    E2E_DOUBLE_URL="$(head -n 1 "$out")"
    E2E_INSTALL_CODE="$(sed -n "s/^shoptet-code $E2E_ESHOP_ID //p" "$out")"
    E2E_EXAMPLES_INSTALL_CODE="$(sed -n "s/^shoptet-code $E2E_EXAMPLES_ESHOP_ID //p" "$out")"
    [[ "$E2E_DOUBLE_URL" == http://127.0.0.1:* && -n "$E2E_INSTALL_CODE" && -n "$E2E_EXAMPLES_INSTALL_CODE" ]] \
        || die "unexpected platform double output: $(cat "$out")"
    log "platform double at $E2E_DOUBLE_URL (e-shops $E2E_ESHOP_ID and $E2E_EXAMPLES_ESHOP_ID seeded)"
}

# Installs the Node example's pinned dependencies into its node_modules
# (`npm ci`) unless they are there from this package-lock.json already.
ensure_node_example() {
    local stamp="$NODE_EXAMPLE/node_modules/.e2e-package-lock.json"
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        die "node and npm are required (examples/node: Node.js >= 20)"
    fi
    cmp -s "$NODE_EXAMPLE/package-lock.json" "$stamp" && return 0
    log "npm ci (examples/node)"
    npm ci --prefix "$NODE_EXAMPLE" --no-audit --no-fund --loglevel=error
    cp "$NODE_EXAMPLE/package-lock.json" "$stamp"
}

# start_watch SECRET_ARN ID STORE KEY_ID TOKEN_KEY_ID WEBHOOK_KEY_ARN
# APP_SECRET_ARN PLATFORMS (both, or shoprenter-only): starts `cargo lambda watch` on a
# free port with both functions' env (the AWS_* env pointing at moto is
# inherited), the installation store's as template.yaml sets it; exports its
# URL.
start_watch() {
    local secret_arn="$1" id="$2" store="$3" key_id="$4" token_key_id="$5" webhook_key_arn="$6"
    local app_secret_arn="$7" platforms="$8" attempt port
    local store_env=("INSTALLATION_STORE=$store")
    case "$store" in
        SecretsManager) store_env+=("SECRET_PREFIX=e2e-$id/") ;;
        DynamoDB) store_env+=("INSTALLATION_TABLE=e2e-installations-$id" "INSTALLATION_KEY_ID=$key_id") ;;
        *) die "unknown installation store: $store" ;;
    esac
    local platform_env=(
        "SHOPTET_OAUTH_URL=$E2E_DOUBLE_URL"
        "SHOPTET_API_URL=$E2E_DOUBLE_URL/api"
        "SHOPTET_CLIENT_ID=double-client-id"
        "SHOPTET_CLIENT_SECRET_ID=$secret_arn"
        "SHOPTET_WEBHOOK_KEY_SECRET_ID=$webhook_key_arn"
        "SHOPTET_REDIRECT_URI=https://abc123.execute-api.eu-central-1.amazonaws.com/shoptet/install"
        # The e-shop webhooks' worker (tests/e2e/tests/webhooks.rs asks it
        # for a dry-run page: nothing is registered at this URL).
        "SHOPTET_WEBHOOK_EVENTS=$E2E_WEBHOOK_EVENTS"
        "SHOPTET_WEBHOOK_URL=https://abc123.execute-api.eu-central-1.amazonaws.com/shoptet/eshop-webhook"
    )
    if [[ "$platforms" == shoprenter-only ]]; then
        # As the template sets them for a Shoprenter-only stack: no Shoptet
        # variable at all, the Shoprenter app's credentials.
        platform_env=(
            "SHOPRENTER_CLIENT_ID=$E2E_SHOPRENTER_CLIENT_ID"
            "SHOPRENTER_CLIENT_SECRET_ID=$app_secret_arn"
        )
    fi
    local fn_env=(
        "${store_env[@]}"
        "${platform_env[@]}"
        "SHOPRENTER_OAUTH_URL=$E2E_DOUBLE_URL/shoprenter"
        "SHOPRENTER_API_URL=$E2E_DOUBLE_URL/shoprenter-api/{shop}/api"
        "TOKEN_TABLE=e2e-tokens-$id"
        "TOKEN_KEY_ID=$token_key_id"
        "REGISTRY_TABLE=e2e-registry-$id"
        "EVENT_BUS_NAME=e2e-events-$id"
        # The worker's own queue: only its reconciliation fan-out sends to it,
        # which no e2e check starts.
        "WEBHOOK_QUEUE_URL=http://127.0.0.1:1/123456789012/e2e-webhook-work-$id"
        # As Lambda sets it for LoggingConfig.LogFormat JSON (template.yaml).
        "AWS_LAMBDA_LOG_FORMAT=JSON"
        # As Lambda sets it for ApplicationLogLevel: the most a deployer can
        # turn on; step leak_scan reads every line it writes.
        "AWS_LAMBDA_LOG_LEVEL=$E2E_LOG_LEVEL"
    )
    for attempt in 1 2 3; do
        port="$(free_port)"
        export E2E_WATCH_URL="http://127.0.0.1:$port"
        log "cargo lambda watch on 127.0.0.1:$port (log: ${WATCH_LOG#"$REPO_ROOT"/})"
        # --ignore-changes: edits made while the checks run restart nothing.
        env "${fn_env[@]}" cargo lambda watch --ignore-changes --color never \
            -A 127.0.0.1 -P "$port" >"$WATCH_LOG" 2>&1 &
        WATCH_PID=$!
        # Ready once it answers HTTP at all (curl without -f).
        wait_for "$READY_TIMEOUT" "cargo lambda watch" "$WATCH_PID" \
            curl -s -o /dev/null -m 2 "$E2E_WATCH_URL/" && return 0
        kill -0 "$WATCH_PID" 2>/dev/null && break # up, but not answering
        wait "$WATCH_PID" 2>/dev/null || true
        WATCH_PID=""
        log "cargo lambda watch exited during start-up (attempt $attempt)"
    done
    watch_log_tail 30
    die "cargo lambda watch did not start (or answer within $READY_TIMEOUT s)"
}

watch_log_tail() {
    printf '%s\n' "--- last lines of ${WATCH_LOG#"$REPO_ROOT"/}:" >&2
    tail -n "$1" "$WATCH_LOG" >&2 || true
}

# Makes sure php (>= 8.2) with curl and Debian's AsyncAws core (SigV4,
# AWS credentials) is there for examples/php; installs Debian's packages
# with apt-get when one is missing (as root, or through sudo).
ensure_php_example() {
    php_ready() {
        command -v php >/dev/null \
            && php -r 'exit(PHP_VERSION_ID >= 80200 && extension_loaded("curl")
                && (include "AsyncAws/Core/autoload.php") ? 0 : 1);' 2>/dev/null
    }
    php_ready && return 0
    local sudo=()
    ((EUID == 0)) || sudo=(sudo -n)
    log "apt-get install php-cli php-curl php-async-aws-core (examples/php)"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        php-cli php-curl php-async-aws-core >"$REPO_ROOT/target/e2e-apt-php.log" 2>&1 \
        || { "${sudo[@]}" apt-get update -q >>"$REPO_ROOT/target/e2e-apt-php.log" 2>&1 \
            && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
                php-cli php-curl php-async-aws-core >>"$REPO_ROOT/target/e2e-apt-php.log" 2>&1; } \
        || die "installing PHP failed (see target/e2e-apt-php.log): examples/php needs php-cli >= 8.2, php-curl, php-async-aws-core"
    php_ready || die "php >= 8.2 with curl and AsyncAws core is required (examples/php)"
}

# run_checks COMMAND...: runs COMMAND. When a function process exits
# meanwhile (e.g. on a configuration error at start-up) or is killed, `cargo
# lambda watch` logs "command exited" or "command killed" but leaves that
# invocation and every later one waiting: that stops COMMAND at once. Waiting
# in a loop also keeps INT/TERM responsive.
run_checks() {
    local exited='command (exited|killed)' exits rc=0
    exits="$(grep -cE "$exited" "$WATCH_LOG" || true)"
    log "$*"
    "$@" &
    CHECKS_PID=$!
    while kill -0 "$CHECKS_PID" 2>/dev/null; do
        if (($(grep -cE "$exited" "$WATCH_LOG" || true) > exits)); then
            stop_tree "$CHECKS_PID"
            CHECKS_PID=""
            watch_log_tail 20
            die "e2e: FAILED: a Lambda function process exited while serving the checks (see the log above)"
        fi
        sleep 0.2
    done
    wait "$CHECKS_PID" || rc=$?
    CHECKS_PID=""
    return "$rc"
}

# run_pass STORE: one pass of the checks with the functions on installation
# store STORE (SecretsManager or DynamoDB), on resources and processes of its
# own, which it stops when done; the SecretsManager pass runs the examples
# too.
run_pass() {
    local pass="$1" store="$1" platforms=both start=$SECONDS name id resources secret_arn key_id
    local token_key_id webhook_key_arn app_secret_arn
    if [[ "$pass" == ShoprenterOnly ]]; then
        store=SecretsManager platforms=shoprenter-only
    fi
    name="$(tr '[:upper:]' '[:lower:]' <<<"$pass")"
    WATCH_LOG="$REPO_ROOT/target/e2e-watch-$name.log"
    DOUBLE_LOG="$REPO_ROOT/target/e2e-double-$name.log"
    id="$(date +%s)-$$-$name"
    # Random: a key spelling the pass's name would share 10 characters with
    # log lines that name a platform, which the log scan takes for a leak.
    export E2E_WEBHOOK_KEY
    E2E_WEBHOOK_KEY="e2e-webhook-key-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
    resources="$(create_aws_resources "$id" "$store")" \
        || die "creating the tables, key and secret in moto failed"
    secret_arn="$(sed -n 1p <<<"$resources")"
    key_id="$(sed -n 2p <<<"$resources")"
    token_key_id="$(sed -n 3p <<<"$resources")"
    webhook_key_arn="$(sed -n 4p <<<"$resources")"
    app_secret_arn="$(sed -n 5p <<<"$resources")"
    export E2E_INSTALLATION_STORE="$store" E2E_SECRET_PREFIX="" E2E_INSTALLATION_TABLE=""
    export E2E_REGISTRY_TABLE="e2e-registry-$id" E2E_EVENT_BUS="e2e-events-$id"
    # What the worker is configured with in this pass (no Shoptet: nothing).
    export E2E_PASS_WEBHOOK_EVENTS="$E2E_WEBHOOK_EVENTS"
    [[ "$platforms" == both ]] || E2E_PASS_WEBHOOK_EVENTS=""
    # Each pass at one of the two levels that write the most; every secret
    # the pass used is then looked for in every line the functions wrote.
    export E2E_LOG_LEVEL E2E_WATCH_LOG="$WATCH_LOG"
    export E2E_KNOWN_SECRETS="$WORK/known-secrets-$name"
    : >"$E2E_KNOWN_SECRETS"
    case "$pass" in
        DynamoDB) E2E_LOG_LEVEL=DEBUG ;;
        *) E2E_LOG_LEVEL=TRACE ;;
    esac
    if [[ "$store" == DynamoDB ]]; then
        E2E_INSTALLATION_TABLE="e2e-installations-$id"
        log "moto ($store pass): tables e2e-tokens-$id, e2e-registry-$id and $E2E_INSTALLATION_TABLE, KMS key $key_id, secret e2e-$id-shoptet-client-secret"
    else
        E2E_SECRET_PREFIX="e2e-$id/"
        log "moto ($store pass): tables e2e-tokens-$id and e2e-registry-$id, secret e2e-$id-shoptet-client-secret"
    fi
    start_double
    start_watch "$secret_arn" "$id" "$store" "$key_id" "$token_key_id" "$webhook_key_arn" \
        "$app_secret_arn" "$platforms"

    local checks=("${CHECKS[@]}")
    [[ "$platforms" == both ]] || checks=("${SHOPRENTER_ONLY_CHECKS[@]}")
    if ! run_checks "${checks[@]}" -- --nocapture \
        || { [[ "$pass" == SecretsManager ]] && ! run_checks "${EXAMPLES[@]}"; } \
        || ! run_checks "${EVENTS[@]}" -- --nocapture \
        || ! run_checks "${WEBHOOKS[@]}" -- --nocapture \
        || ! run_checks "${LEAK_SCAN[@]}" -- --nocapture; then
        watch_log_tail 40
        die "e2e: FAILED: the checks above failed in pass $pass ($((SECONDS - start)) s)"
    fi
    stop_tree "$WATCH_PID"
    WATCH_PID=""
    stop_process "$DOUBLE_PID"
    DOUBLE_PID=""
    log "e2e: pass $pass: all checks passed ($((SECONDS - start)) s)"
}

main() {
    cd "$REPO_ROOT"
    trap on_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    local start=$SECONDS bin store

    for store in $STORES; do
        [[ "$store" == SecretsManager || "$store" == DynamoDB || "$store" == ShoprenterOnly ]] \
            || die "E2E_STORES: unknown pass $store (SecretsManager, DynamoDB or ShoprenterOnly)"
    done
    ensure_deploy_tools
    command -v curl >/dev/null || die "curl is required"
    [[ -n "${AWS_ENDPOINT_URL:-}" ]] || start_emulator
    mkdir -p "$REPO_ROOT/target"
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/broker-e2e.XXXXXX")"

    # Build what watch runs up front (as `cargo run --bin` builds it, one
    # binary at a time), once for every pass, so that no invocation waits
    # for a compile.
    for bin in $FUNCTIONS platform-double; do
        log "cargo build --bin $bin"
        cargo build --quiet --bin "$bin"
    done
    # The consumer's command line, which check 10 runs with --function.
    log "cargo build -p shop-token-client --features cli --bin shop-token"
    cargo build --quiet -p shop-token-client --features cli --bin shop-token
    export E2E_SHOP_TOKEN_BIN="$BIN_DIR/shop-token"
    log "${CHECKS[*]} --no-run"
    "${CHECKS[@]}" --no-run
    "${LEAK_SCAN[@]}" --no-run
    "${EVENTS[@]}" --no-run
    "${WEBHOOKS[@]}" --no-run
    "${SHOPRENTER_ONLY_CHECKS[@]}" --no-run
    if [[ " $STORES " == *" SecretsManager "* ]]; then
        ensure_node_example
        ensure_php_example
    fi

    for store in $STORES; do
        run_pass "$store"
    done
    log "e2e: PASSED: all checks passed in the passes $STORES ($((SECONDS - start)) s)"
}

main "$@"
