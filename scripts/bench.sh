#!/usr/bin/env bash
# Benchmarks of the token vendor (the `broker-bench` crate in bench/): storms
# in one process and over 8 OS processes, L1 hit handler time, L2 vend
# latency against a raw GetItem; `fleet`: a simulated hour of 10 000 shops
# over 8 instances; `counts`: the AWS requests of each operation on both
# installation stores (docs/cost.md); `eshop-webhooks`: the install
# callback's acknowledgement latency for 200 concurrent signed e-shop
# webhook deliveries (new, duplicates, cold key cache), checked against the
# events a queue on the bus receives. Prints Markdown tables; BENCHMARKS.md
# holds the figures of recorded runs. Not part of `make test`.
#
#   scripts/bench.sh [BENCH ARGS...]     e.g. --rounds 10 --l1-iterations 200000
#   scripts/bench.sh fleet [--store DynamoDB] [--shops N] [--vends N] [--compress K] ...
#   scripts/bench.sh counts [--json docs/cost-counts.json]
#   scripts/bench.sh events [--samples N]   state change → event at a queue
#   scripts/bench.sh eshop-webhooks [--samples N] [--concurrency N] [--shops N] [--store DynamoDB]
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
