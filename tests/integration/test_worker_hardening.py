"""No single message stalls the worker, and a stall is visible and survives SIGTERM.

Against the real broker: messages the broker accepts but whose dead letter would not fit
again (a 1 MB header, a 1 MB key, a value just under the limit plus large headers, 10,000
tiny headers, forged headers of ours) end in the dead-letter topic, and valid events
produced after them, on the same and on other partitions, are stored.
"""

from __future__ import annotations

import json
import random
import signal
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from cdrstream.core.outcome import Policy, decide
from cdrstream.observability.scrape import fetch, samples
from cdrstream.settings import Settings
from cdrstream.simulation.calls import valid_event
from cdrstream.stack.processes import free_port
from cdrstream.stack.redis_server import RedisNode
from cdrstream.stack.roles import RoleProcess
from tests.integration.pipeline_helpers import (
    create_topics,
    dead_letters,
    expected_records,
    now_ms,
    produce,
    start_worker,
    stored_records,
    wait_for,
)

pytestmark = pytest.mark.integration

MB = 1_000_000
HOSTILE: dict[str, tuple[bytes | None, bytes, list[tuple[str, bytes]]]] = {
    "1 MB header": (b"acme", b"\xff not json", [("big", b"h" * MB)]),
    "1 MB key": (b"k" * MB, b"{not json", []),
    "value near the limit and large headers": (
        b"acme",
        b"[" * 600_000,
        [("a", b"a" * 190_000), ("b", b"b" * 190_000)],
    ),
    "10,000 tiny headers": (b"acme", b"nope", [(f"h{i}", b"1") for i in range(10_000)]),
    "forged headers of ours": (
        b"acme",
        b"nope",
        [("cdrstream.reason", b"all fine"), ("cdrstream.source.offset", b"0")],
    ),
}


@pytest.fixture
def hardening_settings(stack_settings: Settings) -> Settings:
    return create_topics(replace(stack_settings, worker_port=free_port(), topic_partitions=3))


@pytest.fixture
def worker(hardening_settings: Settings, tmp_path: Path) -> Iterator[RoleProcess]:
    process = start_worker(hardening_settings, tmp_path / "worker.log")
    yield process
    process.stop()


def _valid(tenants: list[str], per_tenant: int, seed: int) -> list[tuple[str, bytes]]:
    rng = random.Random(seed)
    return [
        (tenant, orjson.dumps(valid_event(rng, tenant, now_ms())))
        for tenant in tenants
        for _ in range(per_tenant)
    ]


async def test_messages_whose_dead_letter_would_not_fit_do_not_stall_any_partition(
    hardening_settings: Settings, worker: RoleProcess
) -> None:
    settings = hardening_settings
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", max_request_size=3 * MB
    )
    await producer.start()
    tenants = [f"hard{random.randrange(10**9)}-{i}" for i in range(6)]
    valid = _valid(tenants, 50, seed=3)
    try:
        offsets = {}
        for name, (key, value, headers) in HOSTILE.items():
            sent = await producer.send_and_wait(
                settings.topic, value=value, key=key, headers=headers, partition=0
            )
            offsets[sent.offset] = name
        # Valid events after them: some pinned behind them on partition 0, the rest by key.
        for i, (tenant, value) in enumerate(valid):
            partition = 0 if i % 3 == 0 else None
            await producer.send(
                settings.topic, value=value, key=tenant.encode(), partition=partition
            )
        await producer.flush()
    finally:
        await producer.stop()

    expected = expected_records(settings, valid, now_ms())
    found = await wait_for(
        lambda: stored_records(settings, tenants), lambda f: set(f) == set(expected)
    )
    assert set(found) == set(expected), worker.log_tail()
    assert all(len(copies) == 1 for copies in found.values())

    letters = await dead_letters(settings, len(HOSTILE))
    assert len(letters) == len(HOSTILE)
    by_case = {offsets[int(dict(m.headers)["cdrstream.source.offset"])]: m for m in letters}
    assert set(by_case) == set(HOSTILE)
    policy = Policy(retention_ms=settings.retention_ms)
    for name, letter in by_case.items():
        reason = decide(HOSTILE[name][1], now_ms(), policy).reason
        assert reason in {"not_json", "too_large"}
        ours = [(k, v) for k, v in letter.headers if k.lower().startswith("cdrstream.")]
        assert [v for k, v in ours if k == "cdrstream.reason"] == [reason.encode()]
        assert dict(ours)["cdrstream.source.partition"] == b"0"
    assert dict(by_case["1 MB header"].headers)["cdrstream.headers_dropped"] == b"1"
    assert dict(by_case["1 MB key"].headers)["cdrstream.key_truncated_from"] == str(MB).encode()
    near = dict(by_case["value near the limit and large headers"].headers)
    assert by_case["value near the limit and large headers"].value == b"[" * 600_000
    assert near["cdrstream.headers_dropped"] == b"2"
    assert "cdrstream.headers_dropped" in dict(by_case["10,000 tiny headers"].headers)
    forged = by_case["forged headers of ours"]
    assert dict(forged.headers)["cdrstream.headers_dropped"] == b"2"
    assert worker.running


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture
def redis_down(tmp_path: Path) -> Iterator[RedisNode]:
    """A Redis of the test's own, not started until the test says so."""
    node = RedisNode(base_dir=tmp_path / "redis", port=free_port())
    yield node
    node.down()


async def test_a_stall_is_visible_and_sigterm_ends_it_without_acking_the_batch(
    hardening_settings: Settings, redis_down: RedisNode, tmp_path: Path
) -> None:
    redis = redis_down
    settings = replace(hardening_settings, redis_url=redis.url, stall_after_s=2)
    tenants = [f"stall{random.randrange(10**9)}-{i}" for i in range(3)]
    valid = _valid(tenants, 40, seed=4)
    first = start_worker(settings, tmp_path / "worker-1.log")
    try:
        await produce(settings, valid)
        base = f"http://127.0.0.1:{settings.worker_port}"

        async def readiness() -> tuple[int, dict]:  # type: ignore[type-arg]
            status, body = _get(f"{base}/readyz")
            return status, json.loads(body)

        status, body = await wait_for(
            readiness, lambda r: r[0] == 503 and r[1]["checks"]["progress"] != "ok", timeout_s=60
        )
        assert status == 503, first.log_tail()
        stall = body["checks"]["progress"]
        assert "no progress" in stall and "redis write" in stall
        stuck = samples(fetch(f"{base}/metrics"), "cdrstream_worker_stuck_seconds")
        assert len(stuck) == 1 and stuck[0][1] > settings.stall_after_s
    finally:
        code = first.stop(timeout_s=30)
    assert code != -signal.SIGKILL, first.log_tail()  # it ended on SIGTERM, not on the kill
    assert code == 0, first.log_tail()

    redis.up()
    second = start_worker(settings, tmp_path / "worker-2.log")
    try:
        expected = expected_records(settings, valid, now_ms())
        found = await wait_for(
            lambda: stored_records(settings, tenants), lambda f: set(f) == set(expected)
        )
        assert set(found) == set(expected), second.log_tail()
        assert all(len(copies) == 1 for copies in found.values())
    finally:
        second.stop()
