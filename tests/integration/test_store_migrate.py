"""Online migration from the version-1 layout, on a single Redis and a 3-master cluster.

A tenant written by version 1 (``LegacyWriter``) is served whole by version 2 before,
during and after its records move (``store/migrate.py``): pages followed across migration
steps neither skip nor repeat a record, writes during the migration keep their upsert
semantics, and at the end the version-1 keys are gone.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import replace
from typing import Any

import orjson
import pytest

from cdrstream.store import legacy
from cdrstream.store import migrate as migrate_module
from cdrstream.store import sweeper as sweeper_module
from cdrstream.store.legacy import LegacyWriter
from cdrstream.store.migrate import migrate_step, migrate_tenant
from cdrstream.store.reader import RecordQuery, RecordReader
from cdrstream.store.sweeper import sweep_expired
from cdrstream.store.writer import RecordWriter
from tests.integration.store_helpers import (
    NOW,
    RETENTION,
    SECRET,
    all_pages,
    assert_indexes_consistent,
    expected,
    make_record,
    new_tenant,
    seal_all,
    stored_records,
)

pytestmark = pytest.mark.integration

QUERIES = [
    RecordQuery(),
    RecordQuery(direction="inbound"),
    RecordQuery(extension="203"),
    RecordQuery(number_prefix="+3161"),
    RecordQuery(number_prefix="+31201000007"),
    RecordQuery(from_ms=NOW - 60_000 * 300, to_ms=NOW - 60_000 * 100),
]


@pytest.fixture
def reader(redis: Any) -> RecordReader:
    return RecordReader(redis, retention_ms=RETENTION, cursor_secret=SECRET)


async def legacy_tenant(redis: Any, count: int) -> tuple[str, list[Any]]:
    tenant = new_tenant()
    records = [make_record(tenant, n) for n in range(count)]
    assert (
        await LegacyWriter(redis, retention_ms=RETENTION).write_batch(records, NOW)
        == ["stored"] * count
    )
    return tenant, records


async def test_version_1_records_are_served(redis: Any, reader: RecordReader) -> None:
    tenant, records = await legacy_tenant(redis, 300)
    for query in QUERIES:
        found, _ = await all_pages(reader, tenant, query, limit=23)
        assert found == expected(records, query)
        streamed = [r async for c in reader.stream(tenant, query, now_ms=NOW) for r in c]
        assert streamed == expected(records, query)
    for record in records[:20]:
        assert await reader.get(tenant, record.id) == record


@pytest.mark.parametrize("query", QUERIES[:4], ids=["none", "direction", "extension", "number"])
async def test_paging_across_migration_steps_has_no_gap_or_repeat(
    monkeypatch: pytest.MonkeyPatch, redis: Any, reader: RecordReader, query: RecordQuery
) -> None:
    monkeypatch.setattr(migrate_module, "MIGRATE_BATCH", 40)
    tenant, records = await legacy_tenant(redis, 400)
    # Older records move first (as the migration does) and get sealed, while the client
    # pages from the newest: the two meet in the middle.
    found, cursor, steps = [], None, 0
    while True:
        page = await reader.page(tenant, query, limit=17, cursor=cursor, now_ms=NOW)
        found += page.records
        cursor = page.next_cursor
        if cursor is None:
            break
        await migrate_step(redis, tenant, now_ms=NOW, retention_ms=RETENTION)
        steps += 1
        if steps % 3 == 0:
            await seal_all(redis, tenant)
    assert [r.id for r in found] == [r.id for r in expected(records, query)]
    assert steps >= 3


async def test_writes_during_migration_keep_upsert_semantics(
    monkeypatch: pytest.MonkeyPatch, redis: Any, reader: RecordReader
) -> None:
    monkeypatch.setattr(migrate_module, "MIGRATE_BATCH", 50)
    tenant, records = await legacy_tenant(redis, 200)
    writer = RecordWriter(redis, retention_ms=RETENTION)
    await migrate_step(redis, tenant, now_ms=NOW, retention_ms=RETENTION)  # the oldest 50 move
    # Replays of version-1 records (moved or not) are duplicates; changes replace them.
    replays = [records[0], records[199], records[120]]
    assert await writer.write_batch(replays, NOW) == ["duplicate"] * 3
    changed = [replace(records[1], duration=7), replace(records[198], extension="999")]
    moved = replace(records[2], started_at_ms=records[2].started_at_ms - 3_600_000)
    fresh = make_record(tenant, 1_000)
    assert await writer.write_batch([*changed, moved, fresh], NOW) == ["stored"] * 4
    final = [*records, *changed, moved, fresh]
    assert await assert_indexes_consistent(redis, tenant, reader) == 201
    stats = await migrate_tenant(redis, tenant, now_ms=NOW, retention_ms=RETENTION)
    assert stats.left == 0
    for key in legacy.tenant_keys(tenant):
        assert not await redis.exists(key)
    assert await seal_all(redis, tenant) >= 0
    assert await assert_indexes_consistent(redis, tenant, reader) == 201
    for query in QUERIES:
        found, _ = await all_pages(reader, tenant, query, limit=50)
        assert found == expected(final, query)
    latest = list({r.id: r for r in final}.values())
    assert await writer.write_batch(latest, NOW) == ["duplicate"] * len(latest)


async def test_migration_to_the_end_seals_everything(redis: Any, reader: RecordReader) -> None:
    tenant, records = await legacy_tenant(redis, 1_200)
    stats = await migrate_tenant(redis, tenant, now_ms=NOW + 2 * 3_600_000, retention_ms=RETENTION)
    assert (stats.moved, stats.left) == (1_200, 0)
    assert stats.sealed == 1_200  # all older than the seal age at that "now"
    stored = await stored_records(redis, tenant)
    assert stored == {r.id: r for r in records}
    for query in QUERIES:
        found, _ = await all_pages(reader, tenant, query, limit=101)
        assert found == expected(records, query)


async def test_sweeps_migrate_lazily(
    monkeypatch: pytest.MonkeyPatch, redis: Any, reader: RecordReader
) -> None:
    monkeypatch.setattr(sweeper_module, "MIGRATE_PER_SWEEP", 100)
    monkeypatch.setattr(migrate_module, "MIGRATE_BATCH", 100)
    tenant, records = await legacy_tenant(redis, 350)
    sweeps = 0
    while await redis.exists(legacy.time_key(tenant)):
        await sweep_expired(redis, now_ms=NOW, retention_ms=RETENTION)
        sweeps += 1
        found, _ = await all_pages(reader, tenant, RecordQuery(), limit=100)
        assert found == expected(records, RecordQuery())
        assert sweeps < 10
    assert sweeps == 4
    assert await stored_records(redis, tenant) == {r.id: r for r in records}


async def test_migrate_command(request: pytest.FixtureRequest, redis: Any) -> None:
    tenant, records = await legacy_tenant(redis, 120)
    cluster = "cluster" in request.node.name
    url = request.getfixturevalue("redis_cluster_url" if cluster else "store_redis_url")
    env = {
        **os.environ,
        "CDRSTREAM_REDIS_URL": url,
        "CDRSTREAM_REDIS_CLUSTER": "1" if cluster else "0",
    }
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "cdrstream", "migrate", "--tenants", tenant],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert lines[0]["tenant"] == tenant
    assert (lines[0]["version1_records"], lines[0]["moved"], lines[0]["left"]) == (120, 120, 0)
    assert lines[-1]["left"] == 0
    assert await stored_records(redis, tenant) == {r.id: r for r in records}
    again = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "cdrstream", "migrate", "--tenants", tenant, "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert orjson.loads(again.stdout.splitlines()[0])["version1_records"] == 0


async def test_migrated_records_are_counted_in_the_daily_summary(
    redis: Any, reader: RecordReader
) -> None:
    from zoneinfo import ZoneInfo

    from cdrstream.core.summary import contribution, encode_contribution, parse_fields
    from cdrstream.store.summary import summary_key

    tenant, records = await legacy_tenant(redis, 150)
    await migrate_tenant(redis, tenant, now_ms=NOW, retention_ms=RETENTION)
    fresh = RecordWriter(redis, retention_ms=RETENTION)
    # The same totals the writer would have kept had it written these records itself.
    other = new_tenant()
    same = [replace(r, tenant_id=other) for r in records]
    assert await fresh.write_batch(same, NOW) == ["stored"] * 150
    migrated = parse_fields(await redis.hgetall(summary_key(tenant)))
    written = parse_fields(await redis.hgetall(summary_key(other)))
    assert migrated == written and migrated
    zone = ZoneInfo("Europe/Amsterdam")
    assert encode_contribution(contribution(records[0], zone))  # 7 bytes: summaries are on
