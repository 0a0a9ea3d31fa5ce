"""`cdrstream demo`: the whole product on one machine.

Starts the local Kafka + Redis + Prometheus (scraping the worker and the API, with the
rules of ``config/prometheus/rules.yml``), a worker, the query endpoint and a generator of
realistic calls (a backfill of the past days, then a steady trickle), issues a token for a
demo partner, prints the web page's URL, the token and Prometheus's URL, and runs until
Ctrl-C. The engines keep running afterwards (`cdrstream stack down` stops them).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from cdrstream.commands.generate import DEFAULT_TENANTS


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", type=float, default=5.0, help="live calls per second [5]")
    parser.add_argument(
        "--backfill", type=int, default=3000, help="calls spread over the past 7 days [3000]"
    )
    parser.add_argument(
        "--source",
        choices=("generator", "freeswitch"),
        default="generator",
        help="live calls straight onto the topic, or as FreeSWITCH mod_json_cdr posts through"
        " `cdrstream ingest freeswitch` [generator]",
    )


def receiver_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The demo's `cdrstream ingest freeswitch`: without credentials it listens on loopback
    only (where the demo's generator posts), so it starts without ``--allow-anonymous``."""
    env = dict(environ)
    if not env.get("CDRSTREAM_INGEST_CREDENTIALS"):
        env["CDRSTREAM_INGEST_BIND"] = "127.0.0.1"
    return env


def run(args: argparse.Namespace) -> int:
    import os
    import signal
    import sys
    import time
    from pathlib import Path

    from cdrstream.access import token_admin
    from cdrstream.settings import load_settings
    from cdrstream.stack.local import LocalStack
    from cdrstream.stack.processes import StackError
    from cdrstream.stack.roles import RoleProcess

    settings = load_settings()
    stack = LocalStack.from_settings(settings)
    print("starting Kafka (KRaft), Redis and Prometheus ...", file=sys.stderr)
    try:
        stack.up(settings)
    except StackError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1

    logs = Path(settings.stack_dir) / "demo"
    tenants = DEFAULT_TENANTS.split(",")
    token, _ = token_admin.issue(
        settings, partner="demo-partner", tenants=tenants, airtime_reseller=True
    )
    roles = {
        "worker": ["worker"],
        "api": ["api"],
        "backfill": [
            "generate",
            "--count",
            str(args.backfill),
            "--rate",
            "0",
            "--backfill-hours",
            str(7 * 24),
        ],
        "generator": ["generate", "--rate", str(args.rate), "--backfill-hours", "0.05"],
    }
    if args.source == "freeswitch":  # PBX -> receiver -> Kafka: the whole path
        roles["ingest"] = ["ingest", "freeswitch"]
        roles["generator"] += ["--as", "freeswitch"]
    children = [
        RoleProcess(
            argv,
            env=receiver_environment(os.environ) if name == "ingest" else os.environ,
            log_file=logs / f"{name}.log",
        ).start()
        for name, argv in roles.items()
    ]
    base = f"http://127.0.0.1:{settings.api_port}"
    try:
        children[1].wait_http(f"{base}/healthz")
    except (RuntimeError, TimeoutError) as exc:
        print(f"demo: the query endpoint did not start: {exc}", file=sys.stderr)
        for child in children:
            child.stop()
        return 1
    print(f"\nweb page : {base}/tenants/{tenants[0]}")
    print(f"API      : {base}/v1/tenants/{tenants[0]}/cdrs")
    print(f"token    : {token}")
    print(f"metrics  : {base}/metrics and http://127.0.0.1:{settings.worker_port}/metrics")
    print(f"prometheus: {stack.prometheus.url}   (alerts: {stack.prometheus.url}/alerts)")
    print(
        f"logs     : {logs}/   (Ctrl-C stops; `cdrstream stack down` stops Kafka, Redis"
        " and Prometheus)\n"
    )
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
        child.stop()
    return 0
