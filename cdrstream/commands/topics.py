"""`cdrstream topics create|check`: the call-ended and dead-letter topics on a real cluster."""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import replace


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="create the missing topics")
    create.add_argument(
        "--partitions", type=int, help="partitions of each topic [CDRSTREAM_TOPIC_PARTITIONS]"
    )
    create.add_argument(
        "--replication-factor", type=int, required=True, help="replicas per partition"
    )
    sub.add_parser("check", help="exit 1 and name the topics that are missing")


def run(args: argparse.Namespace) -> int:
    from cdrstream.kafka_connection import refusal
    from cdrstream.kafka_topics import ensure_owned_topics, missing_topics
    from cdrstream.settings import load_settings

    settings = load_settings()
    refused = refusal(settings)
    if refused:
        print(f"topics: {refused}", file=sys.stderr)
        return 2
    if args.action == "create":
        if args.replication_factor < 1 or (args.partitions is not None and args.partitions < 1):
            print(
                "topics: --partitions and --replication-factor must be at least 1", file=sys.stderr
            )
            return 2
        if args.partitions is not None:
            settings = replace(settings, topic_partitions=args.partitions)
        asyncio.run(ensure_owned_topics(settings, replication_factor=args.replication_factor))
    missing = asyncio.run(missing_topics(settings))
    for name in missing:
        print(f"missing: {name}", file=sys.stderr)
    return 1 if missing else 0
