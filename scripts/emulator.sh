#!/usr/bin/env bash
# Runs the AWS emulator (moto_server) in the foreground for running
# `cargo test` by hand. Ctrl-C stops it.
#
#   scripts/emulator.sh [PORT]      (default 5000, or $EMULATOR_PORT)
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

port="${1:-${EMULATOR_PORT:-5000}}"
ensure_venv
cat >&2 <<MSG
moto_server on http://127.0.0.1:$port. In another shell, paste:

$(emulator_env "$port")

then run e.g. \`cargo test --workspace\`.

MSG
exec "$VENV/bin/python" "$REPO_ROOT/scripts/moto_server.py" -H 127.0.0.1 -p "$port"
