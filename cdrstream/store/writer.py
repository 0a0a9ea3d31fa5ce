"""The write path: a batch of records upserted by id, in one network round trip.

A batch becomes one pipeline: per tenant, one EVALSHA of the write script per chunk of
that tenant's records (in batch order; the last one also splits id-map buckets for the ids
the batch may add), and one ``SADD cdr:tenants`` with every tenant of the batch. The write
script (``scripts.WRITE_LUA``) looks each record up in the id map, reports an unchanged one
as a duplicate, and puts a new or changed one into the tenant's hot tier (two hash fields
and a sorted-set member: ``layout.py``). On a single Redis the pipeline is one round trip;
on Redis Cluster it is one (non-transactional) round trip per node, the nodes in parallel.

Id-map buckets are addressed with the tenant's id-map shape, cached here per tenant; a
script that finds the shape changed (another worker split buckets) changes nothing and
answers with the current shape, and that call and the tenant's later calls are sent again.

Records already outside the window (``started_at < now - retention``) are not stored:
the worker counts such events as ``expired`` before it calls ``write_batch``; one that
slips through (the clock moved in between) is reported ``"duplicate"`` (nothing new
becomes visible) and any stored version of it is removed.

Replaying a batch is harmless: each record's content digest is compared with the one the
id map holds and reported ``"duplicate"`` when equal, so the worker may retry a whole batch
after any error (a redis error is raised to the caller; part of the batch may have been
applied). The id map also holds each record's version (``core/versions.py``): a record
older than the stored version of its call (a rebuild beside live workers) changes nothing
and is reported ``"duplicate"`` too.

The same script announces every record it stores or replaces on the tenant's live stream
and keeps the tenant's daily summary in step (``live.py``, ``summary.py``): each record's
id-map value ends with its summary contribution (its day in ``display_tz``, direction,
answered, talk seconds, disposition), computed here because Lua has no time zone data.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from zoneinfo import ZoneInfo

from redis.exceptions import NoScriptError

from cdrstream.core.record import CallRecord
from cdrstream.core.summary import contribution, encode_contribution, first_day
from cdrstream.core.versions import version_of
from cdrstream.store import codec
from cdrstream.store.layout import (
    ID_TARGET,
    MAX_STORED_MS,
    TENANTS_KEY,
    bucket_key,
    bucket_of,
    hot_key,
    hot_time_key,
    id8,
    id_value,
    meta_key,
    split_pairs,
    tombstones_key,
)
from cdrstream.store.legacy import tenant_keys as legacy_keys
from cdrstream.store.live import KEEP_MS, MAX_ENTRIES, live_key
from cdrstream.store.scripts import WRITE, pack_write, send_once_more_if_stale
from cdrstream.store.summary import summary_key

WriteResult = Literal["stored", "duplicate"]

log = logging.getLogger("cdrstream.store")

#: Records per script call: bounds the time one call holds Redis (~5 us a record).
CHUNK = 500
#: Keys live this long after the tenant's last write (retention + 1 day).
TTL_MARGIN_MS = 86_400_000
#: Most bucket splits one write call does (two declared keys each).
MAX_SPLITS = 512
#: Rounds of "the shape changed, send again" before giving up on a batch.
MAX_ROUNDS = 8

Shape = tuple[int, int]


def tenant_fixed_keys(tenant_id: str) -> list[str]:
    """KEYS[1..8] of the write and migrate scripts."""
    return [
        meta_key(tenant_id),
        hot_key(tenant_id),
        hot_time_key(tenant_id),
        tombstones_key(tenant_id),
        *legacy_keys(tenant_id),
    ]


def _encode(record: CallRecord) -> bytes:
    """The record's payload, or b"" for a record the store cannot hold.

    Such a record (a time beyond 2**48 ms, a string that is not valid Unicode, an integer
    beyond 64 bits) would fail the batch on every retry and stall the worker, so it is
    logged and reported ``"duplicate"`` instead. The rules never produce one.
    """
    try:
        if not 0 <= record.started_at_ms <= MAX_STORED_MS:
            raise ValueError("started_at_ms out of range")
        record.id.encode("utf-8")
        record.tenant_id.encode("utf-8")
        return codec.encode(record)
    except (TypeError, ValueError) as exc:
        log.warning("record %r of tenant %r not storable: %s", record.id, record.tenant_id, exc)
        return b""


@dataclass(slots=True)
class _Item:
    position: int  # in the batch
    key8: bytes
    value: bytes  # S6 + digest (b"" for a record out of the window)
    rid: bytes
    payload: bytes


@dataclass(slots=True)
class _Call:
    tenant: str
    items: list[_Item]
    keys: list[str]
    args: list[Any]
    splits: int  # bucket splits this call may do (the tenant's last call of the batch)


def build_call(
    tenant: str,
    items: Sequence[_Item],
    shape: Shape,
    cutoff: int,
    ttl: int,
    summary_floor: int,
    splits: int = 0,
) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of one write-script call for ``items`` under id-map ``shape``, with the
    bucket pairs of the next ``splits`` splits; the tenant's summary and live stream last
    (the write script's hooks)."""
    level, split = shape
    buckets: dict[int, int] = {}
    packed = []
    for item in items:
        bucket = bucket_of(item.key8, level, split)
        index = buckets.setdefault(bucket, len(buckets))
        packed.append(pack_write(index, item.key8, item.value, item.rid, item.payload))
    keys = tenant_fixed_keys(tenant) + [bucket_key(tenant, b) for b in buckets]
    keys += [bucket_key(tenant, b) for pair in split_pairs(level, split, splits) for b in pair]
    keys += [summary_key(tenant), live_key(tenant)]
    args = [cutoff, ttl, level, split, len(buckets), splits, ID_TARGET, b"".join(packed)]
    return keys, [*args, summary_floor, KEEP_MS, MAX_ENTRIES]


class RecordWriter:
    """``display_tz``: the zone whose dates the daily summaries count in (the API's)."""

    def __init__(
        self, redis: Any, *, retention_ms: int, display_tz: str = "Europe/Amsterdam"
    ) -> None:
        self._redis = redis
        self._retention_ms = retention_ms
        self._zone = ZoneInfo(display_tz)
        self._shapes: dict[str, Shape] = {}

    async def write_batch(
        self,
        records: Sequence[CallRecord],
        now_ms: int,
        event_ms: Sequence[int | None] | None = None,
    ) -> list[WriteResult]:
        """Upsert ``records``; one result per record. ``event_ms``: each record's event time
        (its Kafka timestamp), for ``core.versions``: a record older than the stored
        version of its call changes nothing and is reported ``"duplicate"``. Without
        ``event_ms`` (or on a tie) the last written wins."""
        if not records:
            return []
        times = event_ms if event_ms is not None else [None] * len(records)
        cutoff = now_ms - self._retention_ms
        ttl = self._retention_ms + TTL_MARGIN_MS
        floor = first_day(now_ms, self._retention_ms, self._zone)
        by_tenant: dict[str, list[_Item]] = {}
        for position, (record, event) in enumerate(zip(records, times, strict=True)):
            payload = _encode(record)
            if not payload:
                continue
            rid = record.id.encode("utf-8")
            version = version_of(record, event)
            if record.started_at_ms < cutoff:
                item = _Item(position, id8(record.id), id_value(0, b"", version), rid, b"")
            else:
                # The id-map value carries the record's summary contribution, so that a
                # replacement can take away exactly what this version adds.
                extra = encode_contribution(contribution(record, self._zone))
                value = id_value(record.started_at_ms, payload, version, extra)
                item = _Item(position, id8(record.id), value, rid, payload)
            by_tenant.setdefault(record.tenant_id, []).append(item)
        out: list[WriteResult] = ["duplicate"] * len(records)
        if not by_tenant:
            return out

        todo: list[_Call] = []
        for tenant, items in by_tenant.items():
            # The tenant's last call splits buckets for the ids the batch may add.
            splits = min(MAX_SPLITS, math.ceil(len(items) / ID_TARGET) + 2)
            for start in range(0, len(items), CHUNK):
                part = items[start : start + CHUNK]
                last = start + CHUNK >= len(items)
                call = _Call(tenant, part, [], [], splits if last else 0)
                todo.append(call)
        tenants = list(by_tenant)
        first_round = True
        for _ in range(MAX_ROUNDS):
            for call in todo:
                call.keys, call.args = build_call(
                    call.tenant, call.items, self._shape(call.tenant), cutoff, ttl, floor,
                    call.splits,
                )  # fmt: skip
            answers = await self._send(todo, tenants if first_round else [])
            first_round = False
            stale: set[str] = set()
            for call, answer in zip(todo, answers, strict=True):
                if call.tenant in stale:
                    continue
                if int(answer[0]) == -1:
                    self._shapes[call.tenant] = (int(answer[1]), int(answer[2]))
                    stale.add(call.tenant)
                    continue
                self._shapes[call.tenant] = (int(answer[0]), int(answer[1]))
                for item, flag in zip(call.items, answer[2], strict=True):
                    out[item.position] = "stored" if int(flag) else "duplicate"
            if not stale:
                return out
            todo = [c for c in todo if c.tenant in stale]
        raise RuntimeError("the id-map shape kept changing under the write")

    def _shape(self, tenant: str) -> Shape:
        return self._shapes.get(tenant, (0, 0))

    async def _send(self, calls: list[_Call], tenants: list[str]) -> list[Any]:
        """The write calls, then the SADD: one pipeline. Returns the calls' answers."""

        async def send() -> list[Any]:
            pipe = self._redis.pipeline(transaction=False)
            for call in calls:
                # execute_command: redis-py blocks pipe.evalsha() on cluster pipelines, but
                # routes a raw EVALSHA by its first key (all keys share the tenant's slot).
                pipe.execute_command("EVALSHA", WRITE.sha, len(call.keys), *call.keys, *call.args)
            if tenants:
                pipe.sadd(TENANTS_KEY, *tenants)
            return list(await pipe.execute(raise_on_error=False))

        results = await send_once_more_if_stale(self._redis, send)
        if any(isinstance(r, NoScriptError) for r in results):
            # A restarted or flushed Redis: load the script and send the calls again
            # (idempotent), keeping the first answers of the calls that did run.
            await WRITE.load(self._redis)
            again = await send()
            results = [
                b if isinstance(a, NoScriptError) else a
                for a, b in zip(results, again, strict=True)
            ]
        for r in results:
            if isinstance(r, Exception):
                raise r
        return results[: len(calls)]
