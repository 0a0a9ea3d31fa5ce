"""`cdrstream rebuild` brings a lost window back from the topic, exactly as it was."""

from __future__ import annotations

import asyncio
import random
import subprocess
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
import redis
from aiokafka import AIOKafkaProducer

from cdrstream.core.clock import DAY_MS
from cdrstream.core.record import record_id
from cdrstream.core.sse import StreamId
from cdrstream.core.timestamps import parse_timestamp
from cdrstream.rebuild.run import RebuildRefused, rebuild
from cdrstream.settings import Settings
from cdrstream.simulation.calls import generate_events
from cdrstream.stack.processes import free_port
from cdrstream.stack.redis_server import RedisNode
from cdrstream.store.connection import connect
from cdrstream.store.live import read_after, stream_state
from tests.integration.pipeline_helpers import (
    cdrstream_command,
    create_topics,
    expected_records,
    now_ms,
    produce,
    start_worker,
    stored_records,
    wait_for,
    wait_for_records,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def rebuild_settings(stack_settings: Settings, own_redis: RedisNode) -> Settings:
    return create_topics(
        replace(
            stack_settings, worker_port=free_port(), topic_partitions=3, redis_url=own_redis.url
        )
    )


def _flush(node: RedisNode) -> None:
    client = redis.Redis(port=node.port)
    try:
        client.flushall()
        assert client.dbsize() == 0
    finally:
        client.close()


async def test_flushed_redis_comes_back_record_for_record(
    rebuild_settings: Settings, own_redis: RedisNode, tmp_path: Path
) -> None:
    settings = rebuild_settings
    tenants = [f"rb{random.randrange(10**9)}-{i}" for i in range(4)]
    items = list(
        generate_events(
            random.Random(21), tenants=tenants, now_ms=now_ms(), count=2_000, malformed_ratio=0.02
        )
    )
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        await produce(settings, items)
        expected = expected_records(settings, items, now_ms())
        before = await wait_for_records(settings, tenants, expected)
        assert before == {k: [r] for k, r in expected.items()}, worker.log_tail()
    finally:
        worker.stop()

    _flush(own_redis)
    assert await stored_records(settings, tenants) == {}
    reports = []
    result = await rebuild(settings, report=reports.append, report_every_s=0)
    assert result.events == len(items)
    assert reports and reports[-1].done == reports[-1].total == len(items)
    assert await stored_records(settings, tenants) == before  # every record, byte for byte

    # One tenant only, from the command line (no terminal: plain progress lines).
    _flush(own_redis)
    done = await asyncio.to_thread(cdrstream_command, settings, "rebuild", "--tenant", tenants[1])
    assert done.returncode == 0, done.stderr
    assert "rebuild: " in done.stderr and "events/s" in done.stderr
    assert await stored_records(settings, tenants) == {
        key: copies for key, copies in before.items() if key[0] == tenants[1]
    }


def _corrected(value: bytes) -> bytes:
    """A corrected CDR of the call of ``value``: a new event, the call ten seconds longer."""
    event = orjson.loads(value)
    ended = parse_timestamp(event["ended_at"])
    assert ended is not None
    event.update(event_id=f"{event['event_id']}-corrected", ended_at=ended + 10_000)
    if event.get("answered_at") is not None:
        event["duration"] = int(event.get("duration") or 0) + 10
    return orjson.dumps(event)


def _record_key(value: bytes) -> tuple[str, str]:
    event = orjson.loads(value)
    return event["tenant_id"], record_id(event["tenant_id"], event["call_id"])


async def _announced_since(settings: Settings, marks: dict[str, StreamId]) -> list[tuple[str, str]]:
    """(tenant, record id) of every live-tail announcement after ``marks``."""
    redis = connect(settings)
    try:
        return [
            (tenant, rid)
            for tenant, mark in marks.items()
            for _, rid in await read_after(redis, tenant, mark, 1_000_000)
        ]
    finally:
        await redis.aclose()


async def _stream_marks(settings: Settings, tenants: list[str]) -> dict[str, StreamId]:
    redis = connect(settings)
    try:
        return {t: (await stream_state(redis, t)).last for t in tenants}
    finally:
        await redis.aclose()


async def test_a_rebuild_beside_a_live_worker_loses_nothing_and_no_older_version_wins(
    rebuild_settings: Settings, tmp_path: Path
) -> None:
    """A rebuild over a live store while the worker consumes new events and corrections:
    every event of both ends up stored as its latest version, and the rebuild's replay of
    an older version never replaces (nor re-announces) a newer one stored before it."""
    settings = rebuild_settings
    tenants = [f"rl{random.randrange(10**9)}-{i}" for i in range(3)]
    first = list(
        generate_events(
            random.Random(8), tenants=tenants, now_ms=now_ms(), count=1_200, malformed_ratio=0.01
        )
    )
    # The last event of each visible call (its latest version), corrected in two groups.
    shown = expected_records(settings, first, now_ms())
    latest = {_record_key(v): v for _, v in first if _record_key_or_none(v) in shown}
    visible = [latest[k] for k in sorted(latest)]
    corrected_before = [(orjson.loads(v)["tenant_id"], _corrected(v)) for v in visible[::3]]
    corrected_during = [(orjson.loads(v)["tenant_id"], _corrected(v)) for v in visible[1::3]]
    new_during = list(
        generate_events(random.Random(9), tenants=tenants, now_ms=now_ms(), count=600)
    )
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        await produce(settings, first)
        await produce(settings, corrected_before)
        settled = expected_records(settings, first + corrected_before, now_ms())
        stored = await wait_for(
            lambda: stored_records(settings, tenants),
            lambda f: f == {k: [r] for k, r in settled.items()},
        )
        assert stored == {k: [r] for k, r in settled.items()}, worker.log_tail()
        marks = await _stream_marks(settings, tenants)

        during = corrected_during + new_during
        result, _ = await asyncio.gather(rebuild(settings), produce(settings, during))

        everything = first + corrected_before + during
        expected = {k: [r] for k, r in expected_records(settings, everything, now_ms()).items()}
        final = await wait_for(lambda: stored_records(settings, tenants), lambda f: f == expected)
        assert final == expected, worker.log_tail()  # nothing lost, the latest version of each
        assert result.events >= len(first) + len(corrected_before)

        # The rebuild replayed each corrected call's first version after its correction was
        # stored: not one of those calls was replaced (a replacement is announced).
        announced = set(await _announced_since(settings, marks))
        settled_before = {_record_key(v) for _, v in corrected_before}
        assert announced & settled_before == set()
        # ... while what the worker stored meanwhile was announced.
        assert {_record_key(v) for _, v in corrected_during} <= announced
    finally:
        worker.stop()


def _record_key_or_none(value: bytes) -> tuple[str, str] | None:
    try:
        return _record_key(value)
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None


async def test_a_topic_that_keeps_less_than_the_window_is_refused(
    rebuild_settings: Settings,
) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    short = replace(rebuild_settings, topic=rebuild_settings.topic + ".short")
    admin = AIOKafkaAdminClient(bootstrap_servers=short.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(short.topic, 1, 1, topic_configs={"retention.ms": str(7 * DAY_MS)})]
        )
    finally:
        await admin.close()

    async def refusal() -> str:
        try:
            await rebuild(short)
        except RebuildRefused as exc:
            return str(exc)
        return "not refused"

    # A new topic's metadata reaches every listener within moments: wait for the real answer.
    message = await wait_for(refusal, lambda text: "does not exist" not in text, timeout_s=30)
    assert "shorter than the 30.0 days window by 23.0 days" in message


async def test_topics_created_by_cdrstream_keep_the_whole_window(
    rebuild_settings: Settings,
) -> None:
    from cdrstream.rebuild.run import topic_layout

    layout = await topic_layout(rebuild_settings)
    assert layout.retention_ms == rebuild_settings.retention_ms + DAY_MS
    assert layout.partitions == [0, 1, 2]


def _rebuild_command(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return cdrstream_command(settings, "rebuild", *args, timeout_s=120)


async def test_nothing_to_replay_ends_at_once_and_says_so(rebuild_settings: Settings) -> None:
    """An empty topic; then events only older than ``--since``; then a tenant with no
    event (its partition holds others'): each exits 0 saying nothing was replayed."""
    settings = rebuild_settings
    empty = await asyncio.to_thread(_rebuild_command, settings)
    assert empty.returncode == 0, empty.stderr
    assert "nothing to replay: the topic holds no event from the retention window" in empty.stdout

    tenants = [f"quiet{random.randrange(10**9)}-{i}" for i in range(3)]
    ten_minutes_ago = now_ms() - 600_000
    items = list(
        generate_events(random.Random(3), tenants=tenants, now_ms=ten_minutes_ago, count=200)
    )
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for tenant, value in items:
            await producer.send(
                settings.topic, value, key=tenant.encode(), timestamp_ms=ten_minutes_ago
            )
        await producer.flush()
    finally:
        await producer.stop()

    quiet = await asyncio.to_thread(_rebuild_command, settings, "--since", "1m")
    assert quiet.returncode == 0, quiet.stderr
    assert "nothing to replay: the topic holds no event from the last 60s" in quiet.stdout
    assert await stored_records(settings, tenants) == {}

    nobody = f"nobody{random.randrange(10**9)}"
    absent = await asyncio.to_thread(_rebuild_command, settings, "--tenant", nobody)
    assert absent.returncode == 0, absent.stderr
    assert (
        f"nothing to replay: no event of tenant {nobody} in the retention window" in absent.stdout
    )
    assert await stored_records(settings, tenants) == {}


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"retention.bytes": "1073741824"}, "keeps at most 1,073,741,824 bytes per partition"),
        ({"cleanup.policy": "compact"}, "is compacted (cleanup.policy=compact)"),
        ({"cleanup.policy": "compact,delete"}, "is compacted (cleanup.policy=compact,delete)"),
    ],
)
async def test_a_topic_that_may_not_hold_the_window_is_refused(
    rebuild_settings: Settings, config: dict[str, str], says: str
) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    limited = replace(rebuild_settings, topic=f"{rebuild_settings.topic}.limited")
    admin = AIOKafkaAdminClient(bootstrap_servers=limited.kafka_bootstrap)
    await admin.start()
    try:
        configs = {"retention.ms": str(limited.retention_ms + DAY_MS), **config}
        await admin.create_topics([NewTopic(limited.topic, 1, 1, topic_configs=configs)])
    finally:
        await admin.close()

    async def refusal() -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(_rebuild_command, limited)

    # A new topic's metadata reaches every listener within moments: wait for the real answer.
    done = await wait_for(refusal, lambda d: "does not exist" not in d.stderr, timeout_s=30)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr
