"""`cdrstream rebuild` brings a lost window back from the topic, exactly as it was."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from cdrstream.core.clock import DAY_MS
from cdrstream.rebuild.run import RebuildRefused, rebuild
from cdrstream.settings import Settings
from cdrstream.simulation.calls import generate_events
from cdrstream.stack.processes import free_port
from cdrstream.stack.redis_server import RedisNode
from cdrstream.stack.roles import settings_env
from tests.integration.pipeline_helpers import (
    create_topics,
    expected_records,
    now_ms,
    produce,
    start_worker,
    stored_records,
    wait_for,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisNode]:
    """A Redis of this test's own: it is flushed to simulate losing the window."""
    node = RedisNode(base_dir=tmp_path / "redis", port=free_port())
    node.up()
    yield node
    node.down()


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
        before = await wait_for(
            lambda: stored_records(settings, tenants), lambda f: set(f) == set(expected)
        )
        assert set(before) == set(expected), worker.log_tail()
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
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "cdrstream", "rebuild", "--tenant", tenants[1]],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "rebuild: " in done.stderr and "events/s" in done.stderr
    assert await stored_records(settings, tenants) == {
        key: copies for key, copies in before.items() if key[0] == tenants[1]
    }


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
