"""The window and the tiers' upkeep: trimming and sealing; counting the window.

``sweep_expired`` runs on a timer in every worker (concurrent sweeps are safe: every
change is one script on one tenant's keys, checked against what it read, and the sealer
takes a per-tenant lock). For each known tenant, bounded work:

1. advance the watermark and delete hot records that left the window (with their id-map
   entries);
2. drop every sealed day that has wholly left the window: forget its records' id-map
   entries (those still pointing at it), then delete its segment and index;
3. seal what is due (``sealer.py``: once per completed hour, or when the hot tier is too big);
4. drop the daily summaries' days before ``summary_floor_day`` (``summary.py``).

Tenants whose keys are all gone are forgotten; a tenant forgotten just as it writes again
is re-added by that write's SADD.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from cdrstream.store import sealer, segment
from cdrstream.store.idmap import read_shape, run_shaped
from cdrstream.store.layout import (
    DAY_MS,
    TENANTS_KEY,
    Shape,
    days_key,
    hot_time_key,
    meta_key,
    segment_key,
    start_bytes,
    tombstones_key,
)
from cdrstream.store.runner import Call, Command, run_pipeline
from cdrstream.store.scripts import forget_call, read_day_from, seal_call, trim_hot_call
from cdrstream.store.sealer import parse_tombstones, seal_boundary, seal_tenant
from cdrstream.store.summary import sweep_summaries

#: Records one script call may delete: bounds the time it holds Redis.
TRIM_PER_CALL = 500
#: Records one ``sweep_expired`` call deletes at most; the next call continues.
SWEEP_BUDGET = 200_000
#: Hot records one sweep seals per tenant at most.
SEAL_PER_SWEEP = 50_000
#: Tenants per survey pipeline.
TENANT_BATCH = 500


@dataclass(slots=True)
class _Survey:
    tenant: str
    oldest_hot: int | None
    hot: int
    days: dict[int, int]
    meta: bool
    watermark: int
    sealed_to: int
    tombstones: bool


async def known_tenants(redis: Any) -> list[str]:
    """Every tenant that has written records (``cdr:tenants``), sorted."""
    members = [m async for m in redis.sscan_iter(TENANTS_KEY, count=1000)]
    return sorted({m.decode("utf-8") if isinstance(m, bytes) else str(m) for m in members})


def _as_dict(value: Any) -> dict[bytes, bytes]:
    if isinstance(value, dict):
        return value
    return dict(zip(value[::2], value[1::2], strict=True))


async def _survey(redis: Any, tenants: list[str]) -> list[_Survey]:
    calls: list[Call] = []
    for t in tenants:
        ht = hot_time_key(t)
        calls += [
            Command("ZRANGE", [ht, 0, 0]),
            Command("ZCARD", [ht]),
            Command("HGETALL", [days_key(t)]),
            Command("HMGET", [meta_key(t), "ids", "watermark", "sealed_to"]),
            Command("EXISTS", [tombstones_key(t)]),
        ]
    replies = await run_pipeline(redis, calls)
    out = []
    for i, t in enumerate(tenants):
        first, hot, days, meta, tombs = replies[5 * i : 5 * i + 5]
        out.append(
            _Survey(
                t,
                int.from_bytes(first[0][:6], "big") if first else None,
                int(hot),
                {int(k): int(v) for k, v in _as_dict(days).items()},
                meta[0] is not None,
                int(meta[1] or 0),
                int(meta[2] or 0),
                int(tombs) > 0,
            )
        )
    return out


async def sweep_expired(
    redis: Any,
    *,
    now_ms: int,
    retention_ms: int,
    summary_floor_day: int | None = None,
) -> int:
    """Trim and seal every known tenant (bounded); the records deleted. With
    ``summary_floor_day`` (``core.summary.first_day``), summaries lose the older days."""
    cutoff = now_ms - retention_ms
    removed = 0
    gone: list[str] = []
    tenants = await known_tenants(redis)
    for start in range(0, len(tenants), TENANT_BATCH):
        for s in await _survey(redis, tenants[start : start + TENANT_BATCH]):
            if removed >= SWEEP_BUDGET:
                break
            if not s.hot and not s.days:
                if not s.meta:
                    gone.append(s.tenant)
                continue
            removed += await _sweep_tenant(redis, s, now_ms, retention_ms, cutoff)
    if gone:
        await redis.srem(TENANTS_KEY, *gone)
    if summary_floor_day is not None:
        await sweep_summaries(redis, tenants, summary_floor_day)
    return removed


async def _sweep_tenant(redis: Any, s: _Survey, now_ms: int, retention_ms: int, cutoff: int) -> int:
    tenant = s.tenant
    removed = 0
    shape = await read_shape(redis, tenant) if s.meta else (0, 0)
    if s.meta and (s.watermark < cutoff or (s.oldest_hot is not None and s.oldest_hot < cutoff)):
        trimmed, shape = await trim_hot(redis, tenant, cutoff, shape)
        removed += trimmed
    for day in sorted(s.days):
        if (day + 1) * DAY_MS <= cutoff:
            removed += await drop_day(redis, tenant, day, shape)
    boundary = seal_boundary(now_ms)
    due = s.oldest_hot is not None and s.oldest_hot < boundary and boundary > s.sealed_to
    if due or s.hot > sealer.HOT_MAX or (s.tombstones and boundary > s.sealed_to):
        await seal_tenant(
            redis, tenant, now_ms=now_ms, retention_ms=retention_ms, budget=SEAL_PER_SWEEP
        )
    return removed


async def trim_hot(redis: Any, tenant: str, cutoff: int, shape: Shape) -> tuple[int, Shape]:
    """Advance the watermark; delete hot records that started before ``cutoff``."""
    removed = 0
    while True:
        members = list(
            await redis.zrange(
                hot_time_key(tenant),
                b"-",
                b"(" + start_bytes(cutoff),
                bylex=True,
                offset=0,
                num=TRIM_PER_CALL,
            )
        )
        build = partial(trim_hot_call, tenant, cutoff_ms=cutoff, members=members)
        answer = await run_shaped(redis, tenant, build, shape)
        shape = (int(answer[0]), int(answer[1]))
        removed += int(answer[2])
        if len(members) < TRIM_PER_CALL:
            return removed, shape


async def drop_day(redis: Any, tenant: str, day: int, shape: Shape) -> int:
    """Delete a sealed day that has left the window, and its records' id-map entries."""
    s_key = segment_key(tenant, day)
    raw, tombs = await run_pipeline(
        redis, [Command("GET", [s_key]), Command("HGETALL", [tombstones_key(tenant)])]
    )
    nonce = segment.nonce_of(raw)
    rows: list[tuple[str, int]] = []
    if raw:
        for chunk in segment.Segment.parse(raw).chunks:
            rows += [(r.id, r.started) for r in segment.chunk_rows(chunk.data)]
    for start in range(0, len(rows), TRIM_PER_CALL):
        part = rows[start : start + TRIM_PER_CALL]
        build = partial(forget_call, tenant, day, nonce=nonce, records=part)
        answer = await run_shaped(redis, tenant, build, shape)
        if int(answer[0]) == -2:
            return 0  # sealed again meanwhile (a late record): the next sweep drops it
        shape = (int(answer[0]), int(answer[1]))
    dead = parse_tombstones(_as_dict(tombs)).get(day, [])
    drop = seal_call(
        tenant, day, nonce=nonce, mode="drop", tombstones=[(f, seq) for f, seq, _, _ in dead]
    )
    if not int(await drop.run(redis)):
        return 0
    return len(rows)


async def count_in_window(redis: Any, *, now_ms: int, retention_ms: int) -> int:
    """Records inside the window over all tenants: started at or after ``now - retention``
    and after the tenant's watermark (a record changed since its day was sealed may count
    twice until the next seal of that day)."""
    window = now_ms - retention_ms
    total = 0
    tenants = await known_tenants(redis)
    for start in range(0, len(tenants), TENANT_BATCH):
        part = tenants[start : start + TENANT_BATCH]
        calls: list[Call] = []
        for t in part:
            calls += [
                Command("HGET", [meta_key(t), "watermark"]),
                Command("HGETALL", [days_key(t)]),
            ]
        replies = await run_pipeline(redis, calls)
        counts: list[Call] = []
        cutoffs: list[int] = []
        for i, t in enumerate(part):
            cutoff = max(window, int(replies[2 * i] or 0))
            counts.append(Command("ZLEXCOUNT", [hot_time_key(t), b"[" + start_bytes(cutoff), b"+"]))
            cutoffs.append(cutoff)
            for day, count in _as_dict(replies[2 * i + 1]).items():
                d = int(day)
                if d * DAY_MS >= cutoff:
                    total += int(count)
                elif (d + 1) * DAY_MS > cutoff:
                    counts.append(read_day_from(t, d, cutoff))
                    cutoffs.append(cutoff)
        answers = await run_pipeline(redis, counts)
        for call, cutoff, reply in zip(counts, cutoffs, answers, strict=True):
            if isinstance(call, Command):
                total += int(reply)
            elif reply and reply[0]:
                total += int(reply[3])
                for data in reply[4:]:
                    total += sum(1 for r in segment.chunk_rows(data) if r.started >= cutoff)
    return total


async def count_stored(redis: Any, tenants: list[str]) -> int:
    """Records stored for ``tenants`` in every tier, window or not: a cheap progress probe
    (no decoding; a record changed since its day was sealed may count twice)."""
    calls: list[Call] = []
    for t in tenants:
        calls += [Command("ZCARD", [hot_time_key(t)]), Command("HGETALL", [days_key(t)])]
    replies = await run_pipeline(redis, calls) if calls else []
    total = 0
    for i in range(0, len(replies), 2):
        hot, days = replies[i : i + 2]
        total += int(hot) + sum(int(v) for v in _as_dict(days).values())
    return total
