"""The worker end to end: real Kafka in, real Redis out, read back through the query path."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from cdrstream.core.outcome import Policy, decide
from cdrstream.settings import Settings
from cdrstream.simulation.calls import generate_events, valid_event
from cdrstream.stack.processes import free_port
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
    wait_for_records,
)

pytestmark = pytest.mark.integration


@pytest.fixture(params=["redis", "redis-cluster"])
def pipeline_settings(request: pytest.FixtureRequest, stack_settings: Settings) -> Settings:
    """The same pipeline tests on a single Redis and on a real 3-master Redis Cluster."""
    settings = replace(stack_settings, worker_port=free_port())
    if request.param == "redis-cluster":
        url = request.getfixturevalue("redis_cluster_url")
        settings = replace(settings, redis_url=url, redis_cluster=True)
    return create_topics(settings)


@pytest.fixture
def worker(pipeline_settings: Settings, tmp_path: Path) -> Iterator[RoleProcess]:
    process = start_worker(pipeline_settings, tmp_path / "worker.log")
    yield process
    process.stop()


def _tenants(n: int) -> list[str]:
    return [f"t{random.randrange(10**9)}-{i}" for i in range(n)]


async def test_events_become_records_hidden_are_not_and_invalid_go_to_dead_letters(
    pipeline_settings: Settings, worker: RoleProcess
) -> None:
    tenants = _tenants(3)
    rng = random.Random(11)
    items = list(
        generate_events(rng, tenants=tenants, now_ms=now_ms(), count=1500, malformed_ratio=0.03)
    )
    old = valid_event(rng, tenants[0], now_ms() - 40 * 86_400_000)
    items.append((tenants[0], orjson.dumps(old)))
    policy = Policy(retention_ms=pipeline_settings.retention_ms)
    decisions = [decide(value, now_ms(), policy) for _, value in items]
    outcomes = Counter(d.outcome for d in decisions)
    # The generator's mix must exercise every rule, or this test proves less than it says.
    assert {
        "stored",
        "hidden_internal",
        "hidden_emergency",
        "hidden_social_value",
        "expired",
        "invalid",
    } <= set(outcomes)

    await produce(pipeline_settings, items)
    expected = expected_records(pipeline_settings, items, now_ms())
    found = await wait_for_records(pipeline_settings, tenants, expected)
    assert set(found) == set(expected), worker.log_tail()
    assert all(len(copies) == 1 for copies in found.values())
    assert {key: copies[0] for key, copies in found.items()} == expected

    letters = await dead_letters(pipeline_settings, outcomes["invalid"])
    assert len(letters) == outcomes["invalid"]
    reasons = Counter(dict(m.headers)["cdrstream.reason"].decode() for m in letters)
    assert reasons == Counter(d.reason for d in decisions if d.outcome == "invalid")
    invalid_values = sorted(
        v for (_, v), d in zip(items, decisions, strict=True) if d.outcome == "invalid"
    )
    assert sorted(m.value for m in letters) == invalid_values
    assert worker.stop() == 0  # SIGTERM: a clean shutdown


async def test_replayed_events_never_add_rows_and_a_changed_call_replaces_its_record(
    pipeline_settings: Settings, worker: RoleProcess
) -> None:
    tenants = _tenants(4)
    rng = random.Random(12)
    items = [
        (tenant, orjson.dumps(valid_event(rng, tenant, now_ms())))
        for tenant in tenants
        for _ in range(250)
    ]
    await produce(pipeline_settings, items)
    await produce(pipeline_settings, items)  # the producer retried everything
    expected = expected_records(pipeline_settings, items, now_ms())
    assert len(expected) == 1000
    found = await wait_for(
        lambda: stored_records(pipeline_settings, tenants),
        lambda f: len(f) >= 1000,
    )
    assert set(found) == set(expected)
    assert sum(len(copies) for copies in found.values()) == 1000

    tenant, value = items[0]
    changed = {**orjson.loads(value), "duration": 4321, "event_id": "changed-1"}
    await produce(pipeline_settings, [(tenant, orjson.dumps(changed))])
    (key,) = expected_records(pipeline_settings, [(tenant, orjson.dumps(changed))], now_ms())

    async def record_of_call():  # type: ignore[no-untyped-def]
        return (await stored_records(pipeline_settings, [tenant])).get(key, [])

    copies = await wait_for(record_of_call, lambda c: bool(c) and c[0].duration == 4321)
    assert [c.duration for c in copies] == [4321]
    assert len(await stored_records(pipeline_settings, [tenant])) == 250
