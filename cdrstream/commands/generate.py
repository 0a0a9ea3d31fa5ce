"""`cdrstream generate`: realistic call-ended events onto the topic, at a steady rate."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cdrstream.settings import Settings

DEFAULT_TENANTS = "amsterdam-dental,gent-bakery,berlin-dental,hamburg-haven,london-lettings"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", type=float, default=20.0, help="events per second [20]")
    parser.add_argument("--count", type=int, default=0, help="stop after N events (0: no limit)")
    parser.add_argument("--seconds", type=float, default=0.0, help="stop after S seconds (0: none)")
    parser.add_argument(
        "--tenants", default=DEFAULT_TENANTS, help="comma-separated tenant ids [%(default)s]"
    )
    parser.add_argument(
        "--malformed-ratio", type=float, default=0.01, help="share of malformed events [0.01]"
    )
    parser.add_argument(
        "--backfill-hours",
        type=float,
        default=1.0,
        help="calls start up to this many hours in the past [1]",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed (repeatable runs)")


def run(args: argparse.Namespace) -> int:
    import asyncio

    from cdrstream.settings import load_settings

    return asyncio.run(_generate(args, load_settings()))


async def _generate(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio
    import random
    import sys
    import time

    from aiokafka import AIOKafkaProducer

    from cdrstream.simulation.calls import generate_events

    tenants = [t.strip() for t in args.tenants.split(",") if t.strip()]
    rng = random.Random(args.seed)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5)
    await producer.start()
    sent = 0
    began = time.monotonic()
    interval = 1.0 / args.rate if args.rate > 0 else 0.0
    try:
        while (args.count == 0 or sent < args.count) and (
            args.seconds == 0 or time.monotonic() - began < args.seconds
        ):
            burst = max(1, int(args.rate / 10)) if interval else 1000
            if args.count:
                burst = min(burst, args.count - sent)
            now_ms = time.time_ns() // 1_000_000
            for key, value in generate_events(
                rng,
                tenants=tenants,
                now_ms=now_ms,
                count=burst,
                malformed_ratio=args.malformed_ratio,
                spread_ms=int(args.backfill_hours * 3_600_000),
            ):
                await producer.send(settings.topic, value=value, key=key.encode())
                sent += 1
            if interval:
                ahead = began + sent * interval - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
        await producer.flush()
    finally:
        await producer.stop()
    print(f"generated {sent} events onto {settings.topic}", file=sys.stderr)
    return 0
