"""Helpers of the store tests: record factories, a pure oracle of queries, tier checks."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import orjson

from cdrstream.core.record import CallRecord, record_id
from cdrstream.core.versions import Version
from cdrstream.store import codec, segment
from cdrstream.store.layout import (
    bucket_key,
    bucket_of,
    day_index_key,
    day_of,
    days_key,
    hot_key,
    hot_time_key,
    id_key,
    id_value,
    meta_key,
    segment_key,
    start_bytes,
    tombstones_key,
)
from cdrstream.store.reader import Page, RecordQuery, RecordReader
from cdrstream.store.sealer import seal_tenant

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


async def seal_all(redis: Any, tenant: str, now_ms: int = NOW) -> int:
    """Seal every hot record of ``tenant`` (whatever its age); how many were sealed."""
    stats = await seal_tenant(
        redis, tenant, now_ms=now_ms, retention_ms=RETENTION, budget=10**9, everything=True
    )
    return stats.sealed


def _as_dict(value: Any) -> dict[bytes, bytes]:
    if isinstance(value, dict):
        return value
    return dict(zip(value[::2], value[1::2], strict=True))


async def stored_records(redis: Any, tenant: str) -> dict[str, CallRecord]:
    """Every current record of ``tenant``, read tier by tier (not through the reader),
    after checking the tiers against each other:

    - the hot time index holds exactly ``S6 + id`` of each hot record;
    - each sealed day's chunks are in (start, id) order and do not overlap, their
      directory matches their rows, the day's count is right, and its index holds exactly
      the entries its rows make;
    - no id is current twice (a sealed row is stale when tombstoned or when the id is hot);
    - the id map holds exactly the current hot and sealed records (start and digest), its
      buckets are listpacks, and its count ``n`` is right.
    """
    meta = _as_dict(await redis.hgetall(meta_key(tenant)))
    level, split = int(meta.get(b"level", 0)), int(meta.get(b"split", 0))
    entries: dict[bytes, bytes] = {}
    for bucket in range(2**level + split):
        key = bucket_key(tenant, bucket)
        found = _as_dict(await redis.hgetall(key))
        for key8 in found:
            assert bucket_of(key8, level, split) == bucket, (bucket, key8)
        if found:
            assert await redis.object("encoding", key) == b"listpack", key
        entries.update(found)
    assert int(meta.get(b"ids", 0)) == len(entries)

    current: dict[str, tuple[int, bytes]] = {}  # id -> (start, payload)
    hot = {k.decode(): v for k, v in _as_dict(await redis.hgetall(hot_key(tenant))).items()}
    members = set(await redis.zrange(hot_time_key(tenant), 0, -1))
    want_members = set()
    for rid, payload in hot.items():
        started = orjson.loads(payload)[0]
        want_members.add(start_bytes(started) + rid.encode())
        current[rid] = (started, payload)
    assert members == want_members

    dead = {
        (int.from_bytes(k[:6], "big"), k[6:].decode())
        for k in _as_dict(await redis.hgetall(tombstones_key(tenant)))
    }
    days = {int(k): int(v) for k, v in _as_dict(await redis.hgetall(days_key(tenant))).items()}
    for day, count in days.items():
        raw = await redis.get(segment_key(tenant, day))
        index = await redis.get(day_index_key(tenant, day))
        parsed = segment.Segment.parse(raw)
        assert parsed.count == count
        last_key = None
        rows_by_chunk = []
        for number, chunk in enumerate(parsed.chunks):
            rows = segment.chunk_rows(chunk.data)
            keys = [r.key for r in rows]
            assert keys == sorted(keys) and len(rows) == chunk.rows
            assert (chunk.oldest, chunk.newest) == (rows[0].started, rows[-1].started)
            assert last_key is None or last_key < keys[0]
            last_key = keys[-1]
            rows_by_chunk.append((number, rows))
            for r in rows:
                assert day_of(r.started) == day
                if r.key in dead or r.id in hot:
                    continue
                assert r.id not in current, f"{r.id} current twice"
                payload = b"[" + r.line[len(orjson.dumps(r.id)) + 2 :]
                current[r.id] = (r.started, payload)
        numbers, extensions = segment._entries(rows_by_chunk)
        assert index == segment.encode_index(numbers, extensions), f"index of day {day}"

    no_version = Version(0, 0)
    want_entries = {
        id_key(rid): id_value(started, p, no_version)[:12] for rid, (started, p) in current.items()
    }
    # An id-map value goes on with the record's version and extra bytes a feature keeps
    # (the summary contribution): where and what the record is come first.
    assert {k: v[:12] for k, v in entries.items()} == want_entries

    return {rid: codec.decode(tenant, rid, p) for rid, (_, p) in current.items()}


async def assert_indexes_consistent(
    redis: Any, tenant: str, reader: RecordReader, now_ms: int | None = None
) -> int:
    """The tiers agree (``stored_records``) and ``reader.get`` finds every record as
    stored; the number of records (that started at or after ``now_ms - RETENTION``)."""
    records = await stored_records(redis, tenant)
    watermark = int((await redis.hget(meta_key(tenant), "watermark")) or 0)
    count = 0
    for rid, record in records.items():
        got = await reader.get(tenant, rid)
        if record.started_at_ms < watermark:
            assert got is None
        else:
            assert got == record
        if now_ms is None or record.started_at_ms >= now_ms - RETENTION:
            count += 1
    return count
