"""`cdrstream stack up|down|status`: the local Kafka (KRaft: one node, or three with
`--brokers 3`) + Redis + Prometheus."""

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
    parser.add_argument(
        "--brokers",
        type=int,
        choices=[1, 3],
        default=None,
        help="`up`: KRaft nodes (default 1); three listen on CDRSTREAM_KAFKA_PORT, +10, +20, "
        "controllers on CDRSTREAM_KAFKA_CONTROLLER_PORT, +10, +20, topics with 3 replicas and "
        "min.insync.replicas=2. down/status find the nodes a stack was started with",
    )


def run(args: argparse.Namespace) -> int:
    from cdrstream.settings import load_settings
    from cdrstream.stack.local import LocalStack
    from cdrstream.stack.processes import StackError

    settings = load_settings()
    if args.brokers is not None and args.action != "up":
        print("stack: --brokers goes with `up`", file=sys.stderr)
        return 2
    stack = LocalStack.from_settings(settings, brokers=args.brokers)
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
