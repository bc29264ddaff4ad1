# shellcheck shell=bash
# Shared by the scripts in scripts/. Source it; it defines functions and
# variables only.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO_ROOT/.venv"
REQUIREMENTS="$REPO_ROOT/scripts/requirements-test.txt"
# Copy of the requirements the venv was last installed from.
VENV_STAMP="$VENV/.requirements-test.txt"
TEST_REGION="${TEST_REGION:-eu-central-1}"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Creates .venv and installs scripts/requirements-test.txt into it, unless it
# already holds exactly those requirements and a working moto_server.
ensure_venv() {
    if [[ -x "$VENV/bin/python" ]] && ! "$VENV/bin/python" -c '' 2>/dev/null; then
        log "removing broken .venv"
        rm -rf "$VENV"
    fi
    if [[ -x "$VENV/bin/moto_server" ]] && cmp -s "$REQUIREMENTS" "$VENV_STAMP"; then
        return 0
    fi
    if [[ ! -x "$VENV/bin/python" ]]; then
        log "creating .venv"
        python3 -m venv "$VENV" || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
    fi
    log "installing test requirements into .venv ($(grep -v '^#' "$REQUIREMENTS" | xargs))"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
    [[ -x "$VENV/bin/moto_server" ]] || die ".venv/bin/moto_server missing after pip install"
    cp "$REQUIREMENTS" "$VENV_STAMP"
}

# Prints a TCP port that is free on 127.0.0.1 right now.
free_port() {
    "$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Succeeds when moto_server answers on $1 (a port).
emulator_ready() {
    "$VENV/bin/python" - "$1" <<'PY' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/moto-api/", timeout=1).read()
PY
}

# Prints, one per line, the environment that points the AWS SDK at the
# emulator on port $1 (as `export` / `unset` lines, ready to eval or paste).
emulator_env() {
    local port="$1"
    cat <<ENV
export AWS_ENDPOINT_URL=http://127.0.0.1:$port
export AWS_REGION=$TEST_REGION
export AWS_DEFAULT_REGION=$TEST_REGION
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_EC2_METADATA_DISABLED=true
export SAM_CLI_TELEMETRY=0
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_IGNORE_CONFIGURED_ENDPOINT_URLS
ENV
    # Service-specific endpoints would override AWS_ENDPOINT_URL.
    local name unset_names="AWS_ENDPOINT_URL_DYNAMODB AWS_ENDPOINT_URL_SECRETS_MANAGER"
    for name in $(compgen -e); do
        if [[ "$name" == AWS_ENDPOINT_URL_* && " $unset_names " != *" $name "* ]]; then
            unset_names+=" $name"
        fi
    done
    echo "unset $unset_names"
}

# Stops process $1 (a child of this shell) with SIGTERM, then SIGKILL if it
# is still there after ${2:-5} seconds, and reaps it. Quiet if it is gone.
stop_process() {
    local pid="$1" grace="${2:-5}" deadline
    [[ -n "$pid" ]] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        deadline=$((SECONDS + grace))
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# The emulator started by start_emulator: its log file (a script may set
# another after sourcing this file) and its process id.
EMULATOR_LOG="$REPO_ROOT/target/moto.log"
EMULATOR_PID=""

stop_emulator() {
    if [[ -n "$EMULATOR_PID" ]]; then
        stop_process "$EMULATOR_PID"
        EMULATOR_PID=""
    fi
}

# Starts moto_server (from ensure_venv) on a free port, waits until it
# answers and exports the env pointing the AWS SDK at it. The caller stops it
# with stop_emulator (from an EXIT trap).
start_emulator() {
    mkdir -p "$(dirname "$EMULATOR_LOG")"
    local attempt port deadline
    for attempt in 1 2 3; do
        port="$(free_port)"
        log "starting moto_server on 127.0.0.1:$port (log: ${EMULATOR_LOG#"$REPO_ROOT"/})"
        "$VENV/bin/python" "$REPO_ROOT/scripts/moto_server.py" -H 127.0.0.1 -p "$port" >"$EMULATOR_LOG" 2>&1 &
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

# Build and packaging tools (sam, cargo-lambda with zig), pinned in
# requirements-deploy.txt and installed into the same .venv.
DEPLOY_REQUIREMENTS="$REPO_ROOT/scripts/requirements-deploy.txt"
# Copy of both requirement files the deploy tools were last installed with.
DEPLOY_STAMP="$VENV/.requirements-deploy.txt"

# Installs requirements-deploy.txt into .venv (resolved together with
# requirements-test.txt, so neither pin breaks the other) unless it already
# holds exactly those, and puts .venv/bin first on PATH: `cargo lambda` and
# `sam build` find cargo-lambda there, and cargo-lambda finds zig through the
# venv's python.
ensure_deploy_tools() {
    ensure_venv
    local wanted
    wanted="$(cat "$REQUIREMENTS" "$DEPLOY_REQUIREMENTS")"
    if [[ ! -x "$VENV/bin/sam" || ! -x "$VENV/bin/cargo-lambda" ]] \
        || [[ ! -f "$DEPLOY_STAMP" || "$(cat "$DEPLOY_STAMP")" != "$wanted" ]]; then
        log "installing deploy tools into .venv ($(grep -hv '^#' "$DEPLOY_REQUIREMENTS" | xargs))"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
            -r "$REQUIREMENTS" -r "$DEPLOY_REQUIREMENTS"
        [[ -x "$VENV/bin/sam" ]] || die ".venv/bin/sam missing after pip install"
        [[ -x "$VENV/bin/cargo-lambda" ]] || die ".venv/bin/cargo-lambda missing after pip install"
        printf '%s\n' "$wanted" >"$DEPLOY_STAMP"
    fi
    case ":$PATH:" in
        *":$VENV/bin:"*) ;;
        *) export PATH="$VENV/bin:$PATH" ;;
    esac
    export SAM_CLI_TELEMETRY=0
}

# Adds the Rust standard library for target $1 (e.g. aarch64-unknown-linux-gnu)
# through rustup when the toolchain lacks it.
ensure_rust_target() {
    local target="$1"
    if rustc --print sysroot >/dev/null 2>&1 \
        && [[ -d "$(rustc --print sysroot)/lib/rustlib/$target/lib" ]]; then
        return 0
    fi
    command -v rustup >/dev/null || die "the Rust standard library for $target is missing and rustup is not installed"
    log "rustup target add $target"
    rustup target add "$target"
}

# broker-local started by start_broker_local: its URL and process id.
BROKER_LOCAL_URL=""
BROKER_LOCAL_PID=""

stop_broker_local() {
    if [[ -n "$BROKER_LOCAL_PID" ]]; then
        stop_process "$BROKER_LOCAL_PID"
        BROKER_LOCAL_PID=""
    fi
}

# Starts the built broker-local on a free loopback port (it binds port 0 and
# prints where it listens) with the embedded store at $1/broker.db (fresh)
# and sandbox platforms, whatever the environment configures; its output goes
# to $1/broker-local.log. Waits for "ready" and sets BROKER_LOCAL_URL. The
# caller stops it with stop_broker_local (from an EXIT trap).
start_broker_local() {
    local dir="$1" log="$1/broker-local.log" deadline
    local bin="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug/broker-local"
    [[ -x "$bin" ]] || die "$bin missing (cargo build -p broker-local)"
    mkdir -p "$dir"
    rm -f "$dir/broker.db"
    env -u SHOPTET_OAUTH_URL -u SHOPRENTER_CLIENT_ID RUST_LOG=warn \
        "$bin" --listen 127.0.0.1:0 --db "$dir/broker.db" >"$log" 2>&1 &
    BROKER_LOCAL_PID=$!
    deadline=$((SECONDS + 30))
    until grep -qx ready "$log"; do
        if ! kill -0 "$BROKER_LOCAL_PID" 2>/dev/null || ((SECONDS >= deadline)); then
            stop_broker_local
            printf 'error: broker-local did not get ready; last lines of %s:\n' "$log" >&2
            tail -n 30 "$log" >&2 || true
            exit 1
        fi
        sleep 0.1
    done
    BROKER_LOCAL_URL="$(sed -n 's/^shop-token-broker local server: //p' "$log")"
    [[ "$BROKER_LOCAL_URL" == http://127.0.0.1:* ]] || die "broker-local printed no URL (see $log)"
}
