"""The read path: pages (newest first, signed cursors), the full export stream, get by id.

A query reads two tiers (``layout.py``) and merges them in the order (started_at desc,
id desc). It runs in *steps*; a step covers a range of positions below an upper bound and
is one pipeline, in this order:

1. **hot**: a lex walk of the hot time index from the bound (``lua/read_hot.lua``);
2. the tenant's **tombstones** (usually none);
3. **sealed**: per day of the step, one read-only script on the day's segment and index
   (``lua/read_day.lua``): either the chunks from the bound down (*walk*), or, for an
   extension or a number, the chunks that hold the index's newest matches (*index*).

Records only move forward (hot -> sealed) and each move is atomic, so a record moved while
the step runs is seen in the later tier: never missed; the same id seen twice is kept once
(hot before sealed). A sealed row whose (start, id) has a tombstone is a stale version and
is skipped.

Each source reads a bounded amount and reports how far down it is complete; the step
keeps only what lies above the highest of those floors, and the next step starts there.
Every filter is tested on every candidate (``RecordFilter``), on decoded arrays, before a
record is built.

Plans: a first pipeline reads the sealed days (and their record counts) and the day span
of the hot tier; an extension or number query also counts, per day, the index entries of
its key (``read_day`` *count*). Per day the sealed read is *index* when an extension
or an E.164 number prefix has few entries there (at most ``INDEX_SHARE`` of the day; a
prefix of several numbers also at most ``INDEX_MAX``), else *walk*; a step spans as
many days as its expected matches need.

A page decodes at most ``MAX_SCAN`` records; when a sparse filter hits that bound the page
returns what it found (maybe nothing) with a cursor just past the last position it looked
at, so every request makes progress and a client following cursors always ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import zlib
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from cdrstream.core.record import CallRecord
from cdrstream.store import codec, scripts, segment
from cdrstream.store.cursor import CursorSecret, decode_cursor, encode_cursor
from cdrstream.store.layout import (
    DAY_MS,
    MAX_STORED_MS,
    bucket_key,
    bucket_of,
    day_of,
    days_key,
    hot_key,
    hot_time_key,
    id_key,
    member_position,
    meta_key,
    number_digits,
    start_bytes,
    tombstones_key,
)
from cdrstream.store.query import Page, Position, RecordFilter, RecordQuery, query_binding
from cdrstream.store.runner import Call, Command, run_pipeline

__all__ = ["Page", "RecordQuery", "RecordReader"]

#: Most records one page decodes before it answers with what it has and a cursor.
MAX_SCAN = 6_000
#: Most hot records one step reads.
TIER_READ_MAX = 4_000
#: An index read is used for a day when its key has at most this share of the day's
#: records (else the day is walked and filtered); a range of several keys (a number
#: prefix), whose entries are read whole, also at most ``INDEX_MAX`` entries (the read
#: script decides that: it sees whether the range holds one key).
INDEX_SHARE = 0.25
INDEX_MAX = 3_000
#: Share of a day's records an extension or number is guessed to match before the first
#: read reports its index entries (it sizes the first step).
INDEX_GUESS = 0.02
#: Days whose index entries the plan counts (the newest in range; the density they show
#: sizes the steps over the others).
COUNTED_DAYS = 4
#: A page's first step also reads the day before when its bound is less than this far
#: into its day.
GUESS_BOTH_MS = 4 * 3_600_000
#: Records per chunk read of one stream step. A stalled export holds two steps decoded (the
#: current one and the next, read ahead): 1,024 keeps that near 2 MB
#: (tests/integration/test_api_slow_exports.py); larger steps would save round trips.
STREAM_STEP = 1_024


#: A candidate: start, id, decoded array, offset of the payload in it (0 payload, 1 row).
Candidate = tuple[int, str, list[Any], int]


@dataclass(slots=True)
class _Plan:
    keep: RecordFilter
    keys: scripts.IndexKeys  # what the day indexes are searched for (none: walk)
    days: dict[int, int]  # sealed days in range -> records
    refs: dict[int, int] = field(default_factory=dict)  # day -> index entries (index plans)
    hot_span: tuple[int, int] | None = None  # first and last day with hot records
    extension_json: bytes = b""  # the hot tier's payload tests (read_hot_call)
    digits: bytes = b""
    direction_code: int | None = None
    density: float = 1.0  # expected share of walked candidates that match
    residual: float = 1.0  # expected share of index candidates that match
    direction: float = 1.0  # share a direction filter keeps (0.5 with one)
    seen: list[int] = field(default_factory=lambda: [0, 0])  # index entries, records

    def mode(self, day: int) -> str:
        """An index read when the query has a key that is not dense in the day (the script
        also walks a day where it finds it dense), else a walk."""
        if self.keys.numbers is None and self.keys.extension is None:
            return "walk"
        refs = self.refs.get(day)
        if refs is not None and refs > INDEX_SHARE * self.days[day]:
            return "walk"
        return "index"

    def expected(self, day: int) -> float:
        """Matches expected in a sealed day."""
        refs = self.refs.get(day)
        if refs is not None:
            return refs * self.residual * self.direction
        return self.days[day] * self.density

    def learn(self, day: int, entries: int, records: int) -> None:
        """A day's index entries for the query's key, as a read reported them."""
        if entries < 0 or day in self.refs:
            return
        self.refs[day] = entries
        self.seen[0] += entries
        self.seen[1] += records
        if self.seen[1]:
            self.density = min(1.0, max(self.seen[0] / self.seen[1], 1e-6) * self.direction)

    def data_days(self, first: int, last: int) -> list[int]:
        """Days in [first, last] that may hold records, newest first."""
        days = {d for d in self.days if first <= d <= last}
        if self.hot_span is not None:
            days.update(range(max(first, self.hot_span[0]), min(last, self.hot_span[1]) + 1))
        return sorted(days, reverse=True)


@dataclass(slots=True)
class _Step:
    candidates: list[Candidate]  # above the floor, deduplicated, newest first
    floor: Position  # everything at or above it (below the step's bound) was read
    scanned: int


class RecordReader:
    def __init__(self, redis: Any, *, retention_ms: int, cursor_secret: CursorSecret) -> None:
        self._redis = redis
        self._retention_ms = retention_ms
        self._secret = cursor_secret

    # -- get ------------------------------------------------------------------------

    async def get(self, tenant_id: str, record_id: str) -> CallRecord | None:
        """The record with this id, wherever it is stored (None if none or out of window)."""
        key = id_key(record_id)
        meta = meta_key(tenant_id)
        for _ in range(3):
            level, split, watermark = await self._redis.hmget(meta, ["level", "split", "watermark"])
            shape = (int(level or 0), int(split or 0))
            bucket = bucket_key(tenant_id, bucket_of(key, *shape))
            value, hot, shape_again = await run_pipeline(
                self._redis,
                [
                    Command("HGET", [bucket, key]),
                    Command("HGET", [hot_key(tenant_id), record_id]),
                    Command("HMGET", [meta, "level", "split"]),
                ],
            )
            if value is None:
                if [int(x or 0) for x in shape_again] != list(shape):
                    continue  # buckets were split in between: look again
                return None
            started = int.from_bytes(value[:6], "big")
            if started < int(watermark or 0):
                return None
            if hot is not None:
                return codec.decode(tenant_id, record_id, hot)
            reply = await scripts.read_day_find(tenant_id, day_of(started), started).run(
                self._redis
            )
            for f in _walk_rows(reply):
                if f[0] == record_id and f[1] == started:
                    return codec.build_row(tenant_id, f)
            return None
        return None

    # -- page -----------------------------------------------------------------------

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
        lo, hi = self._bounds(query, now_ms)
        upper: Position = (hi, "")
        if cursor is not None:
            at_ms, at_id = decode_cursor(self._secret, binding, cursor)
            upper = min(upper, (at_ms, at_id))
        if upper <= (lo, ""):
            return Page([], None)
        need = limit + 1
        found: list[CallRecord] = []
        plan, first = await self._plan_and_first_step(tenant_id, query, lo, upper, need, now_ms)
        keep = plan.keep
        scanned = 0
        while True:
            budget = MAX_SCAN - scanned
            step = first or await self._step(tenant_id, plan, lo, upper, need - len(found), budget)
            first = None
            scanned += step.scanned
            for _, rid, f, off in step.candidates:
                if keep.empty or keep(f, off):
                    found.append(
                        codec.build_row(tenant_id, f) if off else codec.build(tenant_id, rid, f)
                    )
                    if len(found) == need:
                        tail = found[limit - 1]
                        return Page(
                            found[:limit], self._cursor(binding, tail.started_at_ms, tail.id)
                        )
            upper = step.floor
            if upper <= (lo, ""):
                return Page(found, None)
            if scanned >= MAX_SCAN:
                # The scan bound: everything down to the floor was looked at.
                return Page(found, self._cursor(binding, upper[0], upper[1]))

    # -- stream ---------------------------------------------------------------------

    async def stream(
        self, tenant_id: str, query: RecordQuery, *, now_ms: int, chunk: int = 2000
    ) -> AsyncIterator[list[CallRecord]]:
        """Every matching record, newest first, in lists of up to ``chunk`` records: the
        rows of `stream_rows`, built."""
        build_row = codec.build_row
        rows = self.stream_rows(tenant_id, query, now_ms=now_ms, chunk=chunk)
        async with contextlib.aclosing(rows):
            async for piece in rows:
                yield [build_row(tenant_id, f) for f in piece]

    async def stream_rows(
        self, tenant_id: str, query: RecordQuery, *, now_ms: int, chunk: int = 2000
    ) -> AsyncGenerator[list[list[Any]], None]:
        """Every matching record, newest first, as decoded sealed rows (``[id, ...payload]``,
        ``codec``) in lists of up to ``chunk``: the CSV export formats these, as building a
        record object per row would cost about as much as the formatting.

        Steps never span days here. The next step is read while this one's rows are handed
        out: the rest of the day below this step's floor, else the next day's first step
        (whose bound is known in advance). So Redis's time and the round trip overlap the
        caller's work, and at most two steps are held decoded.
        """
        chunk = max(1, chunk)
        lo, hi = self._bounds(query, now_ms)
        if lo >= hi:
            return
        plan = await self._plan(tenant_id, query, lo, (hi, ""))
        keep, keep_all = plan.keep, plan.keep.empty
        days = plan.data_days(day_of(lo), day_of(hi - 1))

        def read(n: int, upper: Position | None) -> tuple[int, asyncio.Task[_Step]] | None:
            """Day ``n``'s step below ``upper`` (None: the day's top), as a task."""
            if n == len(days):
                return None
            day = days[n]
            top = upper if upper is not None else (min(hi, (day + 1) * DAY_MS), "")
            day_lo = max(lo, day * DAY_MS)
            return n, asyncio.ensure_future(
                self._step(tenant_id, plan, day_lo, top, STREAM_STEP, None)
            )

        out: list[list[Any]] = []
        pending = read(0, None)
        try:
            while pending is not None:
                n, task = pending
                step = await task
                if step.floor > (max(lo, days[n] * DAY_MS), ""):
                    pending = read(n, step.floor)
                else:
                    pending = read(n + 1, None)
                for _, rid, f, off in step.candidates:
                    if keep_all or keep(f, off):
                        out.append(f if off else [rid, *f])
                        if len(out) == chunk:
                            yield out
                            out = []
        finally:
            if pending is not None:
                pending[1].cancel()
        if out:
            yield out

    # -- planning -------------------------------------------------------------------

    def _bounds(self, query: RecordQuery, now_ms: int) -> tuple[int, int]:
        lo = now_ms - self._retention_ms
        if query.from_ms is not None:
            lo = max(lo, query.from_ms)
        hi = MAX_STORED_MS if query.to_ms is None else min(query.to_ms, MAX_STORED_MS)
        return max(lo, 0), hi

    async def _plan(self, tenant_id: str, query: RecordQuery, lo: int, upper: Position) -> _Plan:
        plan = self._skeleton(query)
        calls, counted = self._plan_calls(tenant_id, plan, lo, upper)
        self._plan_apply(plan, await run_pipeline(self._redis, calls), lo, upper, counted)
        return plan

    async def _plan_and_first_step(
        self, tenant_id: str, query: RecordQuery, lo: int, upper: Position, want: int, now_ms: int
    ) -> tuple[_Plan, _Step | None]:
        """The plan and a first step in one round trip: the step reads the newest day the
        range may hold up to today (and the one before when the bound is early in its day;
        a day without a segment answers at once). None
        instead of the step when it has to be read again (see ``_step``), or when the plan
        shows a sealed day in the step's range that it did not read (then the steps start
        from the plan)."""
        plan = self._skeleton(query)
        plan_calls, counted = self._plan_calls(tenant_id, plan, lo, upper)
        top_day = min(_top_day(upper), day_of(now_ms))
        # The day before too when little of this one lies below the bound.
        early = min(upper[0], now_ms) - top_day * DAY_MS < GUESS_BOTH_MS
        guess = [d for d in (top_day, top_day - 1)[: 2 if early else 1] if d >= day_of(lo)]
        if not guess:
            return await self._plan(tenant_id, query, lo, upper), None
        step_lo = max(lo, guess[-1] * DAY_MS)
        tier_want, chunks_want, refs_want = _sizes(plan, want, MAX_SCAN)
        step_days = [(d, plan.mode(d)) for d in guess]
        read_calls = self._read_calls(
            tenant_id, plan, step_lo, upper, tier_want, step_days, chunks_want, refs_want
        )
        replies = await run_pipeline(self._redis, plan_calls + read_calls)
        self._plan_apply(plan, replies[: len(plan_calls)], lo, upper, counted)
        if any(d not in guess for d in plan.days if d >= day_of(step_lo)):
            return plan, None
        step = _read_parse(plan, lo, step_lo, upper, step_days, replies[len(plan_calls) :])
        return plan, step

    def _skeleton(self, query: RecordQuery) -> _Plan:
        """What the query alone decides: filters, keys, guesses."""
        ext, prefix = query.extension, query.number_prefix
        digits = None if prefix is None else number_digits(prefix)
        num = None
        if digits:
            low, high = segment.number_range(digits)
            num = (low.to_bytes(8, "big"), high.to_bytes(8, "big"))
        ext_key = None if ext is None else segment.extension_key(ext).to_bytes(4, "big")
        keys = scripts.IndexKeys(num, ext_key)
        plan = _Plan(RecordFilter(query.direction, ext, prefix), keys, {})
        plan.extension_json = b"" if ext is None else orjson.dumps(ext)
        plan.digits = digits or b""
        if query.direction is not None:
            code = codec.direction_code(query.direction)
            plan.direction_code = code if isinstance(code, int) else None
        plan.direction = 0.5 if query.direction is not None else 1.0
        density = plan.direction
        if num is not None or ext_key is not None:
            # Beyond the index used, another filter may drop some of its matches (not the
            # direction: the index entries carry it).
            plan.residual = 0.5 if num and ext_key else 1.0
            density *= INDEX_GUESS  # until counts say better
        elif prefix is not None:
            density *= 0.05
        plan.density = min(density, 1.0)
        return plan

    def _plan_calls(
        self, tenant_id: str, plan: _Plan, lo: int, upper: Position
    ) -> tuple[list[Call], list[int]]:
        """The plan's reads: the sealed days, the day span of the hot tier and,
        with a key, the index entries of the newest days that may hold records (a few small
        reads a day: they size the steps and choose, per day, between the index and a
        walk; a read reports the other days' counts)."""
        first_day, top_day = day_of(lo), _top_day(upper)
        counted: list[int] = []
        if plan.keys.numbers is not None or plan.keys.extension is not None:
            last = min(top_day, first_day + self._retention_ms // DAY_MS + 2)
            counted = list(range(last, max(first_day, last - COUNTED_DAYS + 1) - 1, -1))
        ht = hot_time_key(tenant_id)
        calls: list[Call] = [
            Command("HGETALL", [days_key(tenant_id)]),
            Command("ZRANGE", [ht, 0, 0]),
            Command("ZRANGE", [ht, -1, -1]),
        ]
        calls += [scripts.read_day_count(tenant_id, d, plan.keys) for d in counted]
        return calls, counted

    def _plan_apply(
        self, plan: _Plan, replies: list[Any], lo: int, upper: Position, counted: list[int]
    ) -> None:
        sealed, hot_first, hot_last, *counts = replies
        if isinstance(sealed, list):
            sealed = dict(zip(sealed[::2], sealed[1::2], strict=True))
        first_day, top_day = day_of(lo), _top_day(upper)
        plan.days = {
            int(k): int(v) for k, v in sealed.items() if first_day <= int(k) <= top_day and int(v)
        }

        if hot_first and hot_last:
            first, last = member_position(hot_first[0])[0], member_position(hot_last[0])[0]
            plan.hot_span = (day_of(first), day_of(last))
        for day, reply in zip(counted, counts, strict=True):
            if reply and reply[0] and day in plan.days:
                keys = (plan.keys.numbers, plan.keys.extension)
                found = [int(c) for c, k in zip(reply[3:5], keys, strict=True) if k is not None]
                plan.learn(day, min(found), int(reply[2]))

    # -- one step ----------------------------------------------------------------------

    async def _step(
        self,
        tenant_id: str,
        plan: _Plan,
        lo: int,
        upper: Position,
        want: int,
        budget: int | None,
    ) -> _Step:
        """Read the tiers below ``upper`` (exclusive) and above ``lo`` for about ``want``
        matches, decoding at most about ``budget`` candidates (None: one whole day, the
        stream's steps); see the module docstring."""
        one_day = budget is None
        tier_want, chunks_want, refs_want = _sizes(plan, want, budget)
        # The sealed days this step reads, newest first, and the step's lower bound.
        top_day = _top_day(upper)
        step_lo = max(lo, top_day * DAY_MS) if one_day else lo
        step_days: list[tuple[int, str]] = []
        expected = 0.0
        for day in sorted((d for d in plan.days if d <= top_day), reverse=True):
            if day * DAY_MS + DAY_MS <= step_lo:
                break
            step_days.append((day, plan.mode(day)))
            # Of the newest day, only the part below the bound is left to read.
            share = min(1.0, max(0.0, (upper[0] - day * DAY_MS) / DAY_MS))
            expected += plan.expected(day) * share
            if not one_day and expected >= want:
                step_lo = max(lo, day * DAY_MS)
                break
        # A sealed read ends on whole chunks and index entries are in chunk order, so its
        # newest rows may all lie at or above ``upper`` (the cursor's own chunk): then it is
        # read again, larger, until it reaches below the bound or has nothing more.
        boost = 1
        while True:
            step = await self._read(
                tenant_id, plan, lo, step_lo, upper, tier_want, step_days,
                chunks_want * boost, refs_want * boost,
            )  # fmt: skip
            if step is not None:
                return step
            boost *= 4

    async def _read(
        self,
        tenant_id: str,
        plan: _Plan,
        lo: int,
        step_lo: int,
        upper: Position,
        tier_want: int,
        step_days: list[tuple[int, str]],
        chunks_want: int,
        refs_want: int,
    ) -> _Step | None:
        """One step's pipeline and its merge; None if a sealed read made no progress."""
        calls = self._read_calls(
            tenant_id, plan, step_lo, upper, tier_want, step_days, chunks_want, refs_want
        )
        replies = await run_pipeline(self._redis, calls)
        return _read_parse(plan, lo, step_lo, upper, step_days, replies)

    def _read_calls(
        self,
        tenant_id: str,
        plan: _Plan,
        step_lo: int,
        upper: Position,
        tier_want: int,
        step_days: list[tuple[int, str]],
        chunks_want: int,
        refs_want: int,
    ) -> list[Any]:
        """A step's reads, in the tiers' order: hot, tombstones, sealed days."""
        top = start_bytes(upper[0]) + upper[1].encode("utf-8")
        calls: list[Call] = [
            scripts.read_hot_call(
                tenant_id,
                top,
                step_lo,
                tier_want,
                extension_json=plan.extension_json,
                digits=plan.digits,
                most_sent=refs_want,
            ),
            Command("HGETALL", [tombstones_key(tenant_id)]),
        ]
        top_start = upper[0] if upper[1] else upper[0] - 1
        for day, mode in step_days:
            day_lo = max(step_lo, day * DAY_MS)
            if mode == "walk":
                calls.append(scripts.read_day_walk(tenant_id, day, top_start, day_lo, chunks_want))
                continue
            # The script walks the day instead when the key is dense there (at least
            # INDEX_SHARE of its records): so many chunks hold the matches wanted.
            read = scripts.IndexRead(
                plan.keys, top_start, day_lo, most_refs=refs_want, most_chunks=refs_want,
                walk_chunks=math.ceil(refs_want / INDEX_SHARE / segment.CHUNK_ROWS) + 1,
                most_entries=INDEX_MAX, most_share=INDEX_SHARE, direction=plan.direction_code,
            )  # fmt: skip
            calls.append(scripts.read_day_index(tenant_id, day, read))
        return calls

    def _cursor(self, binding: bytes, started_ms: int, record_id: str) -> str:
        return encode_cursor(self._secret, binding, started_ms, record_id)


def _sizes(plan: _Plan, want: int, budget: int | None) -> tuple[int, int, int]:
    """Records a step reads from the hot tier, chunks from a walked day, and
    index entries from an indexed day, for about ``want`` matches."""
    tier_want = min(TIER_READ_MAX, math.ceil(want / plan.density * 1.25) + 16)
    if budget is not None:
        tier_want = max(1, min(tier_want, budget))
    chunks_want = math.ceil(tier_want / segment.CHUNK_ROWS) + 1
    refs_want = math.ceil(want * 1.1 / plan.residual) + 8
    return tier_want, chunks_want, refs_want


def _read_parse(
    plan: _Plan,
    lo: int,
    step_lo: int,
    upper: Position,
    step_days: list[tuple[int, str]],
    replies: list[Any],
) -> _Step | None:
    """A step's candidates and floor from its replies; None if a sealed read made no
    progress."""
    candidates: dict[str, Candidate] = {}
    floors: list[Position] = []
    doc, last, looked, more = replies[0]
    examined = int(looked)
    ids, arrays = orjson.loads(doc)
    for rid, f in zip(ids, arrays, strict=True):
        if f is not None and rid not in candidates:
            candidates[rid] = (f[0], rid, f, 0)
    if int(more):
        started, rid_bytes = member_position(last)
        floors.append((started, rid_bytes.decode("utf-8")))
    tombs = replies[1]
    at = 2
    dead: set[tuple[int, str]] = set()
    if tombs:
        pairs = (
            tombs.items() if isinstance(tombs, dict) else zip(tombs[::2], tombs[1::2], strict=True)
        )
        dead = {(int.from_bytes(k[:6], "big"), k[6:].decode("utf-8")) for k, _ in pairs}
    sealed_floor: Position | None = None
    for (day, _), reply in zip(step_days, replies[at:], strict=True):
        if not reply or not reply[0]:
            continue  # no segment: the day was dropped, or holds nothing sealed yet
        plan.learn(day, int(reply[4]), int(reply[2]))
        if sealed_floor is not None:
            continue  # a newer day is not complete: older ones are read again later
        rows, more = _walk(reply) if reply[3] == b"w" else _index(reply)
        for f in rows:
            rid = f[0]
            if rid not in candidates and (f[1], rid) not in dead:
                candidates[rid] = (f[1], rid, f, 1)
        if more:
            sealed_floor = min(((f[1], f[0]) for f in rows), default=upper)
            if sealed_floor >= upper:
                return None
    if sealed_floor is not None:
        floors.append(sealed_floor)
    floor = max([(step_lo, ""), *floors])
    # A candidate compares as its position: its (start, id) comes first and is unique.
    kept = [c for c in candidates.values() if floor <= c < upper and c[0] >= lo]
    kept.sort(reverse=True)
    sealed = len(candidates) - sum(1 for c in candidates.values() if not c[3])
    return _Step(kept, floor, examined + sealed)


def _top_day(upper: Position) -> int:
    """The day of the newest start below the exclusive bound ``upper``."""
    return day_of(max(upper[0] - (0 if upper[1] else 1), 0))


def _chunk_arrays(data: bytes) -> list[list[Any]]:
    rows: list[list[Any]] = orjson.loads(
        b"[" + zlib.decompress(data, segment.WBITS).replace(b"\n", b",") + b"]"
    )
    return rows


def _walk(reply: list[Any]) -> tuple[list[list[Any]], bool]:
    """Rows of a ``read_day`` *walk* reply, and whether older chunks of the range remain."""
    if not reply[6]:
        return [], False
    return _split_chunks(reply[6], reply[7]), bool(int(reply[8]))


def _walk_rows(reply: list[Any]) -> list[list[Any]]:
    if not reply or not reply[0] or not reply[4]:
        return []
    return _split_chunks(reply[4], reply[5])


def _split_chunks(directory: bytes, data: bytes) -> list[list[Any]]:
    width = segment.DIR_ENTRY.size
    offsets = [
        segment.DIR_ENTRY.unpack_from(directory, i)[4] for i in range(0, len(directory), width)
    ]
    base = offsets[0]
    ends = [*offsets[1:], base + len(data)]
    rows: list[list[Any]] = []
    for start, end in zip(offsets, ends, strict=True):
        rows.extend(_chunk_arrays(data[start - base : end - base]))
    return rows


#: Bytes of a chunk's row, about (to decompress no further than the rows wanted).
_ROW_BYTES = 200


def _head_lines(data: bytes, last: int) -> list[bytes]:
    """A chunk's rows 0..``last`` (and maybe a few more): rows are oldest first, so an
    index read decompresses only as far as the last row it points at."""
    inflate = zlib.decompressobj(segment.WBITS)
    out = inflate.decompress(data, (last + 1) * _ROW_BYTES)
    while out.count(b"\n") <= last and not inflate.eof:
        tail = inflate.unconsumed_tail
        if not tail:
            break
        out += inflate.decompress(tail, 4 * _ROW_BYTES)
    lines = out.split(b"\n")
    if not inflate.eof:
        lines.pop()  # a row cut short
    return lines


def _index(reply: list[Any]) -> tuple[list[list[Any]], bool]:
    """Rows a ``read_day`` *index* reply points at, and whether more index entries remain."""
    refs, more = reply[5], bool(int(reply[6]))
    needed: dict[int, int] = {}  # chunk -> last row wanted
    for i in range(0, len(refs), 3):
        chunk = int.from_bytes(refs[i : i + 2], "big")
        needed[chunk] = max(needed.get(chunk, 0), refs[i + 2])
    lines: dict[int, list[bytes]] = {}
    for i in range(7, len(reply), 3):
        chunk = int(reply[i])
        lines[chunk] = _head_lines(reply[i + 2], needed.get(chunk, segment.CHUNK_ROWS))
    wanted = []
    for i in range(0, len(refs), 3):
        chunk_lines = lines.get(int.from_bytes(refs[i : i + 2], "big"))
        position = refs[i + 2]
        if chunk_lines is not None and position < len(chunk_lines):
            wanted.append(chunk_lines[position])
    # Only the rows the index points at are parsed: one orjson call for all of them.
    rows: list[list[Any]] = orjson.loads(b"[" + b",".join(wanted) + b"]") if wanted else []
    return rows, more
