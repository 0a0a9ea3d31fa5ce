"""The Redis store against a real single Redis and a real 3-master Redis Cluster.

Every test that writes runs twice: with its records left in the hot tier, and with them
sealed into day segments (``tier``) before they are read, replaced, trimmed or swept.
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest

from cdrstream.store import reader as reader_module
from cdrstream.store.cursor import InvalidCursor
from cdrstream.store.layout import TENANTS_KEY, hot_key, meta_key
from cdrstream.store.reader import Page, RecordQuery, RecordReader
from cdrstream.store.scripts import IndexRead, read_day_index
from cdrstream.store.sweeper import count_in_window, sweep_expired
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


Settle = Callable[[str], Awaitable[None]]


@pytest.fixture(params=["hot", "sealed"])
def settle(request: pytest.FixtureRequest, redis: Any) -> Settle:
    """Moves a tenant's records to the tier under test (nothing to do for "hot")."""

    async def to_tier(tenant: str) -> None:
        if request.param == "sealed":
            await seal_all(redis, tenant)

    return to_tier


@pytest.fixture
def reader(redis: Any) -> RecordReader:
    return RecordReader(redis, retention_ms=RETENTION, cursor_secret=SECRET)


# -- write and read back --------------------------------------------------------------------


async def test_every_field_round_trips(
    writer: RecordWriter, reader: RecordReader, settle: Settle
) -> None:
    tenant = new_tenant()
    records = [
        make_record(tenant, 0),
        make_record(tenant, 1, answered_at_ms=None, disposition=None, duration=0),
        make_record(
            tenant,
            2,
            source="anonymous",
            source_raw='"Zoë Ünïcode" <sip:anonymous@invalid>',
            destination_raw="tel:+31 20 100 0002 ☎",
            call_id="ĉall-ïd-😀-" + "x" * 40,
            extension="0",
            disposition="busy",
        ),
        make_record(tenant, 3, disposition="something_new", extension="", source="+0012"),
        make_record(tenant, 4, direction="outbound", destination="+999999999999999"),
    ]
    assert await writer.write_batch(records, NOW) == ["stored"] * len(records)
    await settle(tenant)
    for record in records:
        assert await reader.get(tenant, record.id) == record
    page = await reader.page(tenant, RecordQuery(), limit=10, cursor=None, now_ms=NOW)
    assert page.records == expected(records, RecordQuery())
    assert page.next_cursor is None
    assert await reader.get(tenant, "no-such-id") is None
    assert await assert_indexes_consistent(writer._redis, tenant, reader) == len(records)


async def test_replayed_batch_is_all_duplicate(
    redis: Any, writer: RecordWriter, reader: RecordReader, settle: Settle
) -> None:
    tenant = new_tenant()
    records = [make_record(tenant, n) for n in range(50)]
    assert await writer.write_batch(records, NOW) == ["stored"] * 50
    await settle(tenant)
    assert await writer.write_batch(records, NOW) == ["duplicate"] * 50
    assert await writer.write_batch(records[10:20], NOW + 1000) == ["duplicate"] * 10
    await settle(tenant)
    assert len(await stored_records(redis, tenant)) == 50
    assert await assert_indexes_consistent(redis, tenant, reader) == 50
    assert tenant.encode() in await redis.smembers(TENANTS_KEY)


async def test_changed_record_replaces_it_and_its_index_entries(
    redis: Any, writer: RecordWriter, reader: RecordReader, settle: Settle
) -> None:
    tenant = new_tenant()
    old = make_record(tenant, 0, extension="251", source="+31611111111", destination="+3120555")
    other = make_record(tenant, 1)
    await writer.write_batch([old, other], NOW)
    await settle(tenant)
    new = replace(
        old,
        extension="252",
        source="+31622222222",
        destination="+3120666",
        started_at_ms=old.started_at_ms - 3 * 3_600_000,
        duration=61,
    )
    assert await writer.write_batch([new], NOW) == ["stored"]
    assert await reader.get(tenant, old.id) == new

    async def ids(query: RecordQuery) -> list[str]:
        found, _ = await all_pages(reader, tenant, query, limit=10)
        return [r.id for r in found]

    assert await ids(RecordQuery(extension="251")) == []
    assert await ids(RecordQuery(extension="252")) == [new.id]
    assert await ids(RecordQuery(number_prefix="+31611111111")) == []
    assert await ids(RecordQuery(number_prefix="+3120555")) == []
    assert await ids(RecordQuery(number_prefix="+31622222222")) == [new.id]
    assert await ids(RecordQuery()) == [r.id for r in expected([other, new], RecordQuery())]
    window = RecordQuery(from_ms=old.started_at_ms, to_ms=old.started_at_ms + 1)
    assert await ids(window) == []
    assert await assert_indexes_consistent(redis, tenant, reader) == 2
    # Changing only a field that no index holds keeps the index entries.
    assert await writer.write_batch([replace(new, duration=62)], NOW) == ["stored"]
    assert await assert_indexes_consistent(redis, tenant, reader) == 2
    await settle(tenant)  # sealing again applies the changes to the day segments
    assert await ids(RecordQuery(extension="252")) == [new.id]
    assert (await reader.get(tenant, old.id)) == replace(new, duration=62)
    assert await assert_indexes_consistent(redis, tenant, reader) == 2


async def test_replacing_and_trimming_odd_values_leaves_no_index_entry(
    redis: Any, writer: RecordWriter, reader: RecordReader, settle: Settle
) -> None:
    # The write script gets new members from Python and rebuilds old ones in Lua: both
    # must agree for every kind of value, or replaced/trimmed records leave orphans.
    tenant = new_tenant()
    odd = [
        {"extension": "a\x00b", "source": "+0123", "destination": "+0123"},
        {"extension": "é☎", "source": "+1234567890123456", "destination": "anonymous"},
        {"extension": "", "source": "+999999999999999", "destination": "+1"},
        {"extension": "0", "source": "+", "destination": "+31 20"},
        {"extension": "42", "source": "+31201234567", "destination": "+31201234567"},
    ]
    records = [make_record(tenant, n, **changes) for n, changes in enumerate(odd)]
    await writer.write_batch(records, NOW)
    await settle(tenant)
    assert await assert_indexes_consistent(redis, tenant, reader) == len(records)
    changed = [replace(r, extension="9", started_at_ms=r.started_at_ms - 1) for r in records]
    assert await writer.write_batch(changed, NOW) == ["stored"] * len(records)
    assert await assert_indexes_consistent(redis, tenant, reader) == len(records)
    await settle(tenant)
    restored = await writer.write_batch(records, NOW)
    assert restored == ["stored"] * len(records)
    await settle(tenant)
    for record in records:
        page = await reader.page(
            tenant, RecordQuery(extension=record.extension), limit=5, cursor=None, now_ms=NOW
        )
        assert [r.id for r in page.records] == [record.id]
    # An extension whose NUL is stored as 0x01 does not find the one spelled with 0x01.
    twin = make_record(tenant, 50, extension="a\x01b")
    await writer.write_batch([twin], NOW)
    for ext, want in (("a\x00b", records[0].id), ("a\x01b", twin.id)):
        found, _ = await all_pages(reader, tenant, RecordQuery(extension=ext), limit=5)
        assert [r.id for r in found] == [want]
    # Everything leaves the window: at once invisible, then deleted by the sweep.
    later = NOW + RETENTION
    fresh = make_record(tenant, 99, started_at_ms=NOW + 2 * DAY)
    await writer.write_batch([fresh], later)
    assert await assert_indexes_consistent(redis, tenant, reader, now_ms=later) == 1
    await sweep_expired(redis, now_ms=later + DAY + DAY // 2, retention_ms=RETENTION)
    assert set(await stored_records(redis, tenant)) == {fresh.id}


async def test_same_id_twice_in_one_batch_last_wins(
    redis: Any, writer: RecordWriter, reader: RecordReader, settle: Settle
) -> None:
    tenant = new_tenant()
    first = make_record(tenant, 0, extension="301")
    second = replace(first, extension="302", duration=99)
    assert await writer.write_batch([first, second], NOW) == ["stored", "stored"]
    await settle(tenant)
    assert await reader.get(tenant, first.id) == second
    again = make_record(tenant, 1)
    assert await writer.write_batch([again, again, second], NOW) == [
        "stored",
        "duplicate",
        "duplicate",
    ]
    assert await assert_indexes_consistent(redis, tenant, reader) == 2


async def test_batch_of_many_tenants_in_order(
    redis: Any, writer: RecordWriter, reader: RecordReader, settle: Settle
) -> None:
    tenants = [new_tenant() for _ in range(8)]
    batch = []
    for n in range(1200):  # more than one script chunk for some tenants
        batch.append(make_record(tenants[n % 2 if n < 1100 else n % 8], n))
    last = replace(batch[0], extension="999")
    results = await writer.write_batch([*batch, last], NOW)
    assert results == ["stored"] * len(batch) + ["stored"]
    for tenant in tenants:
        await settle(tenant)
    for tenant in tenants:
        mine = [r for r in [*batch, last] if r.tenant_id == tenant]
        stream = [
            r async for chunk in reader.stream(tenant, RecordQuery(), now_ms=NOW) for r in chunk
        ]
        assert stream == expected(mine, RecordQuery())
    if hasattr(redis, "get_node_from_key"):  # cluster: the tenants are spread over nodes
        nodes = {redis.get_node_from_key(hot_key(t)).name for t in tenants}
        assert len(nodes) >= 2


async def test_scripts_reload_after_script_flush(
    redis: Any, writer: RecordWriter, reader: RecordReader
) -> None:
    tenant = new_tenant()
    await writer.write_batch([make_record(tenant, 0)], NOW)
    await redis.script_flush()
    records = [make_record(tenant, n) for n in range(1, 4)]
    assert await writer.write_batch(records, NOW) == ["stored"] * 3
    await redis.script_flush()
    assert await seal_all(redis, tenant) == 4
    await redis.script_flush()
    page = await reader.page(tenant, RecordQuery(), limit=10, cursor=None, now_ms=NOW)
    assert len(page.records) == 4
    await redis.script_flush()
    assert await sweep_expired(redis, now_ms=NOW, retention_ms=RETENTION) >= 0


# -- paging -----------------------------------------------------------------------------


async def test_paging_1000_records_without_gap_or_repeat(
    writer: RecordWriter, reader: RecordReader, settle: Settle
) -> None:
    tenant = new_tenant()
    # Three records share each start time, so the id decides their order.
    records = [
        make_record(tenant, n, started_at_ms=NOW - 1_000 * (n // 3) - 1) for n in range(1000)
    ]
    for start in range(0, 1000, 300):
        await writer.write_batch(records[start : start + 300], NOW)
    await settle(tenant)
    want = expected(records, RecordQuery())
    for limit in (1000, 333, 7):
        found, pages = await all_pages(reader, tenant, RecordQuery(), limit=limit)
        assert [r.id for r in found] == [r.id for r in want]
        assert all(len(p.records) == limit for p in pages[:-1])
    _, pages = await all_pages(reader, tenant, RecordQuery(), limit=500)
    assert [len(p.records) for p in pages] == [500, 500]


async def test_paging_while_records_arrive(
    writer: RecordWriter, reader: RecordReader, settle: Settle
) -> None:
    tenant = new_tenant()
    original = [make_record(tenant, n, started_at_ms=NOW - 10_000 * (n + 1)) for n in range(300)]
    await writer.write_batch(original, NOW)
    await settle(tenant)
    seen: list[str] = []
    cursor = None
    extra = 0
    for _ in range(100):
        page = await reader.page(tenant, RecordQuery(), limit=40, cursor=cursor, now_ms=NOW)
        seen += [r.id for r in page.records]
        cursor = page.next_cursor
        if cursor is None:
            break
        # Newer calls, and late ones that started in the already-read part and the rest.
        arriving = [
            make_record(tenant, 10_000 + extra, started_at_ms=NOW - 5),
            make_record(tenant, 10_001 + extra, started_at_ms=NOW - 10_000 * (extra % 300) - 5),
        ]
        extra += 2
        await writer.write_batch(arriving, NOW)
    assert len(seen) == len(set(seen))
    assert {r.id for r in original} <= set(seen)


async def test_cursor_is_bound_to_tenant_and_query(
    writer: RecordWriter, reader: RecordReader
) -> None:
    tenant, other = new_tenant(), new_tenant()
    await writer.write_batch([make_record(tenant, n) for n in range(5)], NOW)
    await writer.write_batch([make_record(other, n) for n in range(5)], NOW)
    query = RecordQuery(direction="inbound")
    page = await reader.page(tenant, query, limit=1, cursor=None, now_ms=NOW)
    cursor = page.next_cursor
    assert cursor is not None
    follow = await reader.page(tenant, query, limit=1, cursor=cursor, now_ms=NOW)
    assert follow.records and follow.records[0].id != page.records[0].id
    bad = [
        cursor[:-1] + ("A" if cursor[-1] != "A" else "B"),
        cursor[:10] + ("x" if cursor[10] != "x" else "y") + cursor[11:],
        cursor + "A",
        "",
        "not a cursor!",
        "AAAA",
    ]
    for candidate in bad:
        with pytest.raises(InvalidCursor):
            await reader.page(tenant, query, limit=1, cursor=candidate, now_ms=NOW)
    with pytest.raises(InvalidCursor):
        await reader.page(other, query, limit=1, cursor=cursor, now_ms=NOW)
    for changed in (RecordQuery(), RecordQuery(direction="outbound"), replace(query, to_ms=NOW)):
        with pytest.raises(InvalidCursor):
            await reader.page(tenant, changed, limit=1, cursor=cursor, now_ms=NOW)
    stranger = RecordReader(writer._redis, retention_ms=RETENTION, cursor_secret=b"other")
    with pytest.raises(InvalidCursor):
        await stranger.page(tenant, query, limit=1, cursor=cursor, now_ms=NOW)


async def test_sparse_filter_pages_make_progress(
    monkeypatch: pytest.MonkeyPatch, writer: RecordWriter, reader: RecordReader, settle: Settle
) -> None:
    monkeypatch.setattr(reader_module, "MAX_SCAN", 60)
    tenant = new_tenant()
    records = [make_record(tenant, n, direction="outbound") for n in range(600)]
    for n in (5, 170, 171, 400, 599):
        records[n] = replace(records[n], direction="inbound")
    await writer.write_batch(records, NOW)
    await settle(tenant)
    query = RecordQuery(direction="inbound")
    found, pages = await all_pages(reader, tenant, query, limit=3)
    assert [r.id for r in found] == [r.id for r in expected(records, query)]
    assert len(pages) > 5  # the bound was hit: short pages with cursors
    assert any(not p.records and p.next_cursor for p in pages)


# -- filters ----------------------------------------------------------------------------


@pytest.fixture
async def filter_tenant(writer: RecordWriter, settle: Settle) -> tuple[str, list[Any]]:
    tenant = new_tenant()
    records = [make_record(tenant, n) for n in range(400)]
    # A few calls with a rare foreign number (few matches: the sparse plan).
    for n in (3, 77, 150, 151, 398):
        records[n] = replace(records[n], source="+442071234567", source_raw="+44 20 7123 4567")
    records[200] = replace(records[200], destination="+442079999999", source="+442071234567")
    records[201] = replace(records[201], source="anonymous", source_raw="", extension="0")
    await writer.write_batch(records, NOW)
    await settle(tenant)
    return tenant, records


QUERIES = [
    RecordQuery(),
    RecordQuery(direction="inbound"),
    RecordQuery(direction="outbound"),
    RecordQuery(extension="203"),
    RecordQuery(extension="0"),
    RecordQuery(extension="no-such"),
    RecordQuery(number_prefix="+3120"),  # dense prefix: walks the time index
    RecordQuery(number_prefix="+31201000007"),  # one number, many calls: its own range
    RecordQuery(number_prefix="+316100000"),  # a prefix of a few numbers: sparse
    RecordQuery(number_prefix="+44"),  # rare prefix: sparse
    RecordQuery(number_prefix="+442071234567"),
    RecordQuery(number_prefix="+4420799"),
    RecordQuery(number_prefix="+1"),
    RecordQuery(number_prefix="anon"),  # not an E.164 prefix: tested on every record
    RecordQuery(number_prefix="+"),
    RecordQuery(direction="inbound", extension="204"),
    RecordQuery(extension="204", number_prefix="+3120"),
    RecordQuery(extension="202", number_prefix="+31201000016"),
    RecordQuery(extension="200", number_prefix="+44"),
    RecordQuery(direction="outbound", number_prefix="+44"),
    RecordQuery(from_ms=NOW - 60_000 * 100, to_ms=NOW - 60_000 * 50),
    RecordQuery(from_ms=NOW - 60_000 * 100, to_ms=NOW - 60_000 * 100),
    RecordQuery(from_ms=NOW - 60_000 * 30, number_prefix="+44"),
    RecordQuery(to_ms=NOW - 60_000 * 390, extension="201"),
    RecordQuery(from_ms=NOW + 1),
]


@pytest.mark.parametrize("index_max", [reader_module.INDEX_MAX, 20])
@pytest.mark.parametrize("query", QUERIES, ids=[str(i) for i in range(len(QUERIES))])
async def test_filters(
    monkeypatch: pytest.MonkeyPatch,
    filter_tenant: tuple[str, list[Any]],
    reader: RecordReader,
    query: RecordQuery,
    index_max: int,
) -> None:
    # With a low INDEX_MAX the sealed days of most queries are walked, not indexed.
    monkeypatch.setattr(reader_module, "INDEX_MAX", index_max)
    tenant, records = filter_tenant
    want = [r.id for r in expected(records, query)]
    for limit in (1000, 9):
        found, _ = await all_pages(reader, tenant, query, limit=limit)
        assert [r.id for r in found] == want
    streamed = [
        r async for chunk in reader.stream(tenant, query, now_ms=NOW, chunk=50) for r in chunk
    ]
    assert [r.id for r in streamed] == want


async def test_from_is_inclusive_and_to_exclusive(
    writer: RecordWriter, reader: RecordReader, settle: Settle
) -> None:
    tenant = new_tenant()
    at = NOW - DAY
    records = [make_record(tenant, n, started_at_ms=at + n - 1) for n in range(3)]
    await writer.write_batch(records, NOW)
    await settle(tenant)

    async def started(query: RecordQuery) -> list[int]:
        page = await reader.page(tenant, query, limit=10, cursor=None, now_ms=NOW)
        return [r.started_at_ms for r in page.records]

    assert await started(RecordQuery(from_ms=at, to_ms=at + 1)) == [at]
    assert await started(RecordQuery(from_ms=at)) == [at + 1, at]
    assert await started(RecordQuery(to_ms=at)) == [at - 1]
    assert await started(RecordQuery(from_ms=at - 1, to_ms=at + 2)) == [at + 1, at, at - 1]


async def test_plans_cover_each_strategy(
    redis: Any, writer: RecordWriter, reader: RecordReader
) -> None:
    # One sealed day: 400 records, ~14 % per extension, every record has a +3120 number.
    tenant = new_tenant()
    day_start = (NOW // DAY - 1) * DAY
    records = [make_record(tenant, n, started_at_ms=day_start + 60_000 * n) for n in range(400)]
    for n in (3, 77, 150):
        records[n] = replace(records[n], source="+442071234567")
    await writer.write_batch(records, NOW)
    await seal_all(redis, tenant)
    day = NOW // DAY - 1

    async def mode(query: RecordQuery, most_entries: int = reader_module.INDEX_MAX) -> str:
        """How the day is read for ``query``: through its index, or walked."""
        plan = await reader._plan(tenant, query, NOW - RETENTION, (NOW, ""))
        if plan.mode(day) == "walk":
            return "walk"
        read = IndexRead(
            plan.keys, NOW, 0, most_refs=101, most_chunks=101, walk_chunks=10,
            most_entries=most_entries, most_share=reader_module.INDEX_SHARE,
        )  # fmt: skip
        reply = await read_day_index(tenant, day, read).run(redis)
        return {b"i": "index", b"w": "walk"}[reply[3]]

    assert await mode(RecordQuery()) == "walk"
    assert await mode(RecordQuery(direction="inbound")) == "walk"
    assert await mode(RecordQuery(number_prefix="+3120")) == "walk"  # dense: walk and filter
    assert await mode(RecordQuery(number_prefix="+44")) == "index"
    assert await mode(RecordQuery(number_prefix="+31201000007")) == "index"
    assert await mode(RecordQuery(extension="204")) == "index"
    assert await mode(RecordQuery(extension="204", number_prefix="+3120")) == "index"
    assert await mode(RecordQuery(number_prefix="anon")) == "walk"  # not an E.164 prefix
    # One key (an extension: 57 entries; a whole number: 8) is read backwards from the
    # bound whatever its count; a range of several keys (10 numbers, 80 entries) is read
    # whole, so over "most entries" the day is walked.
    assert await mode(RecordQuery(extension="204"), most_entries=20) == "index"
    assert await mode(RecordQuery(number_prefix="+31201000007"), most_entries=5) == "index"
    assert await mode(RecordQuery(number_prefix="+3120100001"), most_entries=20) == "walk"
    assert await mode(RecordQuery(number_prefix="+3120100001"), most_entries=80) == "index"
    for query in (RecordQuery(number_prefix="+44"), RecordQuery(extension="204")):
        found, _ = await all_pages(reader, tenant, query, limit=7)
        assert [r.id for r in found] == [r.id for r in expected(records, query)]


# -- the window -------------------------------------------------------------------------


async def test_window_hides_and_removes_expired_records(
    redis: Any, writer: RecordWriter, reader: RecordReader, settle: Settle
) -> None:
    tenant = new_tenant()
    old = [make_record(tenant, n, started_at_ms=NOW - RETENTION + 1_000 * n) for n in range(1, 6)]
    young = [make_record(tenant, n) for n in range(10, 15)]
    await writer.write_batch([*old, *young], NOW)
    await settle(tenant)
    later = NOW + 3_500  # records 1..3 are now out of the window, 4 and 5 still in
    query = RecordQuery()
    found, _ = await all_pages(reader, tenant, query, limit=2, now_ms=later)
    assert [r.id for r in found] == [r.id for r in expected([*old, *young], query, later)]
    assert len(found) == 7
    stream = [r async for c in reader.stream(tenant, query, now_ms=later) for r in c]
    assert len(stream) == 7
    assert await count_in_window(redis, now_ms=later, retention_ms=RETENTION) >= 7

    await sweep_expired(redis, now_ms=later, retention_ms=RETENTION)
    for record in old[:3]:
        assert await reader.get(tenant, record.id) is None
    assert await assert_indexes_consistent(redis, tenant, reader, now_ms=later) == 7

    # Trim on write: the next batch of the tenant hides what left the window since.
    await writer.write_batch([make_record(tenant, 20)], NOW + 10_000)
    assert await reader.get(tenant, old[3].id) is None
    assert await assert_indexes_consistent(redis, tenant, reader, now_ms=NOW + 10_000) == 6
    assert await redis.pttl(meta_key(tenant)) > RETENTION
    assert await redis.pttl(hot_key(tenant)) > RETENTION

    # A day that has wholly left the window is deleted, with its records' id-map entries.
    await sweep_expired(redis, now_ms=NOW + 3 * DAY, retention_ms=RETENTION)
    left = await stored_records(redis, tenant)
    assert sorted(left) == sorted(r.id for r in [*young, make_record(tenant, 20)])


async def test_record_already_out_of_the_window_is_not_stored(
    redis: Any, writer: RecordWriter, reader: RecordReader, settle: Settle
) -> None:
    tenant = new_tenant()
    stale = make_record(tenant, 0, started_at_ms=NOW - RETENTION - 1)
    fresh = make_record(tenant, 1)
    assert await writer.write_batch([stale, fresh], NOW) == ["duplicate", "stored"]
    await settle(tenant)
    assert await reader.get(tenant, stale.id) is None
    # A stored record whose new version moved out of the window goes away.
    moved = replace(fresh, started_at_ms=NOW - RETENTION - 5)
    assert await writer.write_batch([moved], NOW) == ["duplicate"]
    assert await reader.get(tenant, fresh.id) is None
    assert await all_pages(reader, tenant, RecordQuery(), limit=5) == ([], [Page([], None)])
    assert await assert_indexes_consistent(redis, tenant, reader) == 0
    await settle(tenant)
    assert await assert_indexes_consistent(redis, tenant, reader) == 0


async def test_count_in_window_counts_every_tenant(
    request: pytest.FixtureRequest, redis: Any, writer: RecordWriter, settle: Settle
) -> None:
    # Far in the future (and apart for each variant), so only this test's tenants are
    # inside the window.
    at = NOW + (1_000 + zlib.crc32(request.node.name.encode()) % 997) * DAY
    tenants = [new_tenant() for _ in range(4)]
    for i, tenant in enumerate(tenants):
        records = [make_record(tenant, n, started_at_ms=at - 1_000 * n) for n in range(i + 2)]
        await writer.write_batch(records, at)
        await settle(tenant)
    assert await count_in_window(redis, now_ms=at + 1, retention_ms=10_000) == 2 + 3 + 4 + 5
    assert await count_in_window(redis, now_ms=at + 1, retention_ms=2_000) == 4 * 2
    await sweep_expired(redis, now_ms=at + 1, retention_ms=2_000)
    assert await count_in_window(redis, now_ms=at + 1, retention_ms=10_000) == 4 * 2


# -- the export stream ------------------------------------------------------------------


async def test_stream_returns_every_record_once_newest_first(
    writer: RecordWriter, reader: RecordReader, settle: Settle
) -> None:
    tenant = new_tenant()
    records = [make_record(tenant, n, started_at_ms=NOW - 500 * (n // 2) - 1) for n in range(2_500)]
    await writer.write_batch(records, NOW)
    await settle(tenant)
    for query in (RecordQuery(), RecordQuery(direction="outbound", extension="205")):
        want = [r.id for r in expected(records, query)]
        for chunk in (2000, 333):
            chunks = [c async for c in reader.stream(tenant, query, now_ms=NOW, chunk=chunk)]
            assert all(0 < len(c) <= chunk for c in chunks)
            assert all(len(c) == chunk for c in chunks[:-1])
            assert [r.id for c in chunks for r in c] == want
    assert [c async for c in reader.stream(new_tenant(), RecordQuery(), now_ms=NOW)] == []


async def test_stream_stopped_early_leaves_the_client_usable(
    writer: RecordWriter, reader: RecordReader, settle: Settle
) -> None:
    tenant = new_tenant()
    records = [make_record(tenant, n) for n in range(1_000)]
    await writer.write_batch(records, NOW)
    await settle(tenant)
    chunks = reader.stream(tenant, RecordQuery(), now_ms=NOW, chunk=100)
    first = await anext(chunks)  # a client that goes away after the first chunk
    await chunks.aclose()  # type: ignore[attr-defined]
    assert [r.id for r in first] == [r.id for r in expected(records, RecordQuery())[:100]]
    page = await reader.page(tenant, RecordQuery(), limit=5, cursor=None, now_ms=NOW)
    assert len(page.records) == 5
