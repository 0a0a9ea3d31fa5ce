"""Faults with real processes: killed workers, restarted Redis and Kafka, hostile input.

Each test checks the exact outcome: the records served equal the set the pure rules
predict (none lost), each exactly once (none duplicated); after the kills and replays every
day's summary equals the aggregate of the stored records, exactly, and the live stream
announced exactly the records stored (written by the same script).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cdrstream.core.outcome import Policy, decide
from cdrstream.core.summary import aggregate, first_day
from cdrstream.settings import Settings
from cdrstream.simulation.calls import generate_events
from cdrstream.stack.kafka import KafkaNode
from cdrstream.stack.processes import free_port
from cdrstream.stack.redis_server import RedisNode
from cdrstream.stack.roles import RoleProcess
from cdrstream.store.connection import connect
from cdrstream.store.live import read_after
from cdrstream.store.summary import read_summary
from tests.faults.hostile import hostile_events
from tests.integration.pipeline_helpers import (
    count_records,
    create_topics,
    dead_letters,
    expected_records,
    now_ms,
    produce,
    start_worker,
    wait_for,
    wait_for_records,
)

pytestmark = [pytest.mark.integration, pytest.mark.fault]

EVENTS = 50_000


class Workers:
    """Starts `cdrstream worker` processes for one test and stops them all at its end."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.started: list[RoleProcess] = []

    def start(self) -> RoleProcess:
        settings = replace(self.settings, worker_port=free_port())
        worker = start_worker(settings, self.log_dir / f"worker-{len(self.started)}.log")
        self.started.append(worker)
        return worker

    def stop_all(self) -> None:
        for worker in self.started:
            worker.stop()

    def logs(self) -> str:
        return "\n".join(w.log_tail(15) for w in self.started)


@pytest.fixture
def fault_settings(stack_settings: Settings) -> Settings:
    return create_topics(replace(stack_settings, topic_partitions=6, batch_max=500))


@pytest.fixture
def workers(fault_settings: Settings, tmp_path: Path) -> Iterator[Workers]:
    group = Workers(fault_settings, tmp_path)
    yield group
    group.stop_all()


def _stream(seed: int) -> tuple[list[str], list[tuple[str, bytes]]]:
    tenants = [f"fault{seed}-{random.randrange(10**9)}-{i}" for i in range(8)]
    items = list(
        generate_events(
            random.Random(seed),
            tenants=tenants,
            now_ms=now_ms(),
            count=EVENTS,
            malformed_ratio=0.002,
        )
    )
    return tenants, items


async def _produce_in_halves(settings: Settings, items: list[tuple[str, bytes]], between) -> None:  # type: ignore[no-untyped-def]
    half = len(items) // 2
    await produce(settings, items[:half])
    await between()
    await produce(settings, items[half:])


async def _assert_exactly_expected(
    settings: Settings, tenants: list[str], items: list[tuple[str, bytes]], workers: Workers
) -> None:
    expected = expected_records(settings, items, now_ms())
    await wait_for(
        lambda: count_records(settings, tenants), lambda n: n >= len(expected), timeout_s=240
    )
    found = await wait_for_records(settings, tenants, expected)
    missing = set(expected) - set(found)
    assert not missing, f"{len(missing)} records lost\n{workers.logs()}"
    assert set(found) == set(expected)
    duplicated = [key for key, copies in found.items() if len(copies) != 1]
    assert duplicated == []
    assert {key: copies[0] for key, copies in found.items()} == expected
    await _assert_summaries_and_announcements_exact(settings, tenants, expected)


async def _assert_summaries_and_announcements_exact(
    settings: Settings, tenants: list[str], expected: dict[tuple[str, str], Any]
) -> None:
    """Every day's summary equals the aggregate of the stored records; every stored record
    was announced on the live stream, and nothing else was."""
    zone = ZoneInfo(settings.display_tz)
    floor = first_day(now_ms(), settings.retention_ms, zone)
    redis = connect(settings)
    try:
        for tenant in tenants:
            records = [r for (t, _), r in expected.items() if t == tenant]
            assert await read_summary(redis, tenant) == aggregate(records, zone, floor), tenant
            announced = {rid for _, rid in await read_after(redis, tenant, (0, 0), 1_000_000)}
            assert announced == {r.id for r in records}, tenant
    finally:
        await redis.aclose()


async def _wait_some_progress(settings: Settings, tenants: list[str], at_least: int) -> None:
    await wait_for(lambda: count_records(settings, tenants), lambda n: n >= at_least, timeout_s=120)


async def test_worker_killed_mid_stream_then_restarted(
    fault_settings: Settings, workers: Workers
) -> None:
    tenants, items = _stream(21)
    first = workers.start()

    async def kill_mid_stream() -> None:
        await _wait_some_progress(fault_settings, tenants, 5_000)
        first.kill()  # SIGKILL: no flush, no ack, no commit
        workers.start()

    await _produce_in_halves(fault_settings, items, kill_mid_stream)
    await _assert_exactly_expected(fault_settings, tenants, items, workers)


@pytest.mark.parametrize(("engine", "down_s"), [("redis_node", 3.0), ("kafka_node", 2.0)])
async def test_engine_restarted_mid_stream(
    fault_settings: Settings,
    workers: Workers,
    request: pytest.FixtureRequest,
    engine: str,
    down_s: float,
) -> None:
    """Redis (AOF) or the Kafka broker goes away mid-stream: the worker waits, never skips."""
    node: RedisNode | KafkaNode = request.getfixturevalue(engine)
    tenants, items = _stream(22 if engine == "redis_node" else 23)
    workers.start()

    async def restart() -> None:
        await _wait_some_progress(fault_settings, tenants, 5_000)
        try:
            await asyncio.to_thread(node.down)
            await asyncio.sleep(down_s)
        finally:  # the session's engine: every later test needs it back
            await asyncio.to_thread(node.up, 120)

    await _produce_in_halves(fault_settings, items, restart)
    await _assert_exactly_expected(fault_settings, tenants, items, workers)


async def test_two_workers_one_killed_partitions_move(
    fault_settings: Settings, workers: Workers
) -> None:
    tenants, items = _stream(24)
    workers.start()
    second = workers.start()

    async def kill_one() -> None:
        await _wait_some_progress(fault_settings, tenants, 5_000)
        second.kill()

    await _produce_in_halves(fault_settings, items, kill_one)
    await _assert_exactly_expected(fault_settings, tenants, items, workers)


async def test_hostile_events_go_to_dead_letters_and_valid_ones_around_them_are_stored(
    fault_settings: Settings, workers: Workers
) -> None:
    tenants, valid = _stream(25)
    valid = valid[:5_000]
    hostile = hostile_events(random.Random(26), 10_000, tenant=tenants[0])
    mixed: list[tuple[str, bytes]] = []
    for n, bad in enumerate(hostile):
        mixed.append(bad)
        if n % 2 == 0 and valid:
            mixed.append(valid.pop())
    mixed.extend(valid)
    worker = workers.start()
    await produce(fault_settings, mixed)
    await _assert_exactly_expected(fault_settings, tenants, mixed, workers)
    policy = Policy(retention_ms=fault_settings.retention_ms)
    invalid = sum(1 for _, v in mixed if decide(v, now_ms(), policy).outcome == "invalid")
    assert all(decide(v, now_ms(), policy).outcome == "invalid" for _, v in hostile)
    letters = await dead_letters(fault_settings, invalid, timeout_s=120)
    assert len(letters) == invalid
    assert all(dict(m.headers).get("cdrstream.reason") for m in letters)
    assert worker.running
