"""`cdrstream stack up|down|status`: the local single-node Kafka (KRaft) + Redis + Prometheus."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        choices=["up", "down", "status", "fetch"],
        help="fetch: only download the Kafka jars (done by `up` when missing)",
    )


def run(args: argparse.Namespace) -> int:
    from cdrstream.settings import load_settings
    from cdrstream.stack.local import LocalStack
    from cdrstream.stack.processes import StackError

    settings = load_settings()
    stack = LocalStack.from_settings(settings)
    if args.action == "fetch":
        from cdrstream.stack.kafka import fetch_kafka_jars

        print(fetch_kafka_jars(Path(settings.cache_dir), settings.kafka_version))
        return 0
    try:
        if args.action == "up":
            stack.up(settings)
        elif args.action == "down":
            stack.down()
    except StackError as exc:
        print(f"stack {args.action} failed: {exc}", file=sys.stderr)
        return 1
    status = stack.status()
    addresses = stack.addresses()
    for name, state in status.items():
        print(f"{name:10} {state:8} {addresses[name]}")
    if args.action == "down":
        return 0 if all(s == "stopped" for s in status.values()) else 1
    return 0 if all(s == "ready" for s in status.values()) else 1
