"""The phases of `cdrstream bench`, each with its baseline from the same run.

- throughput: a pre-filled topic read by a bare aiokafka consume-and-decode loop (the
  baseline), by a Faust agent that only counts (the framework's own cost), by the worker's
  own pipeline on a bare aiokafka loop (``own_work_eps``: the same decode, rules, writer
  and overlap without Faust), then by a `cdrstream worker` process from an empty consumer
  group and an empty Redis (``ratio_own_work`` = worker / own work);
- live: the same rate again, each event timed from its send to its ``record`` event reaching
  an SSE client of the live tail (``live_ms``; one client per tenant);
- latency: events produced at a steady rate, each timed from its send to its record being
  readable in the records hash the query endpoint reads;
- query: one tenant with N records in its window: pages of 100 with each filter through
  the reader and over HTTP, the CSV export over HTTP, and ``redis-benchmark`` on the same
  Redis as the ceiling;
- layouts: the query tenant's records written in arrival order (sealed as a worker's
  sweeps would) on a flushed Redis: ``used_memory`` per record (indexes included), Redis
  time per new record from INFO commandstats (the write script; sealing; their sum), and
  pages of 100 per filter through the reader in-process; the HTTP query and CSV phases
  then run on them;
- big day: a call centre's busiest day, ``big_day_records`` (1,000,000) records in ONE
  tenant-day (yesterday, sealed), on a flushed Redis: pages of 100 per filter over HTTP
  (``query_ms.big_day.by_filter.<filter>``), the CSV export of the day, bytes per record.

It runs on the local stack's Kafka and on a Redis of its own (so the memory figure and the
window are the benchmark's alone).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson

from cdrstream.bench.stats import summary_ms
from cdrstream.core.record import CallRecord, record_id
from cdrstream.kafka_connection import client_options, producer_options
from cdrstream.observability import scrape
from cdrstream.settings import Settings
from cdrstream.simulation.records import synthetic_records
from cdrstream.stack.processes import free_port
from cdrstream.stack.redis_server import RedisNode
from cdrstream.stack.roles import RoleProcess, settings_env


@dataclass(frozen=True, slots=True)
class BenchOptions:
    events: int = 200_000
    tenants: int = 20
    rate: int = 2_000
    seconds: int = 30
    query_records: int = 1_000_000
    query_samples: int = 200
    big_day_records: int = 1_000_000


def _scrape(url: str, metric: str) -> float:
    """Sum of a metric's series in a role's /metrics page."""
    return scrape.total(scrape.fetch(url, timeout_s=2), metric)


async def _produce(settings: Settings, items: list[tuple[str, bytes]]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        **producer_options(settings),
        linger_ms=20,
        max_batch_size=1 << 20,
    )
    await producer.start()
    try:
        for key, value in items:
            await producer.send(settings.topic, value=value, key=key.encode())
        await producer.flush()
    finally:
        await producer.stop()


def _topic_from_start(settings: Settings) -> Any:
    """A consumer of the whole pre-filled topic, outside any group (the baselines' reader)."""
    from aiokafka import AIOKafkaConsumer

    return AIOKafkaConsumer(
        settings.topic,
        **client_options(settings),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=1 << 20,
    )


async def _baseline_eps(settings: Settings, total: int) -> float:
    """A bare aiokafka consume-and-decode loop over the pre-filled topic."""

    consumer = _topic_from_start(settings)
    await consumer.start()
    seen = 0
    first = 0.0
    try:
        while seen < total:
            batches = await consumer.getmany(timeout_ms=200, max_records=10_000)
            for messages in batches.values():
                if not first:
                    first = time.perf_counter()
                for message in messages:
                    with contextlib.suppress(orjson.JSONDecodeError):  # decoding is the work
                        orjson.loads(message.value)
                seen += len(messages)
        return total / (time.perf_counter() - first)
    finally:
        await consumer.stop()


async def _own_work_eps(settings: Settings, total: int) -> float:
    """The worker's own pipeline (the same decode, rules, Redis writer, dead letters and
    overlap) on a bare aiokafka consumer loop: what the worker would do without Faust."""
    from aiokafka import AIOKafkaProducer

    from cdrstream.core.outcome import Policy
    from cdrstream.store.connection import connect
    from cdrstream.store.writer import RecordWriter
    from cdrstream.worker.batch import BatchHandler
    from cdrstream.worker.dead_letters import DeadLetter
    from cdrstream.worker.fetch_batches import incoming
    from cdrstream.worker.pipeline import OverlappedBatches
    from cdrstream.worker.progress import Progress

    consumer = _topic_from_start(settings)
    producer = AIOKafkaProducer(**producer_options(settings))
    redis = connect(settings)
    await consumer.start()
    await producer.start()

    async def send(letters: Sequence[DeadLetter]) -> None:
        sent = [
            await producer.send(settings.dlq_topic, x.value, key=x.key, headers=list(x.headers))
            for x in letters
        ]
        await asyncio.gather(*sent)

    handler = BatchHandler(
        records=RecordWriter(redis, retention_ms=settings.retention_ms),
        dead_letters=send,
        policy=Policy(retention_ms=settings.retention_ms, default_region=settings.default_region),
        progress=Progress(stall_after_s=settings.stall_after_s),
    )
    written = [0]
    pipeline: OverlappedBatches[int] = OverlappedBatches(
        handler, lambda n: written.__setitem__(0, written[0] + n)
    )
    seen = 0
    first = 0.0
    try:
        while seen < total:
            fetched = await consumer.getmany(timeout_ms=200, max_records=settings.batch_max)
            messages = [incoming(r) for records in fetched.values() for r in records]
            if messages:
                first = first or time.perf_counter()
                seen += len(messages)
                await pipeline.feed(messages, len(messages))
        await pipeline.flush()
        return written[0] / (time.perf_counter() - first)
    finally:
        await consumer.stop()
        await producer.stop()
        await redis.aclose()


def _faust_floor_eps(settings: Settings, total: int) -> float:
    """Events/s of a Faust agent that only counts (see ``faust_floor.py``)."""
    env = {
        **settings_env(settings),
        "BENCH_TOPIC": settings.topic,
        "BENCH_GROUP": f"{settings.consumer_group}-floor",
        "BENCH_BOOTSTRAP": settings.kafka_bootstrap,
        "BENCH_EVENTS": str(total),
    }
    done = subprocess.run(
        [sys.executable, "-m", "cdrstream.bench.faust_floor"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    found = re.search(r"eps=([\d.]+)", done.stdout)
    if found is None:
        raise RuntimeError(f"the bare Faust agent gave no figure:\n{done.stderr[-2000:]}")
    return float(found.group(1))


def _worker_eps(worker_metrics: str, total: int, timeout_s: float) -> float:
    """Events/s of the worker from its first counted event to the last (start-up excluded)."""
    deadline = time.monotonic() + timeout_s
    first_count, first_at = 0.0, 0.0
    while time.monotonic() < deadline:
        try:
            count = _scrape(worker_metrics, "cdrstream_events_total")
        except OSError:
            count = 0.0
        now = time.perf_counter()
        if count and not first_at:
            first_count, first_at = count, now
        if count >= total:
            return (count - first_count) / (now - first_at) if now > first_at else float("nan")
        time.sleep(0.05)
    raise TimeoutError(f"worker did not finish {total} events in {timeout_s}s")


async def _live(settings: Settings, options: BenchOptions, work_dir: Path) -> dict[str, float]:
    """The live tail: events produced at the latency phase's rate, each timed from its send
    to its ``record`` event reaching an SSE client (one client per tenant, on an API of its
    own reading the running worker's Redis)."""
    import aiohttp
    from aiokafka import AIOKafkaProducer

    from cdrstream.access.access_store import issue_token
    from cdrstream.simulation.calls import valid_event

    tenants = [f"bench-live-{n}" for n in range(options.tenants)]
    token, _ = issue_token(
        settings.access_file, partner="bench-live", tenants=tenants, airtime_reseller=True
    )
    api_settings = replace(settings, api_port=free_port())
    api = RoleProcess(
        ["api", "--live-streams-per-partner", str(len(tenants))],
        env=settings_env(api_settings),
        log_file=work_dir / "live.log",
    )
    base = f"http://127.0.0.1:{api_settings.api_port}"
    api.start().wait_http(f"{base}/healthz")
    pending: dict[str, float] = {}
    samples: list[float] = []
    producer = AIOKafkaProducer(**client_options(settings), linger_ms=0, acks=1)
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
    readers: list[asyncio.Task[None]] = []
    produced_all = False
    drained = asyncio.Event()
    try:
        ready = [asyncio.Event() for _ in tenants]

        async def client(tenant: str, ready_event: asyncio.Event) -> None:
            headers = {"Authorization": f"Bearer {token}"}
            async with session.get(f"{base}/v1/tenants/{tenant}/cdrs/live", headers=headers) as r:
                r.raise_for_status()
                async for line in r.content:
                    if line.startswith(b"data: {"):
                        data = orjson.loads(line[6:])
                        sent = pending.pop(data.get("id", ""), None)
                        if sent is not None:
                            samples.append(time.perf_counter() - sent)
                            if produced_all and not pending:
                                drained.set()
                    elif line.startswith(b"event: ready"):
                        ready_event.set()

        readers = [asyncio.create_task(client(t, e)) for t, e in zip(tenants, ready, strict=True)]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in ready)), timeout=60)
        await producer.start()
        rng = random.Random(9)
        total = options.rate * options.seconds
        began = time.perf_counter()
        for n in range(total):
            tenant = tenants[n % len(tenants)]
            now = time.time_ns() // 1_000_000
            event = valid_event(rng, tenant, now, call_id=f"live-{uuid.uuid4().hex}")
            pending[record_id(tenant, event["call_id"])] = time.perf_counter()
            await producer.send(settings.topic, value=orjson.dumps(event), key=tenant.encode())
            ahead = began + (n + 1) / options.rate - time.perf_counter()
            if ahead > 0:
                await asyncio.sleep(ahead)
        await producer.flush()
        produced_all = True
        if not pending:
            drained.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(drained.wait(), timeout=60)
    finally:
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        await session.close()
        await producer.stop()
        api.stop()
    result = summary_ms(samples)
    result["missed"] = len(pending)
    return result


async def _latency(settings: Settings, redis_url: str, options: BenchOptions) -> dict[str, float]:
    """Produce at a steady rate; time each event from its send to its record being readable."""
    from aiokafka import AIOKafkaProducer

    from cdrstream.simulation.calls import valid_event
    from cdrstream.store.connection import connect
    from cdrstream.store.layout import hot_key

    redis = connect(replace(settings, redis_url=redis_url))
    producer = AIOKafkaProducer(**client_options(settings), linger_ms=0, acks=1)
    await producer.start()
    rng = random.Random(7)
    pending: dict[tuple[str, str], float] = {}
    samples: list[float] = []
    done = asyncio.Event()

    async def poll() -> None:
        """Check pending records in one pipelined round trip (HGET of the hot tier, where
        a new record is readable the moment it is written), every 2 ms."""
        while not (done.is_set() and not pending):
            keys = list(pending)[:2_000]
            if keys:
                pipe = redis.pipeline(transaction=False)
                for tenant, rid in keys:
                    pipe.hget(hot_key(tenant), rid)
                found = await pipe.execute()
                now = time.perf_counter()
                for key, payload in zip(keys, found, strict=True):
                    if payload is not None:
                        samples.append(now - pending.pop(key))
            await asyncio.sleep(0.002)

    poller = asyncio.create_task(poll())
    total = options.rate * options.seconds
    began = time.perf_counter()
    try:
        for n in range(total):
            tenant = f"bench-lat-{n % options.tenants}"
            event = valid_event(rng, tenant, time.time_ns() // 1_000_000)
            event["call_id"] = f"lat-{uuid.uuid4().hex}"
            value = orjson.dumps(event)
            sent_at = time.perf_counter()
            await producer.send(settings.topic, value=value, key=tenant.encode())
            pending[(tenant, record_id(tenant, event["call_id"]))] = sent_at
            ahead = began + (n + 1) / options.rate - time.perf_counter()
            if ahead > 0:
                await asyncio.sleep(ahead)
        await producer.flush()
        done.set()
        await asyncio.wait_for(poller, timeout=60)
    finally:
        poller.cancel()
        await producer.stop()
        await redis.aclose()
    return summary_ms(samples)


#: Top-level commands whose INFO commandstats time a layout's writes and sealing spend
#: (scripts, and what the sealer sends itself). A few commands that Lua scripts also call
#: (SET, DEL, HMGET) are then counted twice: the figures slightly overstate Redis time.
_SCRIPT_AND_CLIENT = (
    "evalsha",
    "sadd",
    "get",
    "set",
    "del",
    "zrange",
    "zcard",
    "hgetall",
    "hmget",
)
#: Records per write call in the fills (the writer's own chunk size).
_FILL_BATCH = 500
#: Write calls of one record each, timed after the fills (a quiet tenant's batches).
_SINGLES = 2_000


async def _redis_usec(redis: Any) -> float:
    stats = await redis.info("commandstats")
    return float(
        sum(stats.get(f"cmdstat_{name}", {}).get("usec", 0) for name in _SCRIPT_AND_CLIENT)
    )


async def _redis_cpu_s(redis: Any) -> float:
    cpu = await redis.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


async def _single_writes(redis: Any, writer: Any, records: list[CallRecord]) -> float:
    """Redis time per record of write calls that carry one new record each (a tenant with
    a few calls a second gets batches of one: the per-call costs are not shared); written
    to a tenant of their own, so the query tenant's tiers are left as they are."""
    now_ms = time.time_ns() // 1_000_000
    fresh = [
        replace(r, tenant_id="bench-single", id=r.id[:-4] + f"{n:04d}", call_id=f"single-{n}")
        for n, r in enumerate(records[-_SINGLES:])
    ]
    mark = await _redis_usec(redis)
    for record in fresh:
        await writer.write_batch([record], now_ms)
    return round((await _redis_usec(redis) - mark) / len(fresh), 2)


async def _query_timings(
    reader: Any, tenant: str, filters: dict[str, Any], samples: int, now_ms: int
) -> dict[str, dict[str, float]]:
    """Pages of 100 per filter through ``reader`` in-process, following cursors."""
    out = {}
    for name, query in filters.items():
        timings, cursor = [], None
        for _ in range(samples):
            begin = time.perf_counter()
            page = await reader.page(tenant, query, limit=100, cursor=cursor, now_ms=now_ms)
            timings.append(time.perf_counter() - begin)
            cursor = page.next_cursor
        out[name] = summary_ms(timings)
    return out


def _reader_queries(filters: dict[str, dict[str, str]]) -> dict[str, Any]:
    """The HTTP filters as reader queries."""
    from datetime import datetime

    from cdrstream.store.reader import RecordQuery

    def ms(text: str) -> int:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)

    out = {}
    for name, params in filters.items():
        out[name] = RecordQuery(
            from_ms=ms(params["from"]) if "from" in params else None,
            to_ms=ms(params["to"]) if "to" in params else None,
            direction=params.get("direction"),  # type: ignore[arg-type]
            extension=params.get("extension"),
            number_prefix=params.get("number"),
        )
    return out


async def _measure_layouts(
    redis_url: str,
    settings: Settings,
    records: list[CallRecord],
    filters: dict[str, dict[str, str]],
    samples: int,
) -> dict[str, Any]:
    """The records written in arrival order on a flushed Redis: bytes per record
    (``used_memory``), Redis time per new record (INFO commandstats), in-process pages per
    filter; they stay for the HTTP phase."""
    from cdrstream.store.connection import connect
    from cdrstream.store.layout import hot_key
    from cdrstream.store.live import live_key
    from cdrstream.store.reader import RecordReader
    from cdrstream.store.sealer import seal_tenant
    from cdrstream.store.writer import RecordWriter

    tenant = records[0].tenant_id
    arrival = sorted(records, key=lambda r: r.started_at_ms)
    n = len(arrival)
    queries = _reader_queries(filters)
    now_ms = time.time_ns() // 1_000_000
    secret = b"bench"
    redis = connect(replace(settings, redis_url=redis_url))
    out: dict[str, Any] = {"records": n}
    try:
        # Written in arrival order; the sealer's clock is the arrival time of the records
        # written so far, so it seals once per (simulated) hour, as a worker's sweeps do.
        await redis.flushall()
        await redis.config_resetstat()
        before, cpu = (await redis.info("memory"))["used_memory"], await _redis_cpu_s(redis)
        writer = RecordWriter(redis, retention_ms=settings.retention_ms)
        write_us = seal_us = seal_s = 0.0
        seals = 0
        began = time.perf_counter()
        for start in range(0, n, _FILL_BATCH):
            batch = arrival[start : start + _FILL_BATCH]
            mark = await _redis_usec(redis)
            await writer.write_batch(batch, now_ms)
            write_us += await _redis_usec(redis) - mark
            clock = max(r.ended_at_ms for r in batch)
            mark, t0 = await _redis_usec(redis), time.perf_counter()
            stats = await seal_tenant(
                redis, tenant, now_ms=clock, retention_ms=settings.retention_ms, budget=n
            )
            seals += stats.sealed > 0
            seal_us += await _redis_usec(redis) - mark
            seal_s += time.perf_counter() - t0
        memory = (await redis.info("memory"))["used_memory"]
        stream = int(await redis.memory_usage(live_key(tenant)) or 0)
        out["tiered"] = {
            "bytes_per_record": round((memory - before - stream) / n, 1),
            "bytes_per_record_with_filled_live_stream": round((memory - before) / n, 1),
            "write_us_per_record": round(write_us / n, 2),
            "seal_us_per_record": round(seal_us / n, 2),
            "us_per_record": round((write_us + seal_us) / n, 2),
            "redis_cpu_us_per_record": round((await _redis_cpu_s(redis) - cpu) * 1e6 / n, 2),
            "seal_python_us_per_record": round(seal_s * 1e6 / n, 1),
            "seals": seals,
            "fill_s": round(time.perf_counter() - began, 1),
            "hot_records": int(await redis.hlen(hot_key(tenant))),
        }
        out["tiered"]["single_us_per_record"] = await _single_writes(redis, writer, arrival)
        reader = RecordReader(redis, retention_ms=settings.retention_ms, cursor_secret=secret)
        out["tiered"]["query_ms"] = await _query_timings(reader, tenant, queries, samples, now_ms)
        began = time.perf_counter()
        rows = 0
        async for chunk in reader.stream(tenant, queries["none"], now_ms=now_ms):
            rows += len(chunk)
        out["tiered"]["stream_records_per_s"] = round(rows / (time.perf_counter() - began))
        return out
    finally:
        await redis.aclose()


def _query_filters(records: list[CallRecord], now_ms: int) -> dict[str, dict[str, str]]:
    sample = records[len(records) // 2]
    return {
        "none": {},
        "direction": {"direction": "inbound"},
        "extension": {"extension": sample.extension},
        "number_exact": {
            "number": sample.source if sample.direction == "inbound" else sample.destination
        },
        "number_prefix": {"number": "+3120"},
        "from_to_1day": {
            "from": _rfc3339(now_ms - 3 * 86_400_000),
            "to": _rfc3339(now_ms - 2 * 86_400_000),
        },
        "combined": {"direction": "outbound", "extension": sample.extension},
    }


DAY_MS = 86_400_000
#: Records sealed per install while the big day is filled (each install rewrites the day).
_BIG_DAY_SEAL_EVERY = 50_000


async def _fill_big_day(redis_url: str, settings: Settings, records: list[CallRecord]) -> Any:
    """The big day's records written in arrival order on a flushed Redis, sealed every
    ``_BIG_DAY_SEAL_EVERY`` records (a worker would seal hourly, and whenever the hot tier
    outgrows ``sealer.HOT_MAX``: the same format, more rewrites); bytes per record."""
    from cdrstream.store.connection import connect
    from cdrstream.store.live import live_key
    from cdrstream.store.sealer import seal_tenant
    from cdrstream.store.writer import RecordWriter

    tenant = records[0].tenant_id
    arrival = sorted(records, key=lambda r: r.started_at_ms)
    redis = connect(replace(settings, redis_url=redis_url))
    try:
        await redis.flushall()
        before = (await redis.info("memory"))["used_memory"]
        writer = RecordWriter(redis, retention_ms=settings.retention_ms)
        now_ms = time.time_ns() // 1_000_000
        began = time.perf_counter()

        async def seal() -> None:
            await seal_tenant(
                redis, tenant, now_ms=now_ms, retention_ms=settings.retention_ms,
                budget=len(arrival), everything=True, per_install=_BIG_DAY_SEAL_EVERY,
            )  # fmt: skip

        for start in range(0, len(arrival), _FILL_BATCH):
            await writer.write_batch(arrival[start : start + _FILL_BATCH], now_ms)
            if (start + _FILL_BATCH) % _BIG_DAY_SEAL_EVERY == 0:
                await seal()
        await seal()
        memory = (await redis.info("memory"))["used_memory"]
        stream = int(await redis.memory_usage(live_key(tenant)) or 0)
        return {
            "records": len(arrival),
            "bytes_per_record": round((memory - before - stream) / len(arrival), 1),
            "fill_s": round(time.perf_counter() - began, 1),
        }
    finally:
        await redis.aclose()


def _big_day_filters(records: list[CallRecord], day_start: int) -> dict[str, dict[str, str]]:
    """The query phase's filters, with an hour of the day instead of a whole day."""
    filters = _query_filters(records, day_start)
    del filters["from_to_1day"]
    filters["one_hour"] = {
        "from": _rfc3339(day_start + 14 * 3_600_000),
        "to": _rfc3339(day_start + 15 * 3_600_000),
    }
    return filters


def _rfc3339(ms: int) -> str:
    from datetime import UTC, datetime

    return (
        datetime.fromtimestamp(ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


async def _http_queries(
    base: str, token: str, tenant: str, filters: dict[str, dict[str, str]], samples: int
) -> tuple[dict[str, dict[str, float]], list[float], float]:
    import aiohttp

    headers = {"Authorization": f"Bearer {token}"}
    per_filter: dict[str, dict[str, float]] = {}
    every: list[float] = []
    async with aiohttp.ClientSession(headers=headers) as session:
        url = f"{base}/v1/tenants/{tenant}/cdrs"
        for name, params in filters.items():
            timings: list[float] = []
            cursor: str | None = None
            for _ in range(samples):
                query = {**params, "limit": "100", **({"cursor": cursor} if cursor else {})}
                begin = time.perf_counter()
                async with session.get(url, params=query) as answer:
                    body = await answer.read()
                    if answer.status != 200:
                        raise RuntimeError(f"{name}: {answer.status} {body[:300]!r}")
                timings.append(time.perf_counter() - begin)
                cursor = orjson.loads(body)["next_cursor"]  # walk deeper pages too
            per_filter[name] = summary_ms(timings)
            every.extend(timings)
        rows = 0
        begin = time.perf_counter()
        async with session.get(url, params={"format": "csv"}) as answer:
            async for chunk in answer.content.iter_chunked(1 << 16):
                rows += chunk.count(b"\n")
        csv_rows_per_s = (rows - 1) / (time.perf_counter() - begin)
    return per_filter, every, csv_rows_per_s


def _flush_redis(port: int) -> None:
    import redis

    client = redis.Redis(port=port)
    try:
        client.flushall()
    finally:
        client.close()


def _redis_benchmark(port: int) -> dict[str, float]:
    binary = shutil.which("redis-benchmark")
    if binary is None:
        return {}
    out = subprocess.run(
        [binary, "-p", str(port), "-q", "-n", "100000", "-t", "ping,hset,zadd"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    ).stdout
    found = re.findall(
        r"([A-Z_]+(?: [A-Z_]+)?): ([\d.]+) requests per second", out.replace("\r", "\n")
    )
    return {name.lower().replace(" ", "_") + "_rps": float(value) for name, value in found}


def run_bench(settings: Settings, options: BenchOptions, work_dir: Path) -> dict[str, Any]:
    from cdrstream.kafka_topics import ensure_owned_topics
    from cdrstream.rebuild.run import rebuild
    from cdrstream.simulation.calls import generate_events
    from cdrstream.stack.local import LocalStack

    stack = LocalStack.from_settings(settings)
    stack.kafka.up()
    shutil.rmtree(work_dir, ignore_errors=True)
    redis_node = RedisNode(
        base_dir=work_dir / "redis", port=free_port(), extra_args=("--appendonly", "no")
    )
    redis_node.up()
    run_id = uuid.uuid4().hex[:8]
    bench = replace(
        settings,
        kafka_bootstrap=stack.kafka.bootstrap,
        kafka_security_protocol="PLAINTEXT",  # the local stack's listener
        kafka_sasl_mechanism="",
        kafka_ca_file="",
        topic=f"bench.{run_id}.call-ended",
        dlq_topic=f"bench.{run_id}.call-ended.dlq",
        consumer_group=f"bench-{run_id}",
        redis_url=redis_node.url,
        worker_port=free_port(),
        api_port=free_port(),
        access_file=str(work_dir / "access.json"),
        cursor_secret=uuid.uuid4().hex,
    )
    result: dict[str, Any] = {}
    worker = RoleProcess(["worker"], env=settings_env(bench), log_file=work_dir / "worker.log")
    api = RoleProcess(["api"], env=settings_env(bench), log_file=work_dir / "api.log")
    try:
        asyncio.run(ensure_owned_topics(bench))
        tenants = [f"bench-{n}" for n in range(options.tenants)]
        items = list(
            generate_events(
                random.Random(1),
                tenants=tenants,
                now_ms=time.time_ns() // 1_000_000,
                count=options.events,
                malformed_ratio=0.001,
            )
        )
        asyncio.run(_produce(bench, items))
        baseline = asyncio.run(_baseline_eps(bench, len(items)))
        faust_floor = _faust_floor_eps(bench, len(items))
        own_work = asyncio.run(_own_work_eps(bench, len(items)))
        _flush_redis(redis_node.port)  # the worker starts from the same empty store
        worker.start().wait_http(f"http://127.0.0.1:{bench.worker_port}/healthz")
        metrics_url = f"http://127.0.0.1:{bench.worker_port}/metrics"
        worker_eps = _worker_eps(metrics_url, len(items), 600)
        batches = _scrape(metrics_url, "cdrstream_batch_size_count")
        result["throughput"] = {
            "events": len(items),
            "baseline_eps": round(baseline),
            "faust_only_eps": round(faust_floor),
            "own_work_eps": round(own_work),
            "worker_eps": round(worker_eps),
            "ratio": round(worker_eps / baseline, 3),
            "ratio_own_work": round(worker_eps / own_work, 3),
            "average_batch": round(len(items) / batches) if batches else None,
        }
        result["latency_ms"] = asyncio.run(_latency(bench, redis_node.url, options))
        result["latency_ms"]["rate_eps"] = options.rate
        result["live_ms"] = asyncio.run(_live(bench, options, work_dir))
        result["live_ms"]["rate_eps"] = options.rate
        worker.stop()

        _flush_redis(redis_node.port)  # the window lost: everything the topic holds, again
        rebuilt = asyncio.run(rebuild(bench))
        result["throughput"]["rebuild_eps"] = round(rebuilt.rate)
        result["throughput"]["rebuild_events"] = rebuilt.events

        now_ms = time.time_ns() // 1_000_000
        records = synthetic_records("bench-big", options.query_records, now_ms, random.Random(3))
        filters = _query_filters(records, now_ms)
        layouts = asyncio.run(
            _measure_layouts(redis_node.url, bench, records, filters, options.query_samples)
        )
        result["layouts"] = layouts
        result["redis_bytes_per_record"] = layouts["tiered"]["bytes_per_record"]
        result["redis_us_per_new_record"] = layouts["tiered"]["us_per_record"]
        token = subprocess.run(
            [
                sys.executable,
                "-m",
                "cdrstream",
                "token",
                "issue",
                "--partner",
                "bench",
                "--tenants",
                "bench-big,bench-day",
                "--airtime-reseller",
            ],
            env=settings_env(bench),
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        api.start().wait_http(f"http://127.0.0.1:{bench.api_port}/healthz")
        per_filter, every, csv_rps = asyncio.run(
            _http_queries(
                f"http://127.0.0.1:{bench.api_port}",
                token,
                "bench-big",
                filters,
                options.query_samples,
            )
        )
        overall = summary_ms(every)
        result["query_ms"] = {
            "p50": overall["p50"],
            "p99": overall["p99"],
            "records": len(records),
            "by_filter": per_filter,
        }
        result["csv_rows_per_s"] = round(csv_rps)

        # A call centre's busiest day: every record in one tenant-day (yesterday, UTC).
        day_start = (time.time_ns() // 1_000_000 // DAY_MS - 1) * DAY_MS
        day_records = synthetic_records(
            "bench-day", options.big_day_records, day_start + DAY_MS, random.Random(5), DAY_MS
        )
        filled = asyncio.run(_fill_big_day(redis_node.url, bench, day_records))
        day_filters = _big_day_filters(day_records, day_start)
        del day_records
        per_filter, every, csv_rps = asyncio.run(
            _http_queries(
                f"http://127.0.0.1:{bench.api_port}",
                token,
                "bench-day",
                day_filters,
                options.query_samples,
            )
        )
        result["query_ms"]["big_day"] = {
            **summary_ms(every),
            **filled,
            "by_filter": per_filter,
            "csv_rows_per_s": round(csv_rps),
        }
        result["redis_benchmark_ceiling"] = _redis_benchmark(redis_node.port)
    finally:
        api.stop()
        worker.stop()
        redis_node.down()
    return result
