"""Online migration from the version-1 layout (``legacy.py``) to the tiered one.

A worker of version 2 reads a tenant's version-1 keys as the *legacy* tier and never
writes them, so a tenant is served whole at every moment while its records move:

- each step takes the ``MIGRATE_BATCH`` oldest version-1 records (time index order) and
  moves them with one script (``scripts.MIGRATE_LUA``) into the hot tier and the id map,
  removing them from the four version-1 keys in the same script. A record whose version-1
  payload changed since it was read is left for the next step; one that left the window is
  only deleted; one that version 2 already holds (a newer write) is only deleted;
- readers read the legacy tier before the hot tier in every step, so a record moved in
  between is seen in the hot tier (``reader.py``);
- the write script treats a record still in the version-1 keys like a stored one: an equal
  payload is a duplicate, a changed one replaces it (the version-1 entries are removed);
- a moved record is counted in the tenant's daily summary by the script that moves it
  (version 1 kept none), with its contribution in its id-map value as the writer does;
- the sealer then moves the migrated records into day segments, oldest first.

``sweeper.sweep_expired`` migrates lazily (``MIGRATE_PER_SWEEP`` records per tenant per
sweep); ``cdrstream migrate`` runs it to the end, sealing as it goes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from cdrstream.core.summary import contribution, encode_contribution, first_day
from cdrstream.store import codec, legacy
from cdrstream.store.idmap import Shape, read_shape, run_shaped
from cdrstream.store.layout import (
    ID_TARGET,
    NO_VERSION,
    bucket_key,
    bucket_of,
    id8,
    id_value,
    meta_key,
    split_pairs,
)
from cdrstream.store.scripts import MIGRATE, SPLIT, pack_write
from cdrstream.store.sealer import SEAL_BATCH, seal_tenant
from cdrstream.store.summary import summary_key
from cdrstream.store.writer import TTL_MARGIN_MS, tenant_fixed_keys

#: The writer's default zone of the daily summaries (``settings.display_tz``'s default).
DEFAULT_ZONE = "Europe/Amsterdam"

#: Records one migrate call moves (bounds the time it holds Redis: ~15 us a record).
MIGRATE_BATCH = 500
#: Records a sweep moves per tenant (a tenant of 1,000,000 records takes ~50 sweeps).
MIGRATE_PER_SWEEP = 20_000


@dataclass(slots=True)
class MigrateStats:
    moved: int = 0  # records moved into the hot tier
    dropped: int = 0  # version-1 entries removed without a move (out of window, superseded)
    sealed: int = 0
    left: int = 0  # version-1 records still to move


async def legacy_count(redis: Any, tenant_id: str) -> int:
    return int(await redis.zcard(legacy.time_key(tenant_id)))


async def migrate_step(
    redis: Any,
    tenant_id: str,
    *,
    now_ms: int,
    retention_ms: int,
    display_tz: str = DEFAULT_ZONE,
    shape: Shape | None = None,
) -> tuple[int, int, Shape]:
    """Move up to ``MIGRATE_BATCH`` of the oldest version-1 records; (moved, dropped, shape).

    Each moved record gets its daily-summary contribution (in ``display_tz``, the zone the
    writer counts in) in its id-map value and is added to the summary in the same script.
    """
    t, r = legacy.time_key(tenant_id), legacy.records_key(tenant_id)
    members = list(await redis.zrange(t, b"-", b"+", bylex=True, offset=0, num=MIGRATE_BATCH))
    if not members:
        # Version 1 always indexed its records; a hash entry without one is unreachable.
        ids = [k async for k in redis.hscan_iter(r, count=MIGRATE_BATCH, no_values=True)]
        if not ids:
            return 0, 0, shape or (0, 0)
        members = [b"\0" * 6 + i for i in ids[:MIGRATE_BATCH]]
    ids = [m[6:] for m in members]
    payloads = await redis.hmget(r, ids)
    orphans = [m for m, p in zip(members, payloads, strict=True) if p is None]
    if orphans:
        await redis.zrem(t, *orphans)
    zone = ZoneInfo(display_tz)
    items = []
    for rid, payload in zip(ids, payloads, strict=True):
        if payload is None:
            continue
        text = rid.decode("utf-8")
        record = codec.decode(tenant_id, text, payload)
        extra = encode_contribution(contribution(record, zone))
        value = id_value(record.started_at_ms, payload, NO_VERSION, extra)
        items.append((id8(text), value, rid, payload))
    if not items:
        return 0, len(orphans), shape or (0, 0)
    cutoff = now_ms - retention_ms
    ttl = retention_ms + TTL_MARGIN_MS

    def build(shape: Shape) -> tuple[list[str], list[Any]]:
        buckets: dict[int, int] = {}
        packed = []
        for key8, value, rid, payload in items:
            index = buckets.setdefault(bucket_of(key8, *shape), len(buckets))
            packed.append(pack_write(index, key8, value, rid, payload))
        keys = tenant_fixed_keys(tenant_id) + [bucket_key(tenant_id, b) for b in buckets]
        keys.append(summary_key(tenant_id))
        return keys, [cutoff, ttl, shape[0], shape[1], b"".join(packed), floor]

    floor = first_day(now_ms, retention_ms, zone)

    answer = await run_shaped(redis, tenant_id, MIGRATE, build, shape)
    moved = int(answer[2])
    shape = await grow(redis, tenant_id, (int(answer[0]), int(answer[1])), moved)
    return moved, len(items) - moved + len(orphans), shape


async def grow(redis: Any, tenant_id: str, shape: Shape, added: int) -> Shape:
    """Split id-map buckets for ``added`` new ids (the writer does it in its pipeline)."""
    count = min(512, math.ceil(added / ID_TARGET) + 2)

    def build(shape: Shape) -> tuple[list[str], list[Any]]:
        pairs = split_pairs(shape[0], shape[1], count)
        keys = [meta_key(tenant_id)] + [bucket_key(tenant_id, b) for p in pairs for b in p]
        return keys, [shape[0], shape[1], count, ID_TARGET]

    answer = await run_shaped(redis, tenant_id, SPLIT, build, shape)
    return int(answer[0]), int(answer[1])


async def migrate_tenant(
    redis: Any,
    tenant_id: str,
    *,
    now_ms: int,
    retention_ms: int,
    budget: int | None = None,
    seal: bool = True,
    display_tz: str = DEFAULT_ZONE,
) -> MigrateStats:
    """Move the tenant's version-1 records (at most ``budget``; None: all), sealing the
    moved ones as they accumulate (``seal``); ``display_tz``: see ``migrate_step``."""
    stats = MigrateStats()
    shape = await read_shape(redis, tenant_id)
    since_seal = 0
    while budget is None or stats.moved + stats.dropped < budget:
        moved, dropped, shape = await migrate_step(
            redis,
            tenant_id,
            now_ms=now_ms,
            retention_ms=retention_ms,
            display_tz=display_tz,
            shape=shape,
        )
        stats.moved += moved
        stats.dropped += dropped
        since_seal += moved
        if seal and since_seal >= SEAL_BATCH:
            stats.sealed += (
                await seal_tenant(
                    redis, tenant_id, now_ms=now_ms, retention_ms=retention_ms, everything=True
                )
            ).sealed
            since_seal = 0
        if not moved and not dropped:
            break
    if seal and since_seal:
        stats.sealed += (
            await seal_tenant(
                redis, tenant_id, now_ms=now_ms, retention_ms=retention_ms, everything=True
            )
        ).sealed
    stats.left = await legacy_count(redis, tenant_id)
    return stats
