#!/usr/bin/env bash
# The project's test command (`make test`, called by .ci/run).
#
#   scripts/test.sh [--] [CARGO TEST ARGS...]
#
# Installs the emulator into .venv if needed, starts moto_server on a free
# loopback port, points the AWS SDK at it, runs every step in STEPS and stops
# the emulator on every exit path. Arguments go to `cargo test` (after its
# own `--workspace --exclude broker-e2e`, which is left out when they name a
# package with -p; broker-e2e runs in step e2e).
#
# Environment:
#   STEPS   steps to run, in order (default: DEFAULT_STEPS below), e.g.
#           STEPS=test scripts/test.sh -p test-support
#           STEPS="sam_lint sam_validate" scripts/test.sh
#   CONFORMANCE_EXAMPLES  test cases per operation in step conformance
#           (default 100)
#
# To add a step: write a function `step_NAME` below and add NAME to
# DEFAULT_STEPS. Every step runs with the emulator up and its env exported.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Cheap checks first; the long release build and the end-to-end run before
# `test`, so that the output still ends with cargo test's summary.
DEFAULT_STEPS="fmt advisories crate_graph module_cycles cost_doc sam_lint sam_validate clippy client_doc publish_dry_run lambda_build lambda_sizes e2e conformance test"
# The Lambda functions' binaries (BuildProperties.Binary in template.yaml).
LAMBDA_BINS="install-callback token-vendor event-publisher shoptet-webhooks"
# Their functions in template.yaml (sam build's output folders).
LAMBDA_FUNCTIONS="InstallCallbackFunction TokenVendorFunction EventPublisherFunction ShoptetWebhooksFunction"
LAMBDA_TARGET="aarch64-unknown-linux-gnu"

step_fmt() {
    log "cargo fmt --check"
    cargo fmt --all -- --check
}

# docs/cost.md's tables are what scripts/cost_model.py prints from the
# measured counts (docs/cost-counts.json): a change of price, assumption or
# counts must come with the tables it gives.
step_cost_doc() {
    log "docs/cost.md: the tables scripts/cost_model.py prints"
    "$VENV/bin/python" scripts/cost_model.py --counts docs/cost-counts.json --markdown \
        --check-doc docs/cost.md || die "docs/cost.md's tables are out of date (see above)"
}

# The consumer client's AWS transports (SigV4, Lambda Invoke) and its CLI are
# behind features so that its default build stays light.
TEST_FEATURES=shop-token-client/http,shop-token-client/lambda,shop-token-client/cli

step_clippy() {
    log "cargo clippy"
    cargo clippy --workspace --all-targets --features "$TEST_FEATURES" -- -D warnings
}

# The consumer client is published: its rustdoc must build without a warning,
# with the default features (what a user gets first) and with all of them.
step_client_doc() {
    log "cargo doc -p shop-token-client (RUSTDOCFLAGS=-D warnings)"
    RUSTDOCFLAGS="-D warnings" cargo doc --quiet -p shop-token-client --no-deps
    RUSTDOCFLAGS="-D warnings" cargo doc --quiet -p shop-token-client --no-deps --all-features
}

# The protocol and client crates are published: both must package and build
# from what `cargo package` includes, with complete metadata.
step_publish_dry_run() {
    log "cargo publish --dry-run -p shop-token-protocol -p shop-token-client"
    cargo publish --dry-run --quiet --allow-dirty -p shop-token-protocol -p shop-token-client
}

step_sam_lint() {
    ensure_deploy_tools
    local start=$SECONDS store platforms
    log "sam validate --lint (cfn-lint on the transformed template)"
    sam validate --lint --template-file template.yaml
    # cfn-lint weighs every value a parameter allows at once. Each supported
    # combination is also linted as the one deployed: a copy of the template
    # whose parameters allow only that combination's values, so that
    # cfn-lint evaluates the conditions on them (UseDynamoDBInstallations,
    # the platforms') as fixed. The other values' !If branches are then
    # unreachable by construction: W1028 (an unreachable branch) and W1030
    # (a value such a branch would use, e.g. an empty secret ARN where the
    # grant is left out) are left out there; the unpinned lint above runs
    # every check.
    for store in SecretsManager DynamoDB; do
        for platforms in "${PLATFORM_STACKS[@]}"; do
            log "cfn-lint, InstallationStore=$store, ${platforms%%:*} (as sam validate --lint)"
            # shellcheck disable=SC2086 # the pins are words
            lint_pinned_template "InstallationStore=$store" ${platforms#*:}
        done
    done
    log "sam validate --lint took $((SECONDS - start)) s"
}

# The platform combinations a stack supports, as "name:Parameter=value ...":
# the values a deployer gives, or empty for a platform left out.
SAMPLE_SECRET_ARN="arn:aws:secretsmanager:eu-central-1:123456789012:secret:app-AbCdEf"
SHOPTET_SET="ShoptetOAuthUrl=https://12345.myshoptet.com ShoptetClientId=client-id"
SHOPTET_UNSET="ShoptetOAuthUrl= ShoptetClientId="
SHOPRENTER_SET="ShoprenterClientId=app-id ShoprenterClientSecretArn=$SAMPLE_SECRET_ARN"
SHOPRENTER_UNSET="ShoprenterClientId= ShoprenterClientSecretArn="
PLATFORM_STACKS=(
    "Shoptet-only:$SHOPTET_SET $SHOPRENTER_UNSET"
    "Shoprenter-only:$SHOPTET_UNSET $SHOPRENTER_SET"
    "both platforms:$SHOPTET_SET $SHOPRENTER_SET"
)

# Runs cfn-lint (the library `sam validate --lint` calls) on a copy of
# template.yaml in which each PARAMETER=VALUE argument's parameter has VALUE
# as its default and only allowed value. Fails if a parameter is missing.
lint_pinned_template() {
    local dir rc=0
    dir="$(mktemp -d)"
    "$VENV/bin/python" - "$dir/template.yaml" "$@" <<'PY' || rc=$?
import re, sys
out, pins = sys.argv[1], sys.argv[2:]
text = open("template.yaml").read()
for pin in pins:
    name, value = pin.split("=", 1)
    block = re.search(rf"^  {name}:\n(    .*\n|\s*\n)*?(?=^  \S|^\S)", text, re.M)
    if not block:
        sys.exit(f"template.yaml: no parameter {name} to pin")
    lines = [line for line in block.group(0).splitlines(keepends=True)
             if not line.startswith(("    Default:", "    AllowedValues:"))]
    quoted = '"' + value + '"'
    lines[2:2] = [f"    Default: {quoted}\n", f"    AllowedValues: [{quoted}]\n"]
    text = text[:block.start()] + "".join(lines) + text[block.end():]
open(out, "w").write(text)
PY
    ((rc == 0)) || { rm -rf "$dir"; die "could not pin $* in a copy of template.yaml"; }
    cfn-lint --ignore-checks W1028 W1030 -- "$dir/template.yaml" || rc=$?
    rm -rf "$dir"
    ((rc == 0)) || die "cfn-lint found problems with $* (above)"
}

# The SAM translator's own checks (e.g. DefaultAuthorizer AWS_IAM needs
# EnableIamAuthorizer). Needs a region, no credentials.
step_sam_validate() {
    ensure_deploy_tools
    local start=$SECONDS
    log "sam validate (region ${AWS_DEFAULT_REGION:-$TEST_REGION})"
    AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-$TEST_REGION}" sam validate --template-file template.yaml
    log "sam validate took $((SECONDS - start)) s"
}

# The user's build path, as README's "Build and deploy" has them run it:
# `sam build` from the checkout, with no terminal (nothing may prompt),
# cargo-lambda found on PATH the way README says (.venv/bin), and
# samconfig.toml's build settings. SAM runs `cargo lambda build --release
# --arm64 --bin <binary>` per function and copies each bootstrap to
# .aws-sam/build/<Function>/.
step_lambda_build() {
    ensure_deploy_tools
    ensure_rust_target "$LAMBDA_TARGET"
    local start=$SECONDS
    log "sam build (SAM CLI $(sam --version | awk '{print $NF}'), no terminal)"
    SAM_CLI_TELEMETRY=0 sam build --template-file template.yaml </dev/null
    log "sam build took $((SECONDS - start)) s"
}

# What `sam build` left for `sam deploy`: each function's bootstrap, an
# aarch64 ELF executable (Graviton), with no SQLite linked in; prints its size.
step_lambda_sizes() {
    local function file bytes
    for function in $LAMBDA_FUNCTIONS; do
        file=".aws-sam/build/$function/bootstrap"
        [[ -f "$file" ]] || die "$file missing (run STEPS=lambda_build first)"
        # ELF magic, then e_machine (offset 18) 183 = EM_AARCH64.
        [[ "$(head -c 4 "$file" | od -An -c | tr -d ' ')" == '177ELF' ]] || die "$file is not an ELF binary"
        [[ "$(od -An -tu2 -j18 -N2 "$file" | tr -d ' ')" == 183 ]] || die "$file is not an arm64 binary"
        # SQLite's own file-header string: present in any binary linking it.
        ! grep -aq 'SQLite format 3' "$file" || die "$file links SQLite"
        bytes="$(stat -c %s "$file")"
        log "$(printf '%-50s %10d bytes (%s MiB), no SQLite' "$file" "$bytes" "$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')")"
    done
}

# The crate graph keeps SQLite out of the Lambda functions (only broker-local
# depends on broker-sqlite) and the AWS SDK out of the vending core: asserted
# on the graph `cargo lambda build` resolves, so a dependency added by mistake
# fails here, not in production.
step_crate_graph() {
    local bin tree
    for bin in $LAMBDA_BINS; do
        tree="$(cargo tree -p "$bin" -e normal,build --target "$LAMBDA_TARGET" --prefix none)"
        ! grep -Eq '^(rusqlite|libsqlite3-sys|broker-sqlite) ' <<<"$tree" \
            || die "$bin depends on SQLite: $(cargo tree -p "$bin" -e normal,build --target "$LAMBDA_TARGET" -i rusqlite 2>&1 | head -n 20)"
        log "cargo tree -p $bin: no rusqlite"
    done
    tree="$(cargo tree -p broker-vending -e normal,build --prefix none)"
    ! grep -Eq '^aws-(sdk|config|smithy|types|sigv4)' <<<"$tree" \
        || die "broker-vending depends on the AWS SDK: $(grep -E '^aws-' <<<"$tree" | sort -u | tr '\n' ' ')"
    log "cargo tree -p broker-vending: no aws-sdk-*"
}

# Cargo.lock against the RustSec advisory database, offline: the snapshot in
# the team handbook beside the checkout (ADVISORY_DB to point elsewhere; see
# README for refreshing it). Fails on any advisory that applies.
step_advisories() {
    local db="${ADVISORY_DB:-$REPO_ROOT/../shared/advisory-db}"
    [[ -d "$db/crates" ]] || die "no RustSec advisory snapshot at $db (expected its crates/ folder)"
    [[ -x "$VENV/bin/cargo-audit" ]] || die ".venv/bin/cargo-audit missing (scripts/requirements-test.txt)"
    log "cargo-audit audit --no-fetch --db ${db#"$REPO_ROOT"/}"
    "$VENV/bin/cargo-audit" audit --no-fetch --db "$db" --file "$REPO_ROOT/Cargo.lock"
}

# No two files import each other, directly or around a loop, in any crate
# (scripts/module_cycles.py prints each cycle it finds).
step_module_cycles() {
    log "scripts/module_cycles.py"
    python3 scripts/module_cycles.py
}

# End to end through `cargo lambda watch` (scripts/e2e.sh) on this emulator.
step_e2e() {
    ensure_deploy_tools
    local start=$SECONDS
    log "scripts/e2e.sh"
    "$REPO_ROOT/scripts/e2e.sh"
    log "e2e took $((SECONDS - start)) s"
}

# What schemathesis checks in step conformance: no 5xx but the documented
# ones scripts/schemathesis.toml allows per route; every status, content type,
# header and body as openapi.yaml documents it; schema-invalid input refused
# (4xx); a 405 with `Allow` for an undeclared method. Left out: ignored_auth
# (SigV4 is API Gateway's; broker-local on loopback asks for none),
# positive_data_acceptance (valid-looking shops are mostly not installed),
# use_after_free (DELETE /installations/… keeps the registration, as
# `uninstalled`, by design), ensure_resource_availability and
# object_level_authorization (no route creates a resource or has an owner).
CONFORMANCE_CHECKS="not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection,missing_required_header,unsupported_method,allow_header_conformance"
# Generated test cases per operation (--max-examples; deterministic: the same
# cases on every run).
CONFORMANCE_EXAMPLES="${CONFORMANCE_EXAMPLES:-100}"

# openapi.yaml against the implementation: broker-local (embedded store,
# sandbox platforms) on a free loopback port serves the document; the sandbox
# shops are installed so that vends succeed, then schemathesis runs every
# phase (examples, coverage, fuzzing, stateful) against every route.
# scripts/conformance_hooks.py signs the platform callbacks with the
# sandbox's secrets; the statuses it saw per route are checked below.
step_conformance() {
    local start=$SECONDS dir="$REPO_ROOT/target/conformance" install_url status shop
    [[ -x "$VENV/bin/schemathesis" ]] || die ".venv/bin/schemathesis missing (scripts/requirements-test.txt)"
    log "cargo build -p broker-local"
    cargo build -p broker-local
    rm -rf "$dir"
    mkdir -p "$dir"
    start_broker_local "$dir"
    log "broker-local on $BROKER_LOCAL_URL (log: ${dir#"$REPO_ROOT"/}/broker-local.log)"

    # The sandbox's printed install line, then its Shoprenter shop, imported.
    install_url="$(grep -o "'http://[^']*/shoptet/install?code=[^']*'" "$dir/broker-local.log" | tr -d "'")"
    [[ -n "$install_url" ]] || die "broker-local printed no install line"
    [[ "$(curl -s "$install_url")" == *'"status":"installed"'* ]] || die "the sandbox install of e-shop 222651 failed"
    status="$(curl -s -o /dev/null -w '%{http_code}' -X PUT "$BROKER_LOCAL_URL/shoprenter/demo-shop/installation")"
    [[ "$status" == 201 ]] || die "importing the sandbox Shoprenter shop answered $status"
    for shop in shoptet/222651 shoprenter/demo-shop; do
        status="$(curl -s -o /dev/null -w '%{http_code}' "$BROKER_LOCAL_URL/tokens/$shop")"
        [[ "$status" == 200 ]] || die "GET /tokens/$shop answered $status after the install"
    done

    log "schemathesis run $BROKER_LOCAL_URL/openapi.yaml (checks: $CONFORMANCE_CHECKS; $CONFORMANCE_EXAMPLES examples)"
    if ! (cd "$dir" && CONFORMANCE_SUMMARY="$dir/statuses.json" \
        SCHEMATHESIS_HOOKS="$REPO_ROOT/scripts/conformance_hooks.py" \
        "$VENV/bin/schemathesis" --config-file "$REPO_ROOT/scripts/schemathesis.toml" \
        run "$BROKER_LOCAL_URL/openapi.yaml" --url "$BROKER_LOCAL_URL" \
        --checks "$CONFORMANCE_CHECKS" --max-examples "$CONFORMANCE_EXAMPLES" --no-color); then
        log "last lines of ${dir#"$REPO_ROOT"/}/broker-local.log:"
        tail -n 20 "$dir/broker-local.log" >&2 || true
        die "the implementation does not conform to openapi.yaml (failures above)"
    fi
    stop_broker_local

    # The run reached past the front doors: vends succeeded, and signed
    # platform callbacks were processed (not merely refused with 401).
    "$VENV/bin/python" - "$dir/statuses.json" <<'PY' || die "the conformance run did not reach the routes' logic (see above)"
import json, sys
seen = json.load(open(sys.argv[1]))
for label, counts in seen.items():
    if set(counts) != {"405"}:
        print(f"    {label:42} " + " ".join(f"{k}x{v}" for k, v in sorted(counts.items())), file=sys.stderr)
wanted = {
    "GET /tokens/{platform}/{shop}": ("200",),
    "POST /tokens/{platform}/{shop}": ("200",),
    "POST /shoptet/webhook": ("200",),
    "GET /shoprenter/install": ("200", "302"),
    "GET /shoprenter/uninstall": ("200",),
}
missing = [f"{label} never answered {'/'.join(codes)}" for label, codes in wanted.items()
           if not any(seen.get(label, {}).get(code) for code in codes)]
for problem in missing:
    print(f"error: {problem}", file=sys.stderr)
sys.exit(1 if missing else 0)
PY
    log "conformance took $((SECONDS - start)) s"
}

step_test() {
    # broker-e2e needs the processes scripts/e2e.sh starts (step e2e runs it).
    local scope=(--workspace --exclude broker-e2e) arg
    for arg in "$@"; do
        case "$arg" in
            -p|--package|--package=*|-p?*) scope=() ;;
        esac
    done
    local features=()
    if ((${#scope[@]})); then
        features=(--features "$TEST_FEATURES")
    fi
    log "$(echo cargo test "${scope[@]}" "${features[@]}" "$@")"
    cargo test "${scope[@]}" "${features[@]}" "$@"
}

on_exit() {
    local rc=$?
    stop_broker_local
    stop_emulator
    exit "$rc"
}

main() {
    if [[ "${1:-}" == "--" ]]; then
        shift
    fi
    cd "$REPO_ROOT"
    trap on_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    ensure_venv
    start_emulator

    local step
    for step in ${STEPS:-$DEFAULT_STEPS}; do
        declare -F "step_$step" >/dev/null || die "unknown step '$step' (have: $DEFAULT_STEPS)"
        if [[ "$step" == test ]]; then
            "step_$step" "$@"
        else
            "step_$step"
        fi
    done
}

main "$@"
