"""The version-1 layout (four keys per tenant), kept to read and migrate it.

Version 1 kept every record in one hash and three lexicographic sorted sets (time,
extension, number); the layout of ``layout.py`` replaced it because each of those five
entries per record cost 75-90 bytes of Redis overhead (~770 bytes per record). A worker
of version 2 never writes these keys: it reads them as the *legacy* tier until
``migrate.py`` has moved a tenant's records (lazily in the sweeper, or with
``cdrstream migrate``), and its write script removes a legacy record it replaces.

=====================  ========  ==========================================================
key                    type      content
=====================  ========  ==========================================================
``cdr:{T}:r``          HASH      record id -> payload (``codec.encode``)
``cdr:{T}:t``          ZSET      time index, score 0, member ``S6 + id``
``cdr:{T}:x``          ZSET      extension index, member ``ext + NUL + S6 + id`` (a NUL in
                                 the extension stored as 0x01)
``cdr:{T}:n``          ZSET      number index, member ``digits + NUL + S6 + id`` for each
                                 E.164 source and destination
=====================  ========  ==========================================================

``LegacyWriter`` and ``LegacyReader`` are version 1's writer and reader, unchanged: the
tests build legacy tenants with them to migrate, and the benchmark measures today's layout
beside the new one with them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from redis.exceptions import NoScriptError

from cdrstream.core.record import CallRecord
from cdrstream.store import codec
from cdrstream.store.cursor import decode_cursor, encode_cursor
from cdrstream.store.layout import (
    HIGH,
    KEY_PREFIX,
    MAX_STORED_MS,
    NUL,
    TENANTS_KEY,
    number_digits,
    s6,
    split_member,
    tenant_tag,
)
from cdrstream.store.scripts import FETCH, MEMBERS_LUA, Script, pack_record

if TYPE_CHECKING:
    from cdrstream.store.reader import Page, RecordQuery

log = logging.getLogger("cdrstream.store")


def records_key(tenant_id: str) -> str:
    return f"{KEY_PREFIX}:{tenant_tag(tenant_id)}:r"


def time_key(tenant_id: str) -> str:
    return f"{KEY_PREFIX}:{tenant_tag(tenant_id)}:t"


def extension_key(tenant_id: str) -> str:
    return f"{KEY_PREFIX}:{tenant_tag(tenant_id)}:x"


def number_key(tenant_id: str) -> str:
    return f"{KEY_PREFIX}:{tenant_tag(tenant_id)}:n"


def tenant_keys(tenant_id: str) -> list[str]:
    """The four version-1 keys of a tenant, in the order the scripts declare them."""
    return [
        records_key(tenant_id),
        time_key(tenant_id),
        extension_key(tenant_id),
        number_key(tenant_id),
    ]


def extension_prefix(extension: str) -> bytes:
    """``ext NUL``; a NUL inside the extension is stored as 0x01 (the scripts do the same)."""
    return extension.encode("utf-8").replace(NUL, b"\x01") + NUL


def index_members(
    started_ms: int, record_id: str, extension: str, source: str, destination: str
) -> tuple[bytes, bytes, bytes, bytes]:
    """A record's members of ``t``, ``x`` and ``n`` (b"" where a number is not indexed)."""
    tail = s6(started_ms) + record_id.encode("utf-8")
    a, b = number_digits(source), number_digits(destination)
    return (
        tail,
        extension_prefix(extension) + tail,
        b"" if a is None else a + NUL + tail,
        b"" if b is None or b == a else b + NUL + tail,
    )


_COMMON = (
    r"""
local R, T, X, N = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
"""
    + MEMBERS_LUA
    + r"""
local function contains(list, entry)
  if not list then return false end
  for _, e in ipairs(list) do
    if e[1] == entry[1] and e[2] == entry[2] then return true end
  end
  return false
end

local function unindex(old, new)
  for _, e in ipairs(old) do
    if not contains(new, e) then redis.call("ZREM", e[1], e[2]) end
  end
end

local function index(new)
  for _, e in ipairs(new) do redis.call("ZADD", e[1], 0, e[2]) end
end

-- Delete up to `max` records whose started_at < cutoff (oldest first); their count.
local function trim(cutoff, max)
  if max <= 0 or cutoff <= 0 then return 0 end
  local expired = redis.call("ZRANGE", T, "-", "(" .. be6(cutoff), "BYLEX", "LIMIT", 0, max)
  for _, m in ipairs(expired) do
    local id = string.sub(m, 7)
    local payload = redis.call("HGET", R, id)
    if payload then
      unindex(members(cjson.decode(payload), id), nil)
      redis.call("HDEL", R, id)
    end
    redis.call("ZREM", T, m)
  end
  return #expired
end
"""
)

#: Version 1's write script (``LegacyWriter``). KEYS: the tenant's 4 keys. ARGV: cutoff_ms,
#: ttl_ms, trim_max, then per record ``pack_record(id, payload, t, x, n, n)``.
WRITE_LUA = (
    "#!lua\n"
    + _COMMON
    + r"""
local RECORD = ">I4c0I4c0I4c0I4c0I4c0I4c0"
local out = {}
for i = 4, #ARGV do
  local id, payload, tm, xm, n1, n2 = struct.unpack(RECORD, ARGV[i])
  local new = nil
  if payload ~= "" then
    new = {{T, tm}, {X, xm}}
    if n1 ~= "" then new[#new + 1] = {N, n1} end
    if n2 ~= "" then new[#new + 1] = {N, n2} end
  end
  local old = redis.call("HGET", R, id)
  local result = 0
  if not old and new then
    redis.call("HSET", R, id, payload)
    redis.call("ZADD", T, 0, new[1][2])
    redis.call("ZADD", X, 0, new[2][2])
    if new[4] then
      redis.call("ZADD", N, 0, new[3][2], 0, new[4][2])
    elseif new[3] then
      redis.call("ZADD", N, 0, new[3][2])
    end
    result = 1
  elseif old ~= payload then
    if old then unindex(members(cjson.decode(old), id), new) end
    if new then
      redis.call("HSET", R, id, payload)
      index(new)
      result = 1
    elseif old then
      redis.call("HDEL", R, id)
    end
  end
  out[#out + 1] = result
end
trim(tonumber(ARGV[1]), tonumber(ARGV[3]))
for k = 1, 4 do redis.call("PEXPIRE", KEYS[k], ARGV[2]) end
return out
"""
)

#: KEYS: the tenant's 4 version-1 keys. ARGV: cutoff_ms, max. Returns {removed, left}.
TRIM_LUA = (
    "#!lua\n"
    + _COMMON
    + r"""
local removed = trim(tonumber(ARGV[1]), tonumber(ARGV[2]))
return {removed, redis.call("HLEN", R)}
"""
)

#: KEYS: 1 the number index. ARGV: min, max (lex bounds), most members. Returns
#: {8-byte big-endian start times; JSON array of the ids} of every member in the range.
POSITIONS_LUA = r"""#!lua flags=no-writes
local ms = redis.call("ZRANGE", KEYS[1], ARGV[1], ARGV[2], "BYLEX", "LIMIT", 0, ARGV[3])
local n = #ms
if n == 0 then return {"", "[]"} end
local times, ids = {}, {}
for i = 1, n do
  local m = ms[i]
  local p = string.find(m, "\0", 1, true)
  times[i] = "\0\0" .. string.sub(m, p + 1, p + 6)
  ids[i] = string.sub(m, p + 7)
end
return {table.concat(times), cjson.encode(ids)}
"""

WRITE = Script(WRITE_LUA)
TRIM = Script(TRIM_LUA)
POSITIONS = Script(POSITIONS_LUA)

#: Records per legacy write call.
CHUNK = 500
TRIM_PER_CALL = 200
TTL_MARGIN_MS = 86_400_000


class LegacyWriter:
    """Version 1's writer (tests and the benchmark baseline only)."""

    def __init__(self, redis: Any, *, retention_ms: int) -> None:
        self._redis = redis
        self._retention_ms = retention_ms

    async def write_batch(self, records: Sequence[CallRecord], now_ms: int) -> list[str]:
        cutoff = now_ms - self._retention_ms
        ttl = self._retention_ms + TTL_MARGIN_MS
        by_tenant: dict[str, list[int]] = {}
        for position, record in enumerate(records):
            by_tenant.setdefault(record.tenant_id, []).append(position)
        calls: list[tuple[list[str], list[Any], list[int]]] = []
        for tenant, positions in by_tenant.items():
            for start in range(0, len(positions), CHUNK):
                chunk = positions[start : start + CHUNK]
                args: list[Any] = [cutoff, ttl, TRIM_PER_CALL]
                for p in chunk:
                    r = records[p]
                    rid = r.id.encode("utf-8")
                    if r.started_at_ms < cutoff:
                        args.append(pack_record(rid, b"", b"", b"", b"", b""))
                    else:
                        members = index_members(
                            r.started_at_ms, r.id, r.extension, r.source, r.destination
                        )
                        args.append(pack_record(rid, codec.encode(r), *members))
                calls.append((tenant_keys(tenant), args, chunk))
        out = ["duplicate"] * len(records)
        if not calls:
            return out
        pipe = self._redis.pipeline(transaction=False)
        for keys, args, _ in calls:
            pipe.execute_command("EVALSHA", WRITE.sha, len(keys), *keys, *args)
        pipe.sadd(TENANTS_KEY, *by_tenant)
        results = await pipe.execute(raise_on_error=False)
        if any(isinstance(r, NoScriptError) for r in results):
            await WRITE.load(self._redis)
            return await self.write_batch(records, now_ms)
        for (_, _, chunk), flags in zip(calls, results, strict=False):
            if isinstance(flags, Exception):
                raise flags
            for p, flag in zip(chunk, flags, strict=True):
                out[p] = "stored" if int(flag) else "duplicate"
        return out


# -- version 1's reader (the benchmark's baseline) ---------------------------------------

#: Most records one page decodes before it answers with what it has and a cursor.
MAX_SCAN = 3_000
SPARSE_MAX = 3_000
WALK_CHUNK_MAX = 2_000
MEMBER_COST = 0.5

Position = tuple[int, bytes]


@dataclass(frozen=True, slots=True)
class Walk:
    """A lex range of one version-1 index, walked newest first."""

    key: str
    prefix: bytes  # members of this range start with it (b"" for the time index)
    keyed: bool  # members have a "key NUL" head


@dataclass(frozen=True, slots=True)
class _Sparse:
    positions: list[Position]


async def walk(
    redis: Any,
    tenant_id: str,
    plan: Walk,
    lo: int,
    hi: int,
    upper: Position | None,
    next_size: Callable[[], int],
    prefetch: bool = False,
) -> AsyncGenerator[tuple[list[str], list[Any], Position], None]:
    """A version-1 index range newest first, in batches: ids, decoded payloads (None if the
    record vanished), and the position of the batch's last member."""
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
        return asyncio.ensure_future(FETCH.run(redis, keys, [high, low, size, keyed]))

    size = next_size()
    pending = fetch(high, size)
    try:
        while True:
            doc, last = (await pending)[:2]
            ids, arrays = orjson.loads(doc)
            if not ids:
                return
            more = len(ids) == size
            if more and prefetch:
                size = next_size()
                pending = fetch(b"(" + last, size)
            yield ids, arrays, split_member(last, plan.keyed)
            if not more:
                return
            if not prefetch:
                size = next_size()
                pending = fetch(b"(" + last, size)
    finally:
        pending.cancel()


class LegacyReader:
    """Version 1's reader: plans over the three sorted sets (benchmark baseline)."""

    def __init__(self, redis: Any, *, retention_ms: int, cursor_secret: bytes) -> None:
        self._redis = redis
        self._retention_ms = retention_ms
        self._secret = cursor_secret

    async def get(self, tenant_id: str, record_id: str) -> CallRecord | None:
        payload = await self._redis.hget(records_key(tenant_id), record_id)
        return None if payload is None else codec.decode(tenant_id, record_id, payload)

    async def page(
        self, tenant_id: str, query: RecordQuery, *, limit: int, cursor: str | None, now_ms: int
    ) -> Page:
        from cdrstream.store.reader import Page, query_binding

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
                    if f is not None and keep(f, 0):
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
        return Page(found, self._cursor(binding, last[0], last[1].decode("utf-8")))

    async def stream(
        self, tenant_id: str, query: RecordQuery, *, now_ms: int, chunk: int = 2000
    ) -> AsyncIterator[list[CallRecord]]:
        lo, hi = self._bounds(query, now_ms)
        plan, keep = await self._plan(tenant_id, query, lo, hi, None, chunk)
        size = WALK_CHUNK_MAX
        out: list[CallRecord] = []
        batches = self._candidates(tenant_id, plan, lo, hi, None, lambda: size, prefetch=True)
        async with contextlib.aclosing(batches):
            async for ids, arrays, _ in batches:
                for rid, f in zip(ids, arrays, strict=True):
                    if f is not None and keep(f, 0):
                        out.append(codec.build(tenant_id, rid, f))
                        if len(out) == chunk:
                            yield out
                            out = []
        if out:
            yield out

    def _bounds(self, query: RecordQuery, now_ms: int) -> tuple[int, int]:
        lo = now_ms - self._retention_ms
        if query.from_ms is not None:
            lo = max(lo, query.from_ms)
        hi = MAX_STORED_MS if query.to_ms is None else min(query.to_ms, MAX_STORED_MS)
        return max(lo, 0), hi

    async def _plan(
        self,
        tenant_id: str,
        query: RecordQuery,
        lo: int,
        hi: int,
        upper: Position | None,
        need: int,
    ) -> tuple[Walk | _Sparse, Any]:
        from cdrstream.store.reader import RecordFilter

        ext, prefix = query.extension, query.number_prefix
        ext_check = ext if ext is not None and ("\x00" in ext or "\x01" in ext) else None
        digits = None if prefix is None else number_digits(prefix)
        by_time = Walk(time_key(tenant_id), b"", False)
        if prefix is None or not digits:
            if ext is not None:
                walk_ = Walk(extension_key(tenant_id), extension_prefix(ext), True)
                return walk_, RecordFilter(query.direction, ext_check, prefix)
            return by_time, RecordFilter(query.direction, None, prefix)
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
        ext_walk = None if ext is None else Walk(extension_key(tenant_id), ext_prefix, True)
        if exact == count:
            if ext_walk is not None and ext_count is not None and ext_count < exact:
                return ext_walk, RecordFilter(query.direction, ext_check, prefix)
            return Walk(n_key, digits + NUL, True), RecordFilter(query.direction, ext, None)
        walk_cost = need * total / max(count, 1)
        if ext_count is not None:
            walk_cost = min(walk_cost, ext_count)
        if count <= SPARSE_MAX and count * MEMBER_COST <= walk_cost:
            positions = await self._sparse_positions(n_key, digits, lo, hi, upper)
            if positions is not None:
                return _Sparse(positions), RecordFilter(query.direction, ext, None)
        if ext_walk is not None:
            return ext_walk, RecordFilter(query.direction, ext_check, prefix)
        return by_time, RecordFilter(query.direction, None, prefix)

    async def _sparse_positions(
        self, n_key: str, digits: bytes, lo: int, hi: int, upper: Position | None
    ) -> list[Position] | None:
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

    async def _candidates(
        self,
        tenant_id: str,
        plan: Walk | _Sparse,
        lo: int,
        hi: int,
        upper: Position | None,
        next_size: Callable[[], int],
        prefetch: bool = False,
    ) -> AsyncGenerator[tuple[list[str], list[Any], Position], None]:
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
        batches = walk(self._redis, tenant_id, plan, lo, hi, upper, next_size, prefetch)
        async with contextlib.aclosing(batches):
            async for batch in batches:
                yield batch

    def _cursor(self, binding: bytes, started_ms: int, record_id: str) -> str:
        return encode_cursor(self._secret, binding, started_ms, record_id)
