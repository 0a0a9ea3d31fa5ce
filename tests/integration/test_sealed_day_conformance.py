"""The sealed-day format has one owner: ``segment.py`` writes it, ``lua/read_day.lua``
reads it, and both are held to a reference reader written from the documented format
(``sealed_day_reference.py``).

The big test writes 150,000 records into ONE tenant-day through the real writer and
sealer, so that the day has more than 128 directory fences (the read script's second
directory read) and both levels of index fences in use, then checks the stored day with
the reference reader and every filter's full result, through the real Lua read path on
real Redis (pages followed to the end, and the export stream), against brute force over
the records written. The property does the same at small sizes, with records hot, sealed,
replaced and moved in any mix.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdrstream.core.record import CallRecord, record_id
from cdrstream.settings import load_settings
from cdrstream.simulation.records import synthetic_records
from cdrstream.store import codec, sealer
from cdrstream.store.connection import connect
from cdrstream.store.layout import day_index_key, segment_key
from cdrstream.store.query import RecordQuery
from cdrstream.store.reader import RecordReader
from cdrstream.store.scripts import IndexKeys, read_day_count
from cdrstream.store.writer import RecordWriter
from tests.integration import sealed_day_reference as reference
from tests.integration.store_helpers import (
    DAY,
    NOW,
    RETENTION,
    SECRET,
    all_pages,
    expected,
    make_record,
    new_tenant,
    seal_all,
)

pytestmark = pytest.mark.integration

BIG_DAY_RECORDS = 150_000
DAY_START = (NOW // DAY - 1) * DAY  # yesterday: inside the window, all of it sealed


@pytest.fixture
async def single_redis(store_redis_url: str) -> AsyncIterator[Any]:
    client = connect(replace(load_settings({}), redis_url=store_redis_url))
    yield client
    await client.aclose()


def _odd_ones(tenant: str, rng: random.Random, count: int) -> list[CallRecord]:
    """Records at the format's edges: numbers longer than the 16 digits an index key keeps,
    withheld numbers, foreign and very short numbers, empty and non-ASCII extensions, and
    many calls that started in the same millisecond (equal starts across chunk bounds)."""
    out = []
    for n in range(count):
        call_id = f"odd-{n}-{uuid.UUID(int=rng.getrandbits(128))}"
        started = DAY_START + 3_600_000 * (n % 24) if n % 3 else DAY_START + 43_200_000
        theirs = rng.choice(
            ["+441234567890123456789", "+44207946" + f"{n % 1000:04d}", "anonymous", "+1", "+"]
        )
        record = make_record(
            tenant, n, call_id=call_id, started_at_ms=started, extension=rng.choice(["", "ü-7"])
        )
        out.append(replace(record, id=record_id(tenant, call_id), source=theirs))
    return out


def _filters(extension: str, ours: str) -> dict[str, RecordQuery]:
    """Every filter, and some of their combinations; ``extension`` and ``ours`` (a number)
    are values the records use."""
    return {
        "none": RecordQuery(),
        "direction": RecordQuery(direction="inbound"),
        "extension": RecordQuery(extension=extension),
        "extension_odd": RecordQuery(extension="ü-7"),
        "number_exact": RecordQuery(number_prefix=ours),
        "number_prefix_dense": RecordQuery(number_prefix="+3120"),
        "number_prefix_sparse": RecordQuery(number_prefix="+44"),
        "number_beyond_16_digits": RecordQuery(number_prefix="+44123456789012345678"),
        "one_hour": RecordQuery(from_ms=DAY_START + 7 * 3_600_000, to_ms=DAY_START + 8 * 3_600_000),
        "direction_extension": RecordQuery(direction="outbound", extension=extension),
        "extension_number": RecordQuery(extension=extension, number_prefix="+3120"),
    }


def _index_keys(query: RecordQuery) -> tuple[IndexKeys, tuple[int, int] | None, int | None]:
    """The index keys of a query, computed by the reference (not by ``segment.py``)."""
    numbers = extension = None
    prefix = query.number_prefix
    if prefix is not None and prefix[1:].isdigit():
        numbers = reference.number_key_range(prefix[1:])
    if query.extension is not None:
        extension = reference.extension_key(query.extension)
    keys = IndexKeys(
        None if numbers is None else (numbers[0].to_bytes(8, "big"), numbers[1].to_bytes(8, "big")),
        None if extension is None else extension.to_bytes(4, "big"),
    )
    return keys, numbers, extension


async def _check_day(
    redis: Any, tenant: str, day: int, records: list[CallRecord], filters: dict[str, RecordQuery]
) -> None:
    """The stored day, read by the reference, holds exactly ``records`` and the index
    entries they make; the read script counts what the reference counts."""
    segment = await redis.get(segment_key(tenant, day))
    index = await redis.get(day_index_key(tenant, day))
    sealed = reference.read_sealed_day(segment, index)
    want = sorted(
        (orjson.loads(codec.row(r.id, codec.encode(r))) for r in records),
        key=lambda row: (row[1], row[0]),
    )
    assert sealed.rows() == want
    assert (sealed.numbers, sealed.extensions) == reference.entries_of(sealed.chunks)
    for query in filters.values():
        keys, numbers, extension = _index_keys(query)
        if numbers is None and extension is None:
            continue
        reply = await read_day_count(tenant, day, keys).run(redis)
        if numbers is not None:
            assert int(reply[3]) == sealed.count_numbers(*numbers), query
        if extension is not None:
            assert int(reply[4]) == sealed.count_extension(extension), query


async def _check_every_filter(
    reader: RecordReader,
    tenant: str,
    records: list[CallRecord],
    filters: dict[str, RecordQuery],
    page_limit: int,
) -> None:
    for name, query in filters.items():
        want = [r.id for r in expected(records, query)]
        # Sparse filters in pages of at most 100: their index reads stop part-way.
        limit = page_limit if len(want) > 10 * page_limit else min(page_limit, 100)
        found, _ = await all_pages(reader, tenant, query, limit=limit, max_pages=100_000)
        assert [r.id for r in found] == want, f"{name}: pages"
        streamed = [
            row[0] async for rows in reader.stream_rows(tenant, query, now_ms=NOW) for row in rows
        ]
        assert streamed == want, f"{name}: stream"


async def test_a_call_centres_busiest_day_reads_back_exactly(single_redis: Any) -> None:
    redis = single_redis
    tenant = new_tenant()
    rng = random.Random(22)
    records = synthetic_records(tenant, BIG_DAY_RECORDS, DAY_START + DAY, rng, span_ms=DAY)
    records += _odd_ones(tenant, rng, 600)
    writer = RecordWriter(redis, retention_ms=RETENTION)
    for start in range(0, len(records), 10_000):
        await writer.write_batch(records[start : start + 10_000], NOW)
    # Four installs, each merged into the day the earlier ones left.
    stats = await sealer.seal_tenant(
        redis, tenant, now_ms=NOW, retention_ms=RETENTION, budget=10**9, everything=True,
        per_install=40_000,
    )  # fmt: skip
    assert stats.sealed == len(records)
    day = DAY_START // DAY
    raw = await redis.getrange(segment_key(tenant, day), 0, 17)
    chunks = int.from_bytes(raw[10:14], "big")
    assert chunks > 128 * 32, "the day must need more than 128 directory fences"

    sample = records[len(records) // 2]
    ours = sample.destination if sample.direction == "inbound" else sample.source
    filters = _filters(sample.extension, ours)
    await _check_day(redis, tenant, day, records, filters)
    reader = RecordReader(redis, retention_ms=RETENTION, cursor_secret=SECRET)
    await _check_every_filter(reader, tenant, records, filters, page_limit=1_000)
    for record in rng.sample(records, 300):
        assert await reader.get(tenant, record.id) == record


_RECORD = st.tuples(
    st.integers(0, 2 * 24 * 60 - 1),  # minute of the two days
    st.sampled_from(["201", "202", "ü-7", ""]),
    st.sampled_from(["+31201000001", "+31201000002", "+442079460000", "anonymous"]),
    st.booleans(),  # inbound
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    first=st.lists(_RECORD, min_size=60, max_size=300),
    changes=st.lists(st.tuples(st.integers(0, 299), _RECORD), max_size=30),
    seal_again=st.booleans(),
    limit=st.integers(1, 40),
)
async def test_any_small_mix_of_tiers_reads_back_exactly(
    single_redis: Any,
    first: list[tuple[int, str, str, bool]],
    changes: list[tuple[int, tuple[int, str, str, bool]]],
    seal_again: bool,
    limit: int,
) -> None:
    """Records sealed into two days, then some replaced (other start, other fields: hot
    copies and tombstones over the sealed ones), maybe sealed again: every filter's pages
    and stream equal brute force, and each stored day is what the reference reads."""
    redis = single_redis
    tenant = new_tenant()

    def build(n: int, spec: tuple[int, str, str, bool], phase: int) -> CallRecord:
        """Record ``n``; a later ``phase`` ends later, so it is the newer version."""
        minute, extension, theirs, inbound = spec
        record = make_record(tenant, 0 if inbound else 1, call_id=f"call-{n}")
        started = DAY_START - DAY + 60_000 * minute
        ended = DAY_START + 2 * DAY + phase
        record = replace(record, started_at_ms=started, answered_at_ms=None, ended_at_ms=ended)
        record = replace(record, extension=extension)
        if inbound:
            return replace(record, source=theirs)
        return replace(record, destination=theirs)

    writer = RecordWriter(redis, retention_ms=RETENTION)
    records = [build(n, spec, 0) for n, spec in enumerate(first)]
    await writer.write_batch(records, NOW)
    await seal_all(redis, tenant)
    later = [build(n, spec, 1) for n, spec in changes if n < len(first)]
    if later:
        await writer.write_batch(later, NOW)
    if seal_again:
        await seal_all(redis, tenant)
    final = {r.id: r for r in records + later}
    reader = RecordReader(redis, retention_ms=RETENTION, cursor_secret=SECRET)
    filters = _filters("201", "+31201000001")
    await _check_every_filter(reader, tenant, list(final.values()), filters, page_limit=limit)
    if seal_again:
        for day in {r.started_at_ms // DAY for r in final.values()}:
            day_records = [r for r in final.values() if r.started_at_ms // DAY == day]
            await _check_day(redis, tenant, day, day_records, filters)
