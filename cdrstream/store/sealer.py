"""Sealing: moving a tenant's older hot records into its compressed day segments.

Hot records (one hash field and one sorted-set member each, ~300 bytes) are what makes a
write cheap; sealed records (~75 bytes of segment and ~28 of day index) are what makes the
window small. The sealer runs in every worker's sweep (``sweeper.py``); per tenant it takes
a lock (``SET NX PX``, so two workers do not do the same
work), then, a day at a time and oldest first, seals the hot records due (once per
completed hour, see ``seal_boundary``; or the oldest ones, when more than ``HOT_MAX``
records are hot):

1. read, in this order (one pipeline): the records (hot hash), the tombstones, the day's
   segment and index;
2. build the day's new segment and index in a thread (``segment.merge``: only the chunks
   the new records or the tombstones touch are decoded and rebuilt);
3. install them with one script that checks the segment still has the nonce read in 1,
   removes from the hot tier exactly the records whose payload is still the one sealed,
   and deletes the tombstones it applied (if unchanged).

A record changed between 1 and 3 stays hot in its new version (hot wins over sealed for the
same id; a moved one has left a tombstone for its old start); a segment changed meanwhile
makes the install refuse, and the day is read again.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import orjson

from cdrstream.store import codec, segment
from cdrstream.store.layout import (
    DAY_MS,
    day_index_key,
    day_of,
    hot_key,
    hot_time_key,
    lock_key,
    meta_key,
    segment_key,
    start_bytes,
    tombstones_key,
)
from cdrstream.store.runner import Command, run_pipeline
from cdrstream.store.scripts import seal_call

log = logging.getLogger("cdrstream.store")

#: A tenant's hot records are sealed once per completed hour: those that started before
#: the last hour boundary at least SEAL_GRACE_MS old (most calls that started in that hour
#: have ended by then). One seal rewrites the day's segment and index, so sealing by the
#: hour, not by the record, keeps that at ~24 rewrites per tenant-day whatever the write
#: rate; a late record for an older hour waits in the hot tier for the next hourly seal.
SEAL_GRACE_MS = 5 * 60_000
HOUR_MS = 3_600_000
#: More hot records than this in one tenant: the oldest are sealed at once, down to half of
#: it, so that reading the hot tier stays cheap for big or bursty tenants.
HOT_MAX = 4_000
#: Hot records sealed by one install (bounds the time one script holds Redis).
SEAL_BATCH = 4_000
#: The sealer's per-tenant lock lives at most this long.
LOCK_MS = 120_000
#: A segment expires this long after its day has left the window.
TTL_MARGIN_MS = 86_400_000
#: Attempts at one day when its segment keeps changing under the sealer.
ATTEMPTS = 3


def _as_dict(value: Any) -> dict[bytes, bytes]:
    if isinstance(value, dict):
        return value
    return dict(zip(value[::2], value[1::2], strict=True))


@dataclass(slots=True)
class SealStats:
    sealed: int = 0  # hot records moved into segments
    rebuilt: int = 0  # rows decoded or encoded (the sealer's CPU work)
    conflicts: int = 0


def parse_tombstones(found: dict[bytes, bytes]) -> dict[int, list[tuple[bytes, bytes, int, str]]]:
    """Tombstones by day: (field, sequence, start, id) each."""
    by_day: dict[int, list[tuple[bytes, bytes, int, str]]] = defaultdict(list)
    for fieldname, seq in found.items():
        started = int.from_bytes(fieldname[:6], "big")
        by_day[day_of(started)].append((fieldname, seq, started, fieldname[6:].decode("utf-8")))
    return by_day


async def _lock(redis: Any, tenant_id: str) -> bytes | None:
    token = os.urandom(8).hex().encode()
    if await redis.set(lock_key(tenant_id), token, nx=True, px=LOCK_MS):
        return token
    return None


async def _unlock(redis: Any, tenant_id: str, token: bytes) -> None:
    if await redis.get(lock_key(tenant_id)) == token:
        await redis.delete(lock_key(tenant_id))


def seal_boundary(now_ms: int) -> int:
    """Hot records that started before this are due (the last hour boundary that is at
    least SEAL_GRACE_MS old)."""
    return (now_ms - SEAL_GRACE_MS) // HOUR_MS * HOUR_MS


async def seal_tenant(
    redis: Any,
    tenant_id: str,
    *,
    now_ms: int,
    retention_ms: int,
    budget: int = 50_000,
    everything: bool = False,
    per_install: int = SEAL_BATCH,
) -> SealStats:
    """Seal the tenant's due hot records (``everything``: all of them), at most ``budget``:
    once a new hour boundary has passed (``seal_boundary``; the meta hash keeps the last one
    sealed to, ``sealed_to``), every hot record that started before it; any time, the oldest
    when the hot tier holds more than ``HOT_MAX``. At most ``per_install`` records per
    install (a bulk load, such as a benchmark's, may take more at once: each install
    rewrites the day).

    Does nothing when another process holds the tenant's lock.
    """
    stats = SealStats()
    token = await _lock(redis, tenant_id)
    if token is None:
        return stats
    try:
        cutoff = now_ms - retention_ms
        boundary = seal_boundary(now_ms)
        hourly = everything or boundary > int(
            await redis.hget(meta_key(tenant_id), "sealed_to") or 0
        )
        drained = False
        while stats.sealed < budget:
            most = min(budget - stats.sealed, per_install)
            members = await _due(redis, tenant_id, boundary, everything, hourly, most)
            members = [m for m in members if int.from_bytes(m[:6], "big") >= cutoff]
            if not members:
                drained = True
                break
            day = day_of(int.from_bytes(members[0][:6], "big"))
            batch = [m for m in members if day_of(int.from_bytes(m[:6], "big")) == day]
            done = await _seal_day(redis, tenant_id, day, batch, retention_ms, stats)
            if not done:
                break
        if hourly and drained and not everything:
            await redis.hset(meta_key(tenant_id), "sealed_to", boundary)
        # Days whose only news is a tombstone (a record moved away from them): rebuild the
        # chunk that holds the stale copy and consume the tombstone.
        if hourly:
            tombs = parse_tombstones(_as_dict(await redis.hgetall(tombstones_key(tenant_id))))
            for day in sorted(tombs):
                if (day + 1) * DAY_MS > cutoff and stats.sealed < budget:
                    await _seal_day(redis, tenant_id, day, [], retention_ms, stats)
    finally:
        await _unlock(redis, tenant_id, token)
    return stats


async def _due(
    redis: Any, tenant_id: str, boundary: int, everything: bool, hourly: bool, most: int
) -> list[bytes]:
    """Hot members to seal, oldest first."""
    ht = hot_time_key(tenant_id)
    most = max(1, most)
    if everything:
        return list(await redis.zrange(ht, b"-", b"+", bylex=True, offset=0, num=most))
    pipe = redis.pipeline(transaction=False)
    pipe.zcard(ht)
    if hourly:
        pipe.zrange(ht, b"-", b"(" + start_bytes(boundary), bylex=True, offset=0, num=most)
    replies = await pipe.execute()
    count, old = int(replies[0]), (list(replies[1]) if hourly else [])
    extra = count - len(old) - HOT_MAX
    if extra > 0 and len(old) < most:
        # Too many hot records: seal the oldest ones too, down to half of HOT_MAX.
        take = min(most, len(old) + extra + HOT_MAX // 2)
        return list(await redis.zrange(ht, b"-", b"+", bylex=True, offset=0, num=take))
    return old


async def _seal_day(
    redis: Any,
    tenant_id: str,
    day: int,
    members: list[bytes],
    retention_ms: int,
    stats: SealStats,
) -> bool:
    """Seal ``members`` (hot, all of ``day``) into the day's segment; False if it gave up."""
    ids = [m[6:] for m in members]
    s_key, y_key = segment_key(tenant_id, day), day_index_key(tenant_id, day)
    for _ in range(ATTEMPTS):
        # Hot tier first, then tombstones, then the segment: see layout.py.
        replies = await run_pipeline(
            redis,
            [
                *([Command("HMGET", [hot_key(tenant_id), *ids])] if ids else []),
                Command("HGETALL", [tombstones_key(tenant_id)]),
                Command("GET", [s_key]),
                Command("GET", [y_key]),
            ],
        )
        payloads = replies[0] if ids else []
        tombs, old_segment, old_index = replies[-3:]
        dead_list = parse_tombstones(_as_dict(tombs)).get(day, [])
        rows, sealed = [], []
        present = [(m, i, p) for m, i, p in zip(members, ids, payloads, strict=True) if p]
        arrays = orjson.loads(b"[" + b",".join(p for _, _, p in present) + b"]")
        for (member, rid, payload), f in zip(present, arrays, strict=True):
            if start_bytes(f[0]) != member[:6]:
                continue  # changed since it was listed: sealed on a later pass
            text = rid.decode("utf-8")
            rows.append(segment.Row(f[0], text, codec.row(text, payload), f[1], f[2], f[3], f[4]))
            sealed.append((rid, member, payload))
        dead = {(started, rid) for _, _, started, rid in dead_list}
        built = await asyncio.to_thread(segment.merge, old_segment, old_index, rows, dead)
        stats.rebuilt += built.rows
        if not built.changed:
            mode = "keep"
        elif built.segment:
            mode = "set"
        else:
            mode = "drop"
        expire_at = (day + 1) * DAY_MS + retention_ms + TTL_MARGIN_MS
        install = seal_call(
            tenant_id, day, nonce=segment.nonce_of(old_segment), mode=mode,
            segment=built.segment, index=built.index, count=built.count, expire_at_ms=expire_at,
            sealed=[(member, payload) for _, member, payload in sealed],
            tombstones=[(fieldname, seq) for fieldname, seq, _, _ in dead_list],
        )  # fmt: skip
        if int(await install.run(redis)):
            stats.sealed += len(sealed)
            # None sealed: every listed record changed meanwhile; a later pass lists them.
            return bool(sealed)
        stats.conflicts += 1
    log.warning("day %s of tenant %r kept changing under the sealer", day, tenant_id)
    return False
