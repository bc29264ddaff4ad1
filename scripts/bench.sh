#!/usr/bin/env bash
# Benchmarks of the token vendor (the `broker-bench` crate in bench/): storms
# in one process and over 8 OS processes, L1 hit handler time, L2 vend
# latency against a raw GetItem. Prints a Markdown table; BENCHMARKS.md holds
# the figures of a recorded run. Not part of `make test`.
#
#   scripts/bench.sh [BENCH ARGS...]     e.g. --rounds 10 --l1-iterations 200000
#
# Starts moto_server on a free loopback port like scripts/test.sh (and stops
# it on every exit path), then runs `cargo run --release -p broker-bench`.
# The release build takes a few minutes the first time.
#
# Environment:
#   BENCH_PROFILE   cargo profile (default: release; `dev` for a quick check)
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

EMULATOR_LOG="$REPO_ROOT/target/moto-bench.log"
EMULATOR_PID=""

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
            kill -0 "$EMULATOR_PID" 2>/dev/null || break # exited: maybe the port was taken
            sleep 0.1
        done
        stop_emulator
        log "moto_server did not come up (attempt $attempt)"
    done
    tail -n 30 "$EMULATOR_LOG" >&2 || true
    die "moto_server failed to start"
}

on_exit() {
    local rc=$?
    stop_emulator
    exit "$rc"
}

main() {
    cd "$REPO_ROOT"
    trap on_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    local profile="${BENCH_PROFILE:-release}"
    # Build before starting the emulator: the first release build is long.
    log "cargo build --profile $profile -p broker-bench"
    cargo build --profile "$profile" -p broker-bench

    ensure_venv
    start_emulator
    log "cargo run --profile $profile -p broker-bench -- $*"
    cargo run --quiet --profile "$profile" -p broker-bench -- "$@"
}

main "$@"
