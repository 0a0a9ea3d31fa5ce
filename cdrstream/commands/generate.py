"""`cdrstream generate`: realistic call-ended events onto the topic, at a steady rate.

``--as freeswitch`` posts the same calls as FreeSWITCH's ``mod_json_cdr`` would (every leg,
`cdrstream.simulation.freeswitch_cdrs`) to the receiver of ``cdrstream ingest freeswitch``
instead, so the whole path PBX -> receiver -> Kafka -> worker -> API is exercised.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import AsyncIterator
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
    parser.add_argument(
        "--as",
        dest="source",
        choices=("events", "freeswitch"),
        default="events",
        help="events: onto the Kafka topic; freeswitch: mod_json_cdr posts of every leg to "
        "the receiver (--url) [events]",
    )
    parser.add_argument(
        "--url",
        default=None,
        help="with --as freeswitch: the receiver's URL "
        "[http://127.0.0.1:$CDRSTREAM_INGEST_PORT/freeswitch]",
    )


def run(args: argparse.Namespace) -> int:
    import asyncio

    from cdrstream.settings import load_settings

    settings = load_settings()
    if args.source == "freeswitch":
        return asyncio.run(_post_freeswitch(args, settings))
    from cdrstream.kafka_connection import refusal

    refused = refusal(settings)
    if refused:
        import sys

        print(f"generate: {refused}", file=sys.stderr)
        return 2
    return asyncio.run(_generate(args, settings))


async def _batches(
    args: argparse.Namespace,
) -> AsyncIterator[tuple[random.Random, list[tuple[str, bytes]]]]:
    """Bursts of (tenant id, event JSON) pairs at the requested rate, with the generator's
    random source (the FreeSWITCH form draws from it too: one seed, one run)."""
    import asyncio
    import time

    from cdrstream.simulation.calls import generate_events

    tenants = [t.strip() for t in args.tenants.split(",") if t.strip()]
    rng = random.Random(args.seed)
    interval = 1.0 / args.rate if args.rate > 0 else 0.0
    sent = 0
    began = time.monotonic()
    while (args.count == 0 or sent < args.count) and (
        args.seconds == 0 or time.monotonic() - began < args.seconds
    ):
        burst = max(1, int(args.rate / 10)) if interval else 1000
        if args.count:
            burst = min(burst, args.count - sent)
        now_ms = time.time_ns() // 1_000_000
        items = list(
            generate_events(
                rng,
                tenants=tenants,
                now_ms=now_ms,
                count=burst,
                malformed_ratio=args.malformed_ratio,
                spread_ms=int(args.backfill_hours * 3_600_000),
            )
        )
        yield rng, items
        sent += len(items)
        if interval:
            ahead = began + sent * interval - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)


async def _generate(args: argparse.Namespace, settings: Settings) -> int:
    import sys

    from aiokafka import AIOKafkaProducer

    from cdrstream.kafka_connection import producer_options

    producer = AIOKafkaProducer(**producer_options(settings), linger_ms=5)
    await producer.start()
    sent = 0
    try:
        async for _rng, items in _batches(args):
            for key, value in items:
                await producer.send(settings.topic, value=value, key=key.encode())
                sent += 1
        await producer.flush()
    finally:
        await producer.stop()
    print(f"generated {sent} events onto {settings.topic}", file=sys.stderr)
    return 0


async def _post_freeswitch(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio
    import sys

    import aiohttp

    from cdrstream.simulation.freeswitch_cdrs import broken_post, freeswitch_legs, freeswitch_post

    url = args.url or f"http://127.0.0.1:{settings.ingest_port}/freeswitch"
    auth = None
    if settings.ingest_credentials:
        user, _, password = settings.ingest_credentials.partition(":")
        auth = aiohttp.BasicAuth(user, password)
    answers: dict[int, int] = {}
    calls = 0
    async with aiohttp.ClientSession(auth=auth, timeout=aiohttp.ClientTimeout(total=30)) as http:

        async def post(body: bytes, content_type: str, leg_uuid: str) -> None:
            for attempt in range(5):  # FreeSWITCH's retries: a 503 is tried again
                try:
                    async with http.post(
                        url,
                        params={"uuid": leg_uuid} if leg_uuid else None,
                        data=body,
                        headers={"Content-Type": content_type},
                    ) as answer:
                        await answer.read()
                        status = answer.status
                except aiohttp.ClientError:
                    status = 0
                if status not in (0, 503):
                    break
                await asyncio.sleep(min(5.0, 0.5 * 2**attempt))
            answers[status] = answers.get(status, 0) + 1

        async for rng, items in _batches(args):
            for _key, value in items:
                calls += 1
                legs = freeswitch_legs(value, rng, tenant_variable=settings.ingest_tenant_variable)
                if not legs:
                    bad = broken_post(rng)
                    await post(bad.body, bad.content_type, bad.uuid)
                    continue
                encode = rng.choices(("false", "true", "base64"), weights=(8, 1, 1))[0]
                encode_values = encode == "false" and rng.random() < 0.5
                for document in legs:
                    leg = freeswitch_post(document, encode=encode, encode_values=encode_values)
                    await post(leg.body, leg.content_type, leg.uuid)
    summary = ", ".join(f"{status or 'no answer'}: {n}" for status, n in sorted(answers.items()))
    print(f"posted {calls} calls as FreeSWITCH CDRs to {url} ({summary})", file=sys.stderr)
    return 0 if 0 not in answers else 1
