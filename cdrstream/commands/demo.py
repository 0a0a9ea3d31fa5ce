"""`cdrstream demo`: the whole product on one machine.

Starts the local Kafka + Redis, a worker, the query endpoint and a generator of realistic
calls (a backfill of the past days, then a steady trickle), issues a token for a demo
partner, prints the web page's URL and the token, and runs until Ctrl-C. The engines keep
running afterwards (`cdrstream stack down` stops them).
"""

from __future__ import annotations

import argparse

from cdrstream.commands.generate import DEFAULT_TENANTS


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", type=float, default=5.0, help="live calls per second [5]")
    parser.add_argument(
        "--backfill", type=int, default=3000, help="calls spread over the past 7 days [3000]"
    )


def run(args: argparse.Namespace) -> int:
    import os
    import signal
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    from cdrstream.settings import load_settings
    from cdrstream.stack.local import LocalStack
    from cdrstream.stack.processes import StackError

    settings = load_settings()
    stack = LocalStack.from_settings(settings)
    print("starting Kafka (KRaft) and Redis ...", file=sys.stderr)
    try:
        stack.up(settings)
    except StackError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1

    logs = Path(settings.stack_dir) / "demo"
    logs.mkdir(parents=True, exist_ok=True)
    me = [sys.executable, "-m", "cdrstream"]
    children: list[subprocess.Popen[bytes]] = []

    def start(name: str, *argv: str) -> subprocess.Popen[bytes]:
        log = (logs / f"{name}.log").open("ab")
        child = subprocess.Popen([*me, *argv], stdout=log, stderr=subprocess.STDOUT)
        children.append(child)
        return child

    token = subprocess.run(
        [
            *me,
            "token",
            "issue",
            "--partner",
            "demo-partner",
            "--tenants",
            DEFAULT_TENANTS,
            "--airtime-reseller",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    start("worker", "worker")
    start("api", "api")
    start(
        "backfill",
        "generate",
        "--count",
        str(args.backfill),
        "--rate",
        "0",
        "--backfill-hours",
        str(7 * 24),
    )
    start("generator", "generate", "--rate", str(args.rate), "--backfill-hours", "0.05")

    base = f"http://127.0.0.1:{settings.api_port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=1):
                break
        except OSError:
            time.sleep(0.5)
    tenant = DEFAULT_TENANTS.split(",")[0]
    print(f"\nweb page : {base}/tenants/{tenant}")
    print(f"API      : {base}/v1/tenants/{tenant}/cdrs")
    print(f"token    : {token}")
    print(f"metrics  : {base}/metrics and http://127.0.0.1:{settings.worker_port}/metrics")
    print(f"logs     : {logs}/   (Ctrl-C stops; `cdrstream stack down` stops Kafka+Redis)\n")
    sys.stdout.flush()

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(child.pid, signal.SIGKILL)
    return 0
