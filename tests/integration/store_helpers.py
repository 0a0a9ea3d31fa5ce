"""Helpers of the store tests: record factories, a pure oracle of queries, index checks."""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from typing import Any

from cdrstream.core.record import CallRecord, record_id
from cdrstream.store.layout import (
    extension_key,
    extension_prefix,
    number_key,
    records_key,
    s6,
    time_key,
)
from cdrstream.store.reader import Page, RecordQuery, RecordReader

NOW = 1_800_000_000_000
DAY = 86_400_000
RETENTION = 30 * DAY
SECRET = b"store-test-secret"


def new_tenant() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def make_record(tenant: str, n: int, **changes: Any) -> CallRecord:
    """A realistic record; ``n`` spreads start times a minute apart, newest for n = 0."""
    call_id = changes.pop("call_id", f"{uuid.UUID(int=n + 1)}@pbx.example.net")
    started = changes.pop("started_at_ms", NOW - 60_000 * (n + 1))
    inbound = n % 2 == 0
    ours = f"+312010{n % 50:05d}"
    theirs = f"+3161{n:07d}"
    record = CallRecord(
        id=record_id(tenant, call_id),
        tenant_id=tenant,
        call_id=call_id,
        started_at_ms=started,
        answered_at_ms=started + 3_000,
        ended_at_ms=started + 63_000,
        duration=60,
        source=theirs if inbound else ours,
        source_raw=theirs if inbound else f"sip:{ours}@pbx.example.net",
        destination=ours if inbound else theirs,
        destination_raw=ours if inbound else "0" + theirs[3:],
        extension=str(200 + n % 7),
        direction="inbound" if inbound else "outbound",
        disposition="answered",
    )
    return replace(record, **changes)


def matches(record: CallRecord, query: RecordQuery, now_ms: int) -> bool:
    lo = now_ms - RETENTION
    if query.from_ms is not None:
        lo = max(lo, query.from_ms)
    if record.started_at_ms < lo:
        return False
    if query.to_ms is not None and record.started_at_ms >= query.to_ms:
        return False
    if query.direction is not None and record.direction != query.direction:
        return False
    if query.extension is not None and record.extension != query.extension:
        return False
    prefix = query.number_prefix
    return (
        prefix is None or record.source.startswith(prefix) or record.destination.startswith(prefix)
    )


def expected(records: list[CallRecord], query: RecordQuery, now_ms: int = NOW) -> list[CallRecord]:
    """What a query must answer over ``records`` (written in order; last version wins)."""
    latest: dict[str, CallRecord] = {}
    for record in records:
        latest[record.id] = record
    found = [r for r in latest.values() if matches(r, query, now_ms)]
    return sorted(found, key=lambda r: (r.started_at_ms, r.id), reverse=True)


async def all_pages(
    reader: RecordReader,
    tenant: str,
    query: RecordQuery,
    *,
    limit: int,
    now_ms: int = NOW,
    max_pages: int = 10_000,
) -> tuple[list[CallRecord], list[Page]]:
    """Follow cursors to the end; every record and every page."""
    pages: list[Page] = []
    cursor: str | None = None
    for _ in range(max_pages):
        page = await reader.page(tenant, query, limit=limit, cursor=cursor, now_ms=now_ms)
        assert len(page.records) <= limit
        pages.append(page)
        cursor = page.next_cursor
        if cursor is None:
            return [r for p in pages for r in p.records], pages
    raise AssertionError("paging did not end")


_INDEXED = re.compile(r"\+[0-9]+")


def expected_members(record: CallRecord) -> dict[str, set[bytes]]:
    """The index members a stored record must have (the layout of ``layout.py``)."""
    tenant = record.tenant_id
    tail = s6(record.started_at_ms) + record.id.encode()
    numbers = set()
    for number in (record.source, record.destination):
        if _INDEXED.fullmatch(number):
            numbers.add(number[1:].encode() + b"\x00" + tail)
    return {
        time_key(tenant): {tail},
        extension_key(tenant): {extension_prefix(record.extension) + tail},
        number_key(tenant): numbers,
    }


async def assert_indexes_consistent(redis: Any, tenant: str, reader: RecordReader) -> int:
    """Every index holds exactly the members of the stored records; the record count."""
    ids = [i.decode() for i in await redis.hkeys(records_key(tenant))]
    want: dict[str, set[bytes]] = {time_key(tenant): set(), extension_key(tenant): set()}
    want[number_key(tenant)] = set()
    for rid in ids:
        record = await reader.get(tenant, rid)
        assert record is not None
        for key, members in expected_members(record).items():
            want[key] |= members
    for key, members in want.items():
        assert set(await redis.zrange(key, 0, -1)) == members, key
    return len(ids)
