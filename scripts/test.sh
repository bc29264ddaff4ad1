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
#
# To add a step: write a function `step_NAME` below and add NAME to
# DEFAULT_STEPS. Every step runs with the emulator up and its env exported.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Cheap checks first; the long release build and the end-to-end run before
# `test`, so that the output still ends with cargo test's summary.
DEFAULT_STEPS="fmt sam_lint sam_validate clippy lambda_build lambda_sizes lambda_no_sqlite e2e test"
# The Lambda functions' binaries (BuildProperties.Binary in template.yaml).
LAMBDA_BINS="install-callback token-vendor"
LAMBDA_TARGET="aarch64-unknown-linux-gnu"

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

# The Lambda bootstraps must not carry SQLite (the `sqlite` feature of
# broker-shared is for the local server only): neither in the dependency graph
# `cargo lambda build` resolves for them nor in the binaries. The binary check
# is calibrated first on a build that does link SQLite, so that it cannot pass
# merely because the marker strings are wrong.
step_lambda_no_sqlite() {
    local crates='rusqlite|libsqlite3-sys' markers=('sqlite_master' 'SQLite format 3')
    local bin file marker canary found=() packages=()
    for bin in $LAMBDA_BINS; do
        packages+=(-p "$bin")
    done
    log "cargo tree ${packages[*]} -e normal,build --target $LAMBDA_TARGET: no SQLite crates"
    # The grep pattern must match where SQLite is a dependency.
    cargo tree -p broker-local -e normal,build --target "$LAMBDA_TARGET" --prefix none \
        | grep -Eq "^($crates) " || die "cargo tree -p broker-local shows no ${crates//|/ or }: this check is miscalibrated"
    local tree
    tree="$(cargo tree "${packages[@]}" -e normal,build --target "$LAMBDA_TARGET" --prefix none)"
    if grep -Eq "^($crates) " <<<"$tree"; then
        cargo tree "${packages[@]}" -e normal,build --target "$LAMBDA_TARGET" -i rusqlite >&2 || true
        die "the Lambda functions depend on SQLite (${crates//|/, }): see the inverted tree above"
    fi

    # Something that links the bundled SQLite: the local server's binary, or
    # else the SQLite archive a previous build left; else build the server.
    canary="$(find target/debug target/release -maxdepth 1 -name broker-local -type f 2>/dev/null | head -n 1 || true)"
    if [[ -z "$canary" ]]; then
        canary="$(find target -path '*/build/libsqlite3-sys-*/out/libsqlite3.a' 2>/dev/null | head -n 1 || true)"
    fi
    if [[ -z "$canary" ]]; then
        log "cargo build -p broker-local (a binary that links SQLite, to calibrate the check)"
        cargo build -p broker-local
        canary="target/debug/broker-local"
    fi
    for marker in "${markers[@]}"; do
        if grep -aqF "$marker" "$canary"; then
            found+=("$marker")
        fi
    done
    ((${#found[@]})) || die "none of the markers (${markers[*]}) is in $canary, which links SQLite: this check is miscalibrated"
    log "SQLite markers found in $canary: $(printf "'%s' " "${found[@]}")"
    for bin in $LAMBDA_BINS; do
        file="target/lambda/$bin/bootstrap"
        [[ -f "$file" ]] || die "$file missing (run STEPS=lambda_build first)"
        for marker in "${found[@]}"; do
            if grep -aqF "$marker" "$file"; then
                die "$file contains '$marker': the Lambda bootstrap links SQLite"
            fi
        done
        log "$file: no SQLite"
    done
}

# End to end through `cargo lambda watch` (scripts/e2e.sh) on this emulator.
step_e2e() {
    ensure_deploy_tools
    local start=$SECONDS
    log "scripts/e2e.sh"
    "$REPO_ROOT/scripts/e2e.sh"
    log "e2e took $((SECONDS - start)) s"
}

step_test() {
    # broker-e2e needs the processes scripts/e2e.sh starts (step e2e runs it).
    local scope=(--workspace --exclude broker-e2e) arg
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
