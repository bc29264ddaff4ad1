#!/usr/bin/env python3
"""Cold start: spawn -> first poll of the Lambda Runtime API, and peak RSS.

Runs each binary N times against a tiny Runtime API stub (this process). The
clock starts just before the spawn and stops when the stub receives the
binary's first `GET /2018-06-01/runtime/invocation/next`; at that moment the
binary is blocked on the poll, and its `VmHWM` (peak resident set) is read
from /proc/<pid>/status. The binary is then killed. The AWS endpoint is a
closed loopback port: a function that made a network call during init would
fail (or stall) before its first poll, and the run reports it.

Usage: coldstart.py [--runs N] [--strace] NAME=PATH [NAME=PATH ...]
The first binary is the floor the others are compared with. With --strace,
each binary runs once under `strace -f -e trace=openat,connect` instead, and
the files it opened and the sockets it connected before its first poll are
counted (timings under strace mean nothing).
Standard library only.
"""

import argparse
import http.server
import os
import socket
import statistics
import subprocess
import signal
import sys
import tempfile
import threading
import time

POLL = "/2018-06-01/runtime/invocation/next"


class Stub(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.polled = threading.Event()
        self.pid = None
        self.polled_at = None
        self.hwm_kb = None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 (the stdlib's naming)
        now = time.perf_counter_ns()
        server = self.server
        if self.path == POLL and not server.polled.is_set():
            server.polled_at = now
            server.hwm_kb = peak_rss_kb(server.pid)
            server.polled.set()
        # Never answer with an event: the binary is killed while it waits.
        time.sleep(5)

    def log_message(self, *args):
        pass


def peak_rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def environment(api_port, aws_port):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        # What Lambda sets.
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{api_port}",
        "AWS_LAMBDA_FUNCTION_NAME": "coldstart",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/coldstart",
        "AWS_LAMBDA_LOG_STREAM_NAME": "coldstart",
        "AWS_LAMBDA_LOG_FORMAT": "JSON",
        "AWS_LAMBDA_LOG_LEVEL": "INFO",
        "AWS_REGION": "eu-central-1",
        "AWS_DEFAULT_REGION": "eu-central-1",
        "AWS_ACCESS_KEY_ID": "coldstart",
        "AWS_SECRET_ACCESS_KEY": "coldstart",
        "AWS_SESSION_TOKEN": "coldstart",
        # Nothing listens here: any store call during init fails.
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{aws_port}",
        # Both functions' configuration (template.yaml), every secret named.
        "TOKEN_TABLE": "tokens",
        "TOKEN_KEY_ID": "alias/coldstart/tokens",
        "REGISTRY_TABLE": "registry",
        "SECRET_PREFIX": "shop-token-broker/",
        "SHOPTET_OAUTH_URL": "https://12345.myshoptet.com",
        "SHOPTET_CLIENT_ID": "coldstart-client",
        "SHOPTET_CLIENT_SECRET_ID": "shop-token-broker/addon-client-secret",
        "SHOPTET_WEBHOOK_KEY_SECRET_ID": "shop-token-broker/webhook-key",
        "SHOPRENTER_CLIENT_ID": "coldstart-app",
        "SHOPRENTER_CLIENT_SECRET_ID": "shop-token-broker/shoprenter-app",
    }
    return env


def run_once(stub, binary, env):
    stub.polled.clear()
    stub.polled_at = stub.hwm_kb = None
    started = time.perf_counter_ns()
    process = subprocess.Popen(
        [binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    stub.pid = process.pid
    polled = stub.polled.wait(timeout=10)
    exited = process.poll()
    process.kill()
    _, stderr = process.communicate()
    if not polled:
        detail = stderr.decode(errors="replace").strip()[-400:]
        raise SystemExit(
            f"{binary}: no poll within 10 s (exit {exited}); stderr: {detail}"
        )
    return (stub.polled_at - started) / 1e6, stub.hwm_kb


def traced(stub, binary, env):
    """Files opened and connections made before the first poll, under strace."""
    with tempfile.NamedTemporaryFile(mode="r", suffix=".strace") as log:
        stub.polled.clear()
        process = subprocess.Popen(
            ["strace", "-f", "-e", "trace=openat,connect", "-o", log.name, binary],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        polled = stub.polled.wait(timeout=20)
        # strace detaches when killed: kill the traced binary first.
        try:
            with open(f"/proc/{process.pid}/task/{process.pid}/children") as children:
                for child in children.read().split():
                    os.kill(int(child), signal.SIGKILL)
        except OSError:
            pass
        process.kill()
        process.wait()
        if not polled:
            raise SystemExit(f"{binary}: no poll within 20 s under strace")
        lines = log.read().splitlines()
    opened = [line for line in lines if "openat(" in line and "ENOENT" not in line]
    certs = [line for line in opened if "/etc/ssl" in line or "/etc/pki" in line]
    connects = [line for line in lines if "connect(" in line and "AF_INET" in line]
    return len(opened), len(certs), len(connects)


def percentile(values, fraction):
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--strace", action="store_true")
    parser.add_argument("binaries", nargs="+", metavar="NAME=PATH")
    args = parser.parse_args()
    stub = Stub()
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    env = environment(stub.server_address[1], closed_port())
    targets = [spec.split("=", 1) for spec in args.binaries]
    if args.strace:
        print(f"{'binary':<18} {'files opened':>12} {'under /etc/ssl':>14} {'inet connects':>13}")
        for name, path in targets:
            opened, certs, connects = traced(stub, path, env)
            print(f"{name:<18} {opened:>12} {certs:>14} {connects:>13}")
        return
    samples = {name: ([], []) for name, _ in targets}
    # One warm-up each (page cache), then runs interleaved so drift hits all alike.
    for _, path in targets:
        run_once(stub, path, env)
    for _ in range(args.runs):
        for name, path in targets:
            init_ms, hwm_kb = run_once(stub, path, env)
            samples[name][0].append(init_ms)
            samples[name][1].append(hwm_kb)
    floor_name = targets[0][0]
    floor_p50 = statistics.median(samples[floor_name][0])
    floor_rss = max(samples[floor_name][1])
    print(f"runs per binary: {args.runs}")
    print(
        f"{'binary':<18} {'init p50 ms':>11} {'init p90 ms':>11} "
        f"{'peak RSS MB':>11} {'init ×floor':>11} {'RSS ×floor':>10}"
    )
    for name, _ in targets:
        init, rss = samples[name]
        p50 = statistics.median(init)
        peak = max(rss)
        print(
            f"{name:<18} {p50:>11.2f} {percentile(init, 0.9):>11.2f} "
            f"{peak / 1024:>11.2f} {p50 / floor_p50:>11.2f} {peak / floor_rss:>10.2f}"
        )


if __name__ == "__main__":
    sys.exit(main())
