"""The write path: a batch of records upserted by id, in one network round trip.

A batch becomes one pipeline: per tenant, one ``SADD cdr:tenants`` (with every tenant of
the batch) and one EVALSHA of the write script per chunk of that tenant's records, in
batch order. The script (``scripts.WRITE_LUA``) upserts each record by id, keeps every
index in step (a changed record loses its old index entries), trims the tenant's records
that left the window (bounded, and only when there are some) and refreshes the TTL of the
tenant's keys. On a single Redis the pipeline is one round trip; on Redis Cluster it is
one (non-transactional) round trip per node, the nodes in parallel.

Records already outside the window (``started_at < now - retention``) are not stored:
the worker counts such events as ``expired`` before it calls ``write_batch``; one that
slips through (the clock moved in between) is reported ``"duplicate"`` (nothing new
becomes visible) and any stored version of it is removed.

Replaying a batch is harmless: each record is compared byte for byte with the stored one
and reported ``"duplicate"`` when equal, so the worker may retry a whole batch after any
error (a redis error is raised to the caller; part of the batch may have been applied).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

from redis.exceptions import NoScriptError

from cdrstream.core.record import CallRecord
from cdrstream.store import codec
from cdrstream.store.layout import MAX_MS, TENANTS_KEY, index_members, tenant_keys
from cdrstream.store.scripts import WRITE, pack_record

WriteResult = Literal["stored", "duplicate"]

log = logging.getLogger("cdrstream.store")

#: Records per script call: bounds the time one call holds Redis (~10 us a record).
CHUNK = 500
#: Expired records one write call may delete (the sweeper does bulk removals).
TRIM_PER_CALL = 200
#: Keys live this long after the tenant's last write (retention + 1 day).
TTL_MARGIN_MS = 86_400_000


def _encode(record: CallRecord) -> bytes:
    """The record's payload, or b"" for a record the store cannot hold.

    Such a record (a time beyond 2**48 ms, a string that is not valid Unicode, an integer
    beyond 64 bits) would fail the batch on every retry and stall the worker, so it is
    logged and reported ``"duplicate"`` instead. The rules never produce one.
    """
    try:
        if not 0 <= record.started_at_ms <= MAX_MS:
            raise ValueError("started_at_ms out of range")
        record.id.encode("utf-8")
        record.tenant_id.encode("utf-8")
        return codec.encode(record)
    except (TypeError, ValueError) as exc:
        log.warning("record %r of tenant %r not storable: %s", record.id, record.tenant_id, exc)
        return b""


class RecordWriter:
    def __init__(self, redis: Any, *, retention_ms: int) -> None:
        self._redis = redis
        self._retention_ms = retention_ms

    async def write_batch(self, records: Sequence[CallRecord], now_ms: int) -> list[WriteResult]:
        """Upsert ``records`` (same id twice: in order, last wins); one result per record."""
        if not records:
            return []
        cutoff = now_ms - self._retention_ms
        ttl = self._retention_ms + TTL_MARGIN_MS
        by_tenant: dict[str, list[int]] = {}
        payloads: list[bytes] = []
        for position, record in enumerate(records):
            payload = _encode(record)
            payloads.append(payload)
            if payload:
                by_tenant.setdefault(record.tenant_id, []).append(position)
        if not by_tenant:
            return ["duplicate"] * len(records)

        calls: list[tuple[str, list[str], list[Any], list[int]]] = []
        for tenant, positions in by_tenant.items():
            keys = tenant_keys(tenant)
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
                        args.append(pack_record(rid, payloads[p], *members))
                calls.append((tenant, keys, args, chunk))

        results = await self._execute(list(by_tenant), calls)
        out: list[WriteResult] = ["duplicate"] * len(records)
        for (_, _, _, chunk), flags in zip(calls, results, strict=True):
            for p, flag in zip(chunk, flags, strict=True):
                out[p] = "stored" if flag else "duplicate"
        return out

    async def _execute(
        self, tenants: list[str], calls: list[tuple[str, list[str], list[Any], list[int]]]
    ) -> list[list[int]]:
        first = await self._pipeline(tenants, calls)
        if any(isinstance(r, NoScriptError) for r in first):
            # A restarted or flushed Redis: load the script and replay the whole batch in
            # order (idempotent), keeping the first answers of the calls that did run.
            await WRITE.load(self._redis)
            second = await self._pipeline(tenants, calls)
            first = [
                b if isinstance(a, NoScriptError) else a for a, b in zip(first, second, strict=True)
            ]
        for result in first:
            if isinstance(result, Exception):
                raise result
        return [[int(x) for x in r] for r in first]

    async def _pipeline(
        self, tenants: list[str], calls: list[tuple[str, list[str], list[Any], list[int]]]
    ) -> list[Any]:
        pipe = self._redis.pipeline(transaction=False)
        for _, keys, args, _ in calls:
            # execute_command: redis-py blocks pipe.evalsha() on cluster pipelines, but
            # routes a raw EVALSHA by its first key (all keys share the tenant's slot).
            pipe.execute_command("EVALSHA", WRITE.sha, len(keys), *keys, *args)
        pipe.sadd(TENANTS_KEY, *tenants)
        results = await pipe.execute(raise_on_error=False)
        sadd = results[-1]
        if isinstance(sadd, Exception) and not isinstance(sadd, NoScriptError):
            raise sadd
        return list(results[:-1])
