"""The write path: a batch of records upserted by id, in one network round trip.

A batch becomes one pipeline: per tenant, one EVALSHA of the write script per chunk of
that tenant's records (in batch order; the last one also splits id-map buckets for the ids
the batch may add), and one ``SADD cdr:tenants`` with every tenant of the batch. The write
script (``lua/write.lua``) looks each record up in the id map, reports an unchanged one
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

from cdrstream.core.record import CallRecord
from cdrstream.core.summary import contribution, encode_contribution, first_day
from cdrstream.core.versions import version_of
from cdrstream.store import codec
from cdrstream.store.layout import ID_TARGET, MAX_STORED_MS, TENANTS_KEY, Shape, id_key, id_value
from cdrstream.store.runner import Call, Command, run_pipeline
from cdrstream.store.scripts import WriteItem, write_call

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
class _Call:
    tenant: str
    positions: list[int]  # of its records in the batch
    items: list[WriteItem]
    splits: int  # bucket splits this call may do (the tenant's last call of the batch)


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
        by_tenant: dict[str, list[tuple[int, WriteItem]]] = {}
        for position, (record, event) in enumerate(zip(records, times, strict=True)):
            payload = _encode(record)
            if not payload:
                continue
            rid = record.id.encode("utf-8")
            version = version_of(record, event)
            if record.started_at_ms < cutoff:
                item = WriteItem(id_key(record.id), id_value(0, b"", version), rid, b"")
            else:
                # The id-map value carries the record's summary contribution, so that a
                # replacement can take away exactly what this version adds.
                extra = encode_contribution(contribution(record, self._zone))
                value = id_value(record.started_at_ms, payload, version, extra)
                item = WriteItem(id_key(record.id), value, rid, payload)
            by_tenant.setdefault(record.tenant_id, []).append((position, item))
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
                positions = [position for position, _ in part]
                todo.append(_Call(tenant, positions, [i for _, i in part], splits if last else 0))
        tenants = list(by_tenant)
        first_round = True
        for _ in range(MAX_ROUNDS):
            calls: list[Call] = [
                write_call(
                    call.tenant,
                    self._shape(call.tenant),
                    call.items,
                    cutoff_ms=cutoff,
                    ttl_ms=ttl,
                    summary_floor=floor,
                    splits=call.splits,
                )
                for call in todo
            ]
            if first_round:
                calls.append(Command("SADD", [TENANTS_KEY, *tenants]))
            answers = await run_pipeline(self._redis, calls)
            first_round = False
            stale: set[str] = set()
            for call, answer in zip(todo, answers[: len(todo)], strict=True):
                if call.tenant in stale:
                    continue
                if int(answer[0]) == -1:
                    self._shapes[call.tenant] = (int(answer[1]), int(answer[2]))
                    stale.add(call.tenant)
                    continue
                self._shapes[call.tenant] = (int(answer[0]), int(answer[1]))
                for position, flag in zip(call.positions, answer[2], strict=True):
                    out[position] = "stored" if int(flag) else "duplicate"
            if not stale:
                return out
            todo = [c for c in todo if c.tenant in stale]
        raise RuntimeError("the id-map shape kept changing under the write")

    def _shape(self, tenant: str) -> Shape:
        return self._shapes.get(tenant, (0, 0))
