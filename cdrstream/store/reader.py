"""The read path: pages (newest first, signed cursors), the full export stream, get by id.

Every query runs one *plan*, a stream of candidate records in the order
(started_at desc, id desc), filtered in Python by whatever the plan's index does not
already guarantee (``_Filter``):

- ``walk``: a lex range of one index, walked newest first in chunks by one read-only
  script per chunk (members + their records in one round trip). Used with the time index
  (no filter, direction only, a dense number prefix), the extension index, and the number
  index for a single number (its members are in time order). The cursor and
  ``from``/``to`` are exact lex bounds, so a page costs O(log N + scanned).
- ``sparse``: for a number prefix with few matches: the (start, id) of every member of
  the prefix range (at most ``SPARSE_MAX``, from a read-only script that packs them into
  two bulk strings), sorted by time in Python, then the records of the page by HMGET.

The plan for a number prefix is chosen with ZLEXCOUNT (O(log N)): a single number walks
its own range; few matches go sparse; many matches walk the time index, where they are
dense. With both an extension and a number, the cheaper of the two indexes leads.

A page decodes at most ``MAX_SCAN`` records; when a sparse filter hits that bound the
page returns what it found (maybe nothing) with a cursor just past the last record it
looked at, so every request makes progress and a client following cursors always ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from cdrstream.core.record import CallRecord
from cdrstream.store import codec
from cdrstream.store.cursor import decode_cursor, encode_cursor
from cdrstream.store.layout import (
    HIGH,
    MAX_MS,
    NUL,
    extension_key,
    extension_prefix,
    number_digits,
    number_key,
    records_key,
    s6,
    split_member,
    time_key,
)
from cdrstream.store.scripts import FETCH, POSITIONS

#: Most records one page decodes before it answers with what it has and a cursor.
MAX_SCAN = 3_000
#: Most number-index members the sparse plan sorts in Python.
SPARSE_MAX = 3_000
#: Largest chunk of one index walk (one script call).
WALK_CHUNK_MAX = 2_000
#: A member costs about this fraction of a record to read and sort (for plan choice).
MEMBER_COST = 0.5


@dataclass(frozen=True, slots=True)
class RecordQuery:
    from_ms: int | None = None  # started_at >= from_ms
    to_ms: int | None = None  # started_at < to_ms
    direction: Literal["inbound", "outbound"] | None = None
    extension: str | None = None
    number_prefix: str | None = None  # E.164 or E.164 prefix; matches source or destination


@dataclass(frozen=True, slots=True)
class Page:
    records: list[CallRecord]
    next_cursor: str | None


def query_binding(tenant_id: str, query: RecordQuery) -> bytes:
    """What a cursor is bound to: the tenant and every filter of the query."""
    return orjson.dumps(
        [
            tenant_id,
            query.from_ms,
            query.to_ms,
            query.direction,
            query.extension,
            query.number_prefix,
        ]
    )


Position = tuple[int, bytes]  # (started_ms, id as UTF-8): the sort key, newest = largest


@dataclass(frozen=True, slots=True)
class _Walk:
    key: str
    prefix: bytes  # members of this range start with it (b"" for the time index)
    keyed: bool  # members have a "key NUL" head


@dataclass(frozen=True, slots=True)
class _Sparse:
    positions: list[Position]  # newest first, already bounded by window, range and cursor


@dataclass(frozen=True, slots=True)
class _Filter:
    """The filters a plan's index does not guarantee, tested on encoded records (``codec``
    arrays), so that records that do not match are never built."""

    direction: str | None
    extension: str | None
    number_prefix: str | None

    @property
    def empty(self) -> bool:
        return self.direction is None and self.extension is None and self.number_prefix is None

    def __call__(self, f: list[Any]) -> bool:
        if self.direction is not None and f[4] != codec.direction_code(self.direction):
            return False
        if self.extension is not None and f[1] != self.extension:
            return False
        prefix = self.number_prefix
        return prefix is None or (
            codec.number_text(f[2]).startswith(prefix) or codec.number_text(f[3]).startswith(prefix)
        )


class RecordReader:
    def __init__(self, redis: Any, *, retention_ms: int, cursor_secret: bytes) -> None:
        self._redis = redis
        self._retention_ms = retention_ms
        self._secret = cursor_secret

    async def get(self, tenant_id: str, record_id: str) -> CallRecord | None:
        payload = await self._redis.hget(records_key(tenant_id), record_id)
        return None if payload is None else codec.decode(tenant_id, record_id, payload)

    async def page(
        self,
        tenant_id: str,
        query: RecordQuery,
        *,
        limit: int,
        cursor: str | None,
        now_ms: int,
    ) -> Page:
        """Up to ``limit`` records, newest first, and the cursor of the next page (or None)."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        binding = query_binding(tenant_id, query)
        upper: Position | None = None
        if cursor is not None:
            at_ms, at_id = decode_cursor(self._secret, binding, cursor)
            upper = (at_ms, at_id.encode("utf-8"))
        lo, hi = self._bounds(query, now_ms)
        need = limit + 1
        plan, keep = await self._plan(tenant_id, query, lo, hi, upper, need)
        found: list[CallRecord] = []
        scanned = 0
        last: Position | None = None
        complete = False

        def next_size() -> int:
            # Enough candidates for the records still missing at the density seen so far
            # (a filter is assumed to keep half before anything was seen), within bounds.
            missing = need - len(found)
            if not keep.empty:
                density = 0.5 if scanned == 0 else max(len(found), 1) / scanned
                missing = int(missing / density * 1.25) + 16
            return max(1, min(missing, WALK_CHUNK_MAX, MAX_SCAN - scanned))

        batches = self._candidates(tenant_id, plan, lo, hi, upper, next_size)
        async with contextlib.aclosing(batches):
            async for ids, arrays, batch_last in batches:
                scanned += len(ids)
                last = batch_last
                for rid, f in zip(ids, arrays, strict=True):
                    if f is not None and keep(f):
                        found.append(codec.build(tenant_id, rid, f))
                        if len(found) == need:
                            break
                if len(found) == need or scanned >= MAX_SCAN:
                    break
            else:
                complete = True
        if len(found) == need:
            tail = found[limit - 1]
            return Page(found[:limit], self._cursor(binding, tail.started_at_ms, tail.id))
        if complete or last is None:
            return Page(found, None)
        # The scan bound: everything down to the batch's last record was looked at.
        return Page(found, self._cursor(binding, last[0], last[1].decode("utf-8")))

    async def stream(
        self, tenant_id: str, query: RecordQuery, *, now_ms: int, chunk: int = 2000
    ) -> AsyncIterator[list[CallRecord]]:
        """Every matching record, newest first, in lists of up to ``chunk`` records."""
        chunk = max(1, chunk)
        lo, hi = self._bounds(query, now_ms)
        plan, keep = await self._plan(tenant_id, query, lo, hi, None, chunk)
        no_filter = keep.empty
        size = min(chunk, WALK_CHUNK_MAX) if no_filter else WALK_CHUNK_MAX
        out: list[CallRecord] = []
        batches = self._candidates(tenant_id, plan, lo, hi, None, lambda: size, prefetch=True)
        async with contextlib.aclosing(batches):
            build = codec.build
            async for ids, arrays, _ in batches:
                for rid, f in zip(ids, arrays, strict=True):
                    if f is not None and (no_filter or keep(f)):
                        out.append(build(tenant_id, rid, f))
                        if len(out) == chunk:
                            yield out
                            out = []
        if out:
            yield out

    # -- planning -----------------------------------------------------------------------

    def _bounds(self, query: RecordQuery, now_ms: int) -> tuple[int, int]:
        lo = now_ms - self._retention_ms
        if query.from_ms is not None:
            lo = max(lo, query.from_ms)
        hi = MAX_MS if query.to_ms is None else min(query.to_ms, MAX_MS)
        return max(lo, 0), hi

    async def _plan(
        self,
        tenant_id: str,
        query: RecordQuery,
        lo: int,
        hi: int,
        upper: Position | None,
        need: int,
    ) -> tuple[_Walk | _Sparse, _Filter]:
        """The plan and the filter its candidates still need."""
        ext, prefix = query.extension, query.number_prefix
        # The extension walk trusts its index, except for the rare extension whose member
        # prefix it shares with another (a NUL is stored as 0x01).
        ext_check = ext if ext is not None and ("\x00" in ext or "\x01" in ext) else None
        digits = None if prefix is None else number_digits(prefix)
        by_time = _Walk(time_key(tenant_id), b"", False)
        if prefix is None or not digits:
            # No number, or one the index cannot answer (not "+digits", or just "+"): walk time
            # or the extension, and test the rest of the filters on each record.
            if ext is not None:
                walk = _Walk(extension_key(tenant_id), extension_prefix(ext), True)
                return walk, _Filter(query.direction, ext_check, prefix)
            return by_time, _Filter(query.direction, None, prefix)

        n_key = number_key(tenant_id)
        pipe = self._redis.pipeline(transaction=False)
        pipe.zlexcount(n_key, b"[" + digits, b"(" + digits + HIGH)
        pipe.zlexcount(n_key, b"[" + digits + NUL, b"(" + digits + NUL + HIGH)
        pipe.zlexcount(time_key(tenant_id), b"[" + s6(lo), b"(" + s6(hi))
        if ext is not None:
            ext_prefix = extension_prefix(ext)
            pipe.zlexcount(
                extension_key(tenant_id), b"[" + ext_prefix + s6(lo), b"(" + ext_prefix + s6(hi)
            )
        counts = [int(c) for c in await pipe.execute()]
        count, exact, total = counts[0], counts[1], counts[2]
        ext_count = counts[3] if ext is not None else None

        ext_walk = None if ext is None else _Walk(extension_key(tenant_id), ext_prefix, True)
        if exact == count:
            # One number only (or none): its own range is in time order.
            if ext_walk is not None and ext_count is not None and ext_count < exact:
                return ext_walk, _Filter(query.direction, ext_check, prefix)
            number_walk = _Walk(n_key, digits + NUL, True)
            return number_walk, _Filter(query.direction, ext, None)
        # Records a walk would read: the time index (matches spread evenly), or the
        # extension's own range; the sparse plan reads members, cheaper each.
        walk_cost = need * total / max(count, 1)
        if ext_count is not None:
            walk_cost = min(walk_cost, ext_count)
        if count <= SPARSE_MAX and count * MEMBER_COST <= walk_cost:
            positions = await self._sparse_positions(n_key, digits, lo, hi, upper)
            if positions is not None:
                return _Sparse(positions), _Filter(query.direction, ext, None)
        if ext_walk is not None:
            return ext_walk, _Filter(query.direction, ext_check, prefix)
        return by_time, _Filter(query.direction, None, prefix)

    async def _sparse_positions(
        self, n_key: str, digits: bytes, lo: int, hi: int, upper: Position | None
    ) -> list[Position] | None:
        """Every record position under a number prefix, newest first; None if too many."""
        times, ids = await POSITIONS.run(
            self._redis, [n_key], [b"[" + digits, b"(" + digits + HIGH, SPARSE_MAX + 1]
        )
        ids = orjson.loads(ids)
        if len(ids) > SPARSE_MAX:
            return None
        starts = struct.unpack(f">{len(ids)}Q", times)
        top = None if upper is None else (upper[0], upper[1].decode("utf-8"))
        positions = {
            (started, rid)
            for started, rid in zip(starts, ids, strict=True)
            if lo <= started < hi and (top is None or (started, rid) < top)
        }
        return [(started, rid.encode("utf-8")) for started, rid in sorted(positions, reverse=True)]

    # -- candidates ---------------------------------------------------------------------

    async def _candidates(
        self,
        tenant_id: str,
        plan: _Walk | _Sparse,
        lo: int,
        hi: int,
        upper: Position | None,
        next_size: Callable[[], int],
        prefetch: bool = False,
    ) -> AsyncGenerator[tuple[list[str], list[list[Any] | None], Position], None]:
        """The plan's records newest first, in batches: ids, encoded records (None if it
        vanished since the index was read), and the position of the batch's last one."""
        if isinstance(plan, _Sparse):
            positions = plan.positions
            start = 0
            while start < len(positions):
                part = positions[start : start + next_size()]
                start += len(part)
                ids = [p[1] for p in part]
                payloads = await self._redis.hmget(records_key(tenant_id), ids)
                arrays = orjson.loads(b"[" + b",".join(p or b"null" for p in payloads) + b"]")
                yield [i.decode("utf-8") for i in ids], arrays, part[-1]
            return

        if lo >= hi:
            return
        low = b"[" + plan.prefix + s6(lo)
        if upper is not None and upper[0] < hi:
            high = b"(" + plan.prefix + s6(upper[0]) + upper[1]
        else:
            high = b"(" + plan.prefix + s6(hi)
        keys = [plan.key, records_key(tenant_id)]
        keyed = 1 if plan.keyed else 0

        def fetch(high: bytes, size: int) -> asyncio.Task[Any]:
            return asyncio.ensure_future(FETCH.run(self._redis, keys, [high, low, size, keyed]))

        size = next_size()
        pending = fetch(high, size)
        try:
            while True:
                doc, last = await pending
                ids, arrays = orjson.loads(doc)
                if not ids:
                    return
                more = len(ids) == size
                if more and prefetch:  # Redis reads the next chunk while this one is used
                    size = next_size()
                    pending = fetch(b"(" + last, size)
                yield ids, arrays, split_member(last, plan.keyed)
                if not more:
                    return
                if not prefetch:  # sized by what the consumer has found so far
                    size = next_size()
                    pending = fetch(b"(" + last, size)
        finally:
            pending.cancel()

    def _cursor(self, binding: bytes, started_ms: int, record_id: str) -> str:
        return encode_cursor(self._secret, binding, started_ms, record_id)
