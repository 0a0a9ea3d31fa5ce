"""The tiers' mechanics against a real Redis (single and 3-master cluster): records that
move between days after sealing, records changed while they are being sealed, the id map
growing by splits, sealed-day index lookups against a plain filter, and whole days leaving
the window."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from typing import Any

import pytest

from cdrstream.store import reader as reader_module
from cdrstream.store import sealer as sealer_module
from cdrstream.store.layout import (
    DAY_MS,
    ID_TARGET,
    bucket_key,
    days_key,
    hot_key,
    meta_key,
    segment_key,
    tombstones_key,
)
from cdrstream.store.reader import RecordQuery, RecordReader
from cdrstream.store.scripts import seal_call
from cdrstream.store.sweeper import sweep_expired
from cdrstream.store.writer import RecordWriter
from tests.integration.store_helpers import (
    DAY,
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


@pytest.fixture
def reader(redis: Any) -> RecordReader:
    return RecordReader(redis, retention_ms=RETENTION, cursor_secret=SECRET)


async def ids(reader: RecordReader, tenant: str, query: RecordQuery) -> list[str]:
    found, _ = await all_pages(reader, tenant, query, limit=7)
    return [r.id for r in found]


async def test_record_moved_to_another_day_after_sealing(
    redis: Any, writer: RecordWriter, reader: RecordReader
) -> None:
    tenant = new_tenant()
    records = [make_record(tenant, n, started_at_ms=NOW - 3 * DAY + 60_000 * n) for n in range(40)]
    await writer.write_batch(records, NOW)
    await seal_all(redis, tenant)
    moved = replace(records[5], started_at_ms=NOW - DAY, extension="777")
    assert await writer.write_batch([moved], NOW) == ["stored"]
    assert await redis.hlen(tombstones_key(tenant)) == 1  # the sealed copy is stale
    final = [*records, moved]
    assert await ids(reader, tenant, RecordQuery()) == [
        r.id for r in expected(final, RecordQuery())
    ]
    assert await ids(reader, tenant, RecordQuery(extension="777")) == [moved.id]
    assert await reader.get(tenant, moved.id) == moved
    assert await assert_indexes_consistent(redis, tenant, reader) == 40
    # Sealing applies the tombstone to the old day and consumes it.
    await seal_all(redis, tenant)
    assert await redis.hlen(tombstones_key(tenant)) == 0
    assert await redis.hlen(days_key(tenant)) == 2
    assert await assert_indexes_consistent(redis, tenant, reader) == 40
    # And back to where it was, with its first content: one version, at the old place.
    assert await writer.write_batch([records[5]], NOW) == ["stored"]
    await seal_all(redis, tenant)
    assert await stored_records(redis, tenant) == {r.id: r for r in records}
    assert await ids(reader, tenant, RecordQuery()) == [
        r.id for r in expected(records, RecordQuery())
    ]


@pytest.mark.parametrize("change", ["content", "start"])
async def test_record_changed_while_being_sealed(
    monkeypatch: pytest.MonkeyPatch,
    redis: Any,
    writer: RecordWriter,
    reader: RecordReader,
    change: str,
) -> None:
    tenant = new_tenant()
    records = [make_record(tenant, n) for n in range(30)]
    await writer.write_batch(records, NOW)
    if change == "content":
        newer = replace(records[7], duration=999)
    else:
        newer = replace(records[7], started_at_ms=records[7].started_at_ms - 2 * DAY)
    build = sealer_module.segment.merge
    written: list[str] = []

    async def merge_while_a_worker_writes(fn: Any, *args: Any) -> Any:
        assert fn is build
        if not written:  # between the sealer's first reads and its install script
            written.extend(await writer.write_batch([newer], NOW))
        return fn(*args)

    monkeypatch.setattr(sealer_module.asyncio, "to_thread", merge_while_a_worker_writes)
    await seal_all(redis, tenant)
    monkeypatch.undo()
    assert written == ["stored"]
    final = [*records, newer]
    assert await reader.get(tenant, newer.id) == newer
    assert await ids(reader, tenant, RecordQuery()) == [
        r.id for r in expected(final, RecordQuery())
    ]
    assert await assert_indexes_consistent(redis, tenant, reader) == 30
    await seal_all(redis, tenant)
    assert await stored_records(redis, tenant) == {r.id: r for r in expected(final, RecordQuery())}


async def test_install_refuses_a_segment_changed_since_it_was_read(
    redis: Any, writer: RecordWriter, reader: RecordReader
) -> None:
    tenant = new_tenant()
    records = [make_record(tenant, n) for n in range(10)]
    await writer.write_batch(records, NOW)
    await seal_all(redis, tenant)
    day = records[0].started_at_ms // DAY_MS
    before = await redis.get(segment_key(tenant, day))
    assert await seal_call(tenant, day, nonce=b"12345678", mode="drop").run(redis) == 0
    assert await redis.get(segment_key(tenant, day)) == before
    assert await assert_indexes_consistent(redis, tenant, reader) == 10


async def test_id_map_grows_by_splits_and_stays_small(
    redis: Any, writer: RecordWriter, reader: RecordReader
) -> None:
    tenant = new_tenant()
    records = [make_record(tenant, n, started_at_ms=NOW - 1_000 * n - 1) for n in range(6_000)]
    for start in range(0, 6_000, 1_500):
        await writer.write_batch(records[start : start + 1_500], NOW)
    level, split = [int(x) for x in await redis.hmget(meta_key(tenant), ["level", "split"])]
    assert 2**level + split >= 6_000 // ID_TARGET
    assert max([await redis.hlen(bucket_key(tenant, b)) for b in range(2**level + split)]) <= 128
    # A second writer starts with no idea of the shape: its calls are refused and sent again.
    other = RecordWriter(redis, retention_ms=RETENTION)
    assert await other.write_batch(records[:100], NOW) == ["duplicate"] * 100
    await seal_all(redis, tenant)
    assert await assert_indexes_consistent(redis, tenant, reader) == 6_000


async def test_sealed_index_lookups_match_a_plain_filter(
    monkeypatch: pytest.MonkeyPatch, redis: Any, writer: RecordWriter, reader: RecordReader
) -> None:
    monkeypatch.setattr(reader_module, "INDEX_SHARE", 1.0)  # use the index whenever possible
    rng = random.Random(5)
    tenant = new_tenant()
    numbers = ["+31201234567", "+3120123", "+312", "+1", "+4930111", "+493011", "+0123"]
    numbers += ["+99999999999999999", "+9999999999999999", "anonymous", "+"]
    records = []
    for n in range(1_500):
        records.append(
            make_record(
                tenant,
                n,
                started_at_ms=NOW - 3 * DAY + rng.randrange(3 * DAY),
                source=rng.choice(numbers),
                destination=rng.choice(numbers),
                extension=rng.choice(["200", "201", "", "0", "a\x00b", "a\x01b"]),
            )
        )
    await writer.write_batch(records, NOW)
    await seal_all(redis, tenant)
    prefixes = ["+3", "+312", "+3120123", "+31201234567", "+49301", "+1", "+0", "+9999999999999999"]
    queries = [RecordQuery(number_prefix=p) for p in prefixes]
    queries += [RecordQuery(extension=e) for e in ("200", "", "a\x00b", "a\x01b", "nope")]
    queries += [RecordQuery(extension="201", number_prefix="+4930", direction="inbound")]
    for query in queries:
        found, _ = await all_pages(reader, tenant, query, limit=13)
        assert [r.id for r in found] == [r.id for r in expected(records, query)], query


async def test_days_leave_the_window_whole(
    redis: Any, writer: RecordWriter, reader: RecordReader
) -> None:
    tenant = new_tenant()
    first_day = (NOW - RETENTION) // DAY_MS
    records = [
        make_record(tenant, n, started_at_ms=first_day * DAY_MS + 3_600_000 * n) for n in range(60)
    ]
    await writer.write_batch(records, NOW)  # those before NOW - RETENTION are not stored
    stored = {r.id: r for r in records if r.started_at_ms >= NOW - RETENTION}
    await seal_all(redis, tenant)
    moved = replace(next(iter(stored.values())), started_at_ms=NOW - 1_000)  # leaves day one
    await writer.write_batch([moved], NOW)
    stored[moved.id] = moved
    await seal_all(redis, tenant)
    # Later, the first day has left the window entirely: it is deleted as a whole.
    second_day = (first_day + 1) * DAY_MS
    later = second_day + RETENTION + 1
    removed = await sweep_expired(redis, now_ms=later, retention_ms=RETENTION)
    assert removed == sum(1 for r in stored.values() if r.started_at_ms < second_day)
    assert str(first_day).encode() not in await redis.hkeys(days_key(tenant))
    assert not await redis.exists(segment_key(tenant, first_day))
    survivors = {rid: r for rid, r in stored.items() if r.started_at_ms >= second_day}
    assert await stored_records(redis, tenant) == survivors
    found, _ = await all_pages(reader, tenant, RecordQuery(), limit=50, now_ms=later)
    assert [r.id for r in found] == [
        r.id for r in expected(list(survivors.values()), RecordQuery(), later)
    ]
    assert await reader.get(tenant, moved.id) == moved
    assert await assert_indexes_consistent(redis, tenant, reader) == len(survivors)


async def test_concurrent_seals_of_one_tenant(
    redis: Any, writer: RecordWriter, reader: RecordReader
) -> None:
    tenant = new_tenant()
    records = [make_record(tenant, n) for n in range(500)]
    await writer.write_batch(records, NOW)
    results = await asyncio.gather(*(seal_all(redis, tenant) for _ in range(4)))
    assert sum(results) == 500  # the lock: one seals, the others find it taken
    assert await assert_indexes_consistent(redis, tenant, reader) == 500


async def test_hot_tier_payload_tests_never_drop_a_match(
    redis: Any, writer: RecordWriter, reader: RecordReader
) -> None:
    # The hot fetch tests filters on the payloads' JSON text: values that JSON escapes,
    # commas and quotes inside strings, numbers stored as strings.
    tenant = new_tenant()
    extensions = ['a"b', "a\\\\b", "a,b", ',"', "é☎", "", "0", "\\"]
    numbers = ["+31201234567", "+0123", "+3120,1", 'x"+3120', "anonymous", "+"]
    records = []
    for n in range(160):
        records.append(
            make_record(
                tenant,
                n,
                extension=extensions[n % len(extensions)],
                source=numbers[n % len(numbers)],
                destination=numbers[(n // 3) % len(numbers)],
                direction="inbound" if n % 5 else "outbound",
            )
        )
    await writer.write_batch(records, NOW)
    queries = [RecordQuery(extension=e) for e in extensions]
    queries += [RecordQuery(number_prefix=p) for p in ("+3120", "+0", "+01", "+3120123", "+")]
    queries += [RecordQuery(direction="outbound", extension='a"b', number_prefix="+31")]
    for query in queries:
        found, _ = await all_pages(reader, tenant, query, limit=11)
        assert [r.id for r in found] == [r.id for r in expected(records, query)], query


async def test_hot_records_are_sealed_once_per_completed_hour(
    monkeypatch: pytest.MonkeyPatch, redis: Any, writer: RecordWriter, reader: RecordReader
) -> None:
    hour = 3_600_000
    tenant = new_tenant()
    h0 = (NOW // hour) * hour  # the hour NOW is in
    records = [make_record(tenant, n, started_at_ms=h0 + 60_000 * n) for n in range(30)]
    await writer.write_batch(records, NOW)

    async def sweep(at: int) -> int:
        await sweep_expired(redis, now_ms=at, retention_ms=RETENTION)
        return int(await redis.hlen(hot_key(tenant)))

    assert await sweep(h0 + hour - 1) == 30  # the hour is not over
    assert await sweep(h0 + hour + 60_000) == 30  # over, but within the grace
    assert await sweep(h0 + hour + 6 * 60_000) == 0  # sealed
    late = make_record(tenant, 99, started_at_ms=h0 + 59 * 60_000)
    fresh = make_record(tenant, 100, started_at_ms=h0 + hour + 30 * 60_000)
    await writer.write_batch([late, fresh], NOW)
    assert await sweep(h0 + hour + 20 * 60_000) == 2  # the late one waits for the next hour
    assert await sweep(h0 + 2 * hour + 6 * 60_000) == 0
    assert await assert_indexes_consistent(redis, tenant, reader) == 32
    # A tenant with too many hot records has its oldest sealed at once.
    monkeypatch.setattr(sealer_module, "HOT_MAX", 10)
    burst = [make_record(tenant, 200 + n, started_at_ms=h0 + 2 * hour + n) for n in range(25)]
    await writer.write_batch(burst, NOW)
    assert await sweep(h0 + 2 * hour + 7 * 60_000) == 5
    assert await assert_indexes_consistent(redis, tenant, reader) == 57


async def test_sealed_days_after_today_are_read(
    redis: Any, writer: RecordWriter, reader: RecordReader
) -> None:
    # A page's first step reads today and yesterday with the plan's reads; a sealed day
    # after today (a clock gone wrong, a test) must still be read.
    tenant = new_tenant()
    records = [make_record(tenant, n) for n in range(20)]
    records += [make_record(tenant, 100 + n, started_at_ms=NOW + 5 * DAY + n) for n in range(5)]
    records += [make_record(tenant, 200 + n, started_at_ms=NOW - 3 * DAY + n) for n in range(5)]
    await writer.write_batch(records, NOW)
    await seal_all(redis, tenant)
    for query in (RecordQuery(), RecordQuery(extension="201"), RecordQuery(direction="inbound")):
        found, _ = await all_pages(reader, tenant, query, limit=4)
        assert [r.id for r in found] == [r.id for r in expected(records, query)], query
