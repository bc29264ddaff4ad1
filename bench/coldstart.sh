#!/usr/bin/env bash
# Cold start of both functions beside a bare `lambda_runtime` hello-world
# (bench/hello-lambda), all built with the workspace's release profile:
# init time (spawn -> first poll of the Runtime API) and peak RSS (VmHWM at
# that poll), over RUNS interleaved starts each. See bench/coldstart.py.
# Needs no network and no emulator: the AWS endpoint is a closed port, so a
# function that called a store during init would fail here.
#
#   bench/coldstart.sh [RUNS]            default 30
#
# Environment:
#   COLDSTART_STRACE=1   also count the files each binary opens before its
#                        first poll (needs strace), and those under /etc/ssl.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs="${1:-30}"

cargo build --release --locked -p token-vendor -p install-callback -p hello-lambda

bins=(
    "hello-lambda=target/release/hello-lambda"
    "token-vendor=target/release/token-vendor"
    "install-callback=target/release/install-callback"
)
python3 bench/coldstart.py --runs "$runs" "${bins[@]}"

if [[ "${COLDSTART_STRACE:-0}" == 1 ]]; then
    python3 bench/coldstart.py --runs 1 --strace "${bins[@]}"
fi
