#!/usr/bin/env bash
# The project's test command (`make test`, called by .ci/run).
#
#   scripts/test.sh [--] [CARGO TEST ARGS...]
#
# Installs the emulator into .venv if needed, starts moto_server on a free
# loopback port, points the AWS SDK at it, runs every step in STEPS and stops
# the emulator on every exit path. Arguments go to `cargo test` (after its
# own `--workspace`, which is left out when they name a package with -p).
#
# Environment:
#   STEPS   steps to run, in order (default: DEFAULT_STEPS below), e.g.
#           STEPS=test scripts/test.sh -p test-support
#           STEPS="sam_lint sam_validate" scripts/test.sh
#
# To add a step: write a function `step_NAME` below and add NAME to
# DEFAULT_STEPS. Every step runs with the emulator up and its env exported.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Cheap checks first; the long release build before `test`, so that the
# output still ends with cargo test's summary.
DEFAULT_STEPS="fmt sam_lint sam_validate clippy lambda_build lambda_sizes test"
# The Lambda functions' binaries (BuildProperties.Binary in template.yaml).
LAMBDA_BINS="install-callback token-vendor"
LAMBDA_TARGET="aarch64-unknown-linux-gnu"
EMULATOR_LOG="$REPO_ROOT/target/moto.log"
EMULATOR_PID=""

step_fmt() {
    log "cargo fmt --check"
    cargo fmt --all -- --check
}

step_clippy() {
    log "cargo clippy"
    cargo clippy --workspace --all-targets -- -D warnings
}

step_sam_lint() {
    ensure_deploy_tools
    local start=$SECONDS
    log "sam validate --lint (cfn-lint on the transformed template)"
    sam validate --lint --template-file template.yaml
    log "sam validate --lint took $((SECONDS - start)) s"
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

# What `sam build` runs per function, for both at once: Graviton (arm64)
# release binaries in target/lambda/<bin>/bootstrap.
step_lambda_build() {
    ensure_deploy_tools
    ensure_rust_target "$LAMBDA_TARGET"
    local start=$SECONDS bin args=()
    for bin in $LAMBDA_BINS; do
        args+=(--bin "$bin")
    done
    log "$(echo cargo lambda build --release --arm64 "${args[@]}")"
    cargo lambda build --release --arm64 "${args[@]}"
    log "cargo lambda build took $((SECONDS - start)) s"
}

# Prints each bootstrap's size; fails unless it is an aarch64 ELF executable.
step_lambda_sizes() {
    local bin file bytes
    for bin in $LAMBDA_BINS; do
        file="target/lambda/$bin/bootstrap"
        [[ -f "$file" ]] || die "$file missing (run STEPS=lambda_build first)"
        # ELF magic, then e_machine (offset 18) 183 = EM_AARCH64.
        [[ "$(head -c 4 "$file" | od -An -c | tr -d ' ')" == '177ELF' ]] || die "$file is not an ELF binary"
        [[ "$(od -An -tu2 -j18 -N2 "$file" | tr -d ' ')" == 183 ]] || die "$file is not an arm64 binary"
        bytes="$(stat -c %s "$file")"
        log "$(printf '%-40s %10d bytes (%s MiB)' "$file" "$bytes" "$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')")"
    done
}

step_test() {
    local scope=(--workspace) arg
    for arg in "$@"; do
        case "$arg" in
            -p|--package|--package=*|-p?*) scope=() ;;
        esac
    done
    # The storage contract suite also covers the SQLite adapter, which is
    # behind a feature so that the Lambda binaries leave SQLite out.
    local features=()
    if ((${#scope[@]})); then
        features=(--features broker-shared/sqlite)
    fi
    log "$(echo cargo test "${scope[@]}" "${features[@]}" "$@")"
    cargo test "${scope[@]}" "${features[@]}" "$@"
}

stop_emulator() {
    if [[ -n "$EMULATOR_PID" ]]; then
        kill "$EMULATOR_PID" 2>/dev/null || true
        wait "$EMULATOR_PID" 2>/dev/null || true
        EMULATOR_PID=""
    fi
}

# Starts moto_server on a free port and exports the env pointing at it.
start_emulator() {
    mkdir -p "$(dirname "$EMULATOR_LOG")"
    local attempt port deadline
    for attempt in 1 2 3; do
        port="$(free_port)"
        log "starting moto_server on 127.0.0.1:$port (log: ${EMULATOR_LOG#"$REPO_ROOT"/})"
        "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$EMULATOR_LOG" 2>&1 &
        EMULATOR_PID=$!
        deadline=$((SECONDS + 20))
        while ((SECONDS < deadline)); do
            if emulator_ready "$port"; then
                eval "$(emulator_env "$port")"
                return 0
            fi
            if ! kill -0 "$EMULATOR_PID" 2>/dev/null; then
                break # exited: maybe the port was taken meanwhile; retry
            fi
            sleep 0.1
        done
        if kill -0 "$EMULATOR_PID" 2>/dev/null; then
            stop_emulator
            printf 'error: moto_server did not answer on port %s within 20 s; last lines of %s:\n' \
                "$port" "$EMULATOR_LOG" >&2
            tail -n 30 "$EMULATOR_LOG" >&2 || true
            exit 1
        fi
        wait "$EMULATOR_PID" 2>/dev/null || true
        EMULATOR_PID=""
        log "moto_server exited during start-up (attempt $attempt)"
    done
    printf 'error: moto_server failed to start; last lines of %s:\n' "$EMULATOR_LOG" >&2
    tail -n 30 "$EMULATOR_LOG" >&2 || true
    exit 1
}

on_exit() {
    local rc=$?
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
