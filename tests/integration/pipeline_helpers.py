"""Helpers for tests that drive the real pipeline: produce, predict, read back, wait."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from cdrstream.core.outcome import Policy, decide
from cdrstream.core.record import CallRecord
from cdrstream.kafka_topics import ensure_owned_topics
from cdrstream.settings import Settings
from cdrstream.stack.roles import RoleProcess, settings_env
from cdrstream.store.connection import connect
from cdrstream.store.reader import RecordQuery, RecordReader
from cdrstream.store.sweeper import count_stored

T = TypeVar("T")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def produce(settings: Settings, items: Iterable[tuple[str, bytes]]) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5)
    await producer.start()
    sent = 0
    try:
        for key, value in items:
            await producer.send(settings.topic, value=value, key=key.encode())
            sent += 1
        await producer.flush()
    finally:
        await producer.stop()
    return sent


def expected_records(
    settings: Settings, items: Sequence[tuple[str, bytes]], at_ms: int
) -> dict[tuple[str, str], CallRecord]:
    """What the store must hold after ``items``, per the pure rules: last stored event wins."""
    policy = Policy(retention_ms=settings.retention_ms, default_region=settings.default_region)
    expected: dict[tuple[str, str], CallRecord] = {}
    for _key, value in items:
        decision = decide(value, at_ms, policy)
        if decision.outcome == "stored" and decision.record is not None:
            expected[(decision.record.tenant_id, decision.record.id)] = decision.record
    return expected


async def stored_records(
    settings: Settings, tenants: Iterable[str]
) -> dict[tuple[str, str], list[CallRecord]]:
    """Every record the read path serves for ``tenants``; a list per id exposes duplicates."""
    redis = connect(settings)
    reader = RecordReader(
        redis, retention_ms=settings.retention_ms, cursor_secret=settings.cursor_secret.encode()
    )
    found: dict[tuple[str, str], list[CallRecord]] = {}
    try:
        for tenant in tenants:
            async for chunk in reader.stream(tenant, RecordQuery(), now_ms=now_ms()):
                for record in chunk:
                    found.setdefault((tenant, record.id), []).append(record)
    finally:
        await redis.aclose()
    return found


async def count_records(settings: Settings, tenants: Iterable[str]) -> int:
    """Records stored for the tenants, every tier: a cheap progress probe (no decoding)."""
    redis = connect(settings)
    try:
        return sum([await count_stored(redis, [tenant]) for tenant in tenants])
    finally:
        await redis.aclose()


async def dead_letters(settings: Settings, expected: int, timeout_s: float = 60) -> list:  # type: ignore[type-arg]
    """Read the dead-letter topic from the start until ``expected`` messages (or timeout)."""
    consumer = AIOKafkaConsumer(
        settings.dlq_topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    messages: list = []  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout_s
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for batch in batches.values():
                messages.extend(batch)
    finally:
        await consumer.stop()
    return messages


async def wait_for(
    probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], *, timeout_s: float = 120
) -> T:
    """Poll ``probe`` until ``done(result)``; return the last result either way."""
    deadline = time.monotonic() + timeout_s
    result = await probe()
    while not done(result) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        result = await probe()
    return result


async def wait_for_records(
    settings: Settings,
    tenants: Iterable[str],
    expected: dict[tuple[str, str], CallRecord],
    *,
    timeout_s: float = 240,
) -> dict[tuple[str, str], list[CallRecord]]:
    """Wait until the stored records are exactly ``expected``, one copy each; return the
    last read either way. Every id present is not enough: the generator's changed second
    event for a call (a correction) may still be on its way."""
    tenants = list(tenants)
    want = {key: [record] for key, record in expected.items()}
    return await wait_for(
        lambda: stored_records(settings, tenants), lambda found: found == want, timeout_s=timeout_s
    )


def cdrstream_command(
    settings: Settings, *argv: str, timeout_s: float = 300
) -> subprocess.CompletedProcess[str]:
    """`cdrstream ARGV` as its own process with the settings' environment; its output
    captured (a hang fails the test by the timeout, not a time limit)."""
    return subprocess.run(
        [sys.executable, "-m", "cdrstream", *argv],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def create_topics(settings: Settings) -> Settings:
    """Create the settings' topics, as `stack up` does (the worker creates none); call it
    outside the event loop (a fixture)."""
    asyncio.run(ensure_owned_topics(settings))
    return settings


def start_worker(settings: Settings, log_file: Path) -> RoleProcess:
    """`cdrstream worker` on ``settings`` (topics created), once its web server answers."""
    worker = RoleProcess(["worker"], env=settings_env(settings), log_file=log_file).start()
    worker.wait_http(f"http://127.0.0.1:{settings.worker_port}/healthz")
    return worker


def with_cluster(settings: Settings, url: str) -> Settings:
    return replace(settings, redis_url=url, redis_cluster=True)


def api_records(settings: Settings, tenant: str, token: str) -> list[dict[str, Any]]:
    """Every record the running API serves for ``tenant``: JSON pages followed by cursor."""
    records: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {"limit": "1000", **({"cursor": cursor} if cursor else {})}
        request = urllib.request.Request(
            f"http://127.0.0.1:{settings.api_port}/v1/tenants/{tenant}/cdrs?"
            + urllib.parse.urlencode(query)
        )
        request.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(request, timeout=30) as answer:
            page = orjson.loads(answer.read())
        records.extend(page["records"])
        cursor = page["next_cursor"]
        if cursor is None:
            return records
