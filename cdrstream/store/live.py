"""The live tail in Redis: one capped Redis Stream per tenant, written by the write script.

=====================  ======  ==============================================================
key                    type    content
=====================  ======  ==============================================================
``cdr:{T}:live``       STREAM  one entry per record stored or replaced, field ``i`` = the
                               record id; entry ids (``<ms>-<seq>``, Redis's clock) are the
                               live tail's event ids (``Last-Event-ID``).
=====================  ======  ==============================================================

**Announced in the same script as the record.** The write script calls
``live_announce(id)`` exactly where it stores a new or changed record (``lua/live.lua``), so
a record is never announced without being stored nor stored without being announced; a
duplicate (same content), an event that was hidden, expired or invalid (it never reaches
the store) is never announced. The key is tagged ``{T}`` and declared in ``KEYS`` like
every other key of the script: it runs unchanged on Redis Cluster.

**Bounded.** An entry holds only the id (the API reads the record itself, so a reader is
always shown the record as stored, through its ``RecordView``); each call trims entries
older than :data:`KEEP_MS` (``XTRIM MINID ~``: whole stream nodes, cheap) and every
``XADD`` caps the stream at :data:`MAX_ENTRIES` (``MAXLEN ~``), so memory is bounded by
the rate: ~16 minutes of a tenant's records, about 20 bytes each (a tenant writing more than
:data:`MAX_ENTRIES` records in 16 minutes, ~1,000/s, keeps fewer minutes). The stream
key gets the tenant keys' TTL and is otherwise never deleted: an emptied stream keeps its
last id and the largest id it trimmed, which is how the API tells a client whether it
missed anything (``core.sse.resume_plan``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.exceptions import ResponseError

from cdrstream.core.record import CallRecord
from cdrstream.core.sse import ZERO, StreamId, StreamState, format_id, parse_id
from cdrstream.store import codec
from cdrstream.store.layout import hot_key

#: Entries are kept at least this long (the live tail's promise is 15 minutes).
KEEP_MS = 16 * 60_000
#: At most this many entries per tenant (approximately: whole stream nodes are trimmed).
MAX_ENTRIES = 1_000_000
#: The record id field of an entry.
ID_FIELD = b"i"


def live_key(tenant_id: str) -> str:
    return "cdr:{" + tenant_id + "}:live"


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


async def stream_state(redis: Any, tenant_id: str) -> StreamState:
    """The tenant stream's last id, its oldest entry, whether entries were trimmed
    (XINFO STREAM)."""
    try:
        info = await redis.xinfo_stream(live_key(tenant_id))
    except ResponseError as exc:
        if "no such key" in str(exc).lower():
            return StreamState(exists=False)
        raise
    fields = {_text(k): v for k, v in info.items()}
    last = parse_id(_text(fields.get("last-generated-id", b"0-0"))) or ZERO
    deleted = parse_id(_text(fields.get("max-deleted-entry-id", b"0-0"))) or ZERO
    length = int(fields.get("length", 0))
    first_entry = fields.get("first-entry")
    first = parse_id(_text(first_entry[0])) if length and first_entry else None
    trimmed = int(fields.get("entries-added", length)) > length
    return StreamState(exists=True, last=last, first=first, trimmed=trimmed, max_deleted=deleted)


def _entries(raw: Sequence[Any]) -> list[tuple[StreamId, str]]:
    out = []
    for entry_id, fields in raw:
        sid = parse_id(entry_id)
        rid = fields.get(ID_FIELD) if isinstance(fields, dict) else None
        if rid is None and isinstance(fields, dict):
            rid = fields.get("i")
        if sid is not None and rid is not None:
            out.append((sid, _text(rid)))
    return out


async def read_after(
    redis: Any, tenant_id: str, after: StreamId, count: int
) -> list[tuple[StreamId, str]]:
    """Up to ``count`` entries after ``after``, oldest first: (entry id, record id)."""
    raw = await redis.xrange(live_key(tenant_id), min="(" + format_id(after), count=count)
    return _entries(raw)


async def wait_after(
    redis: Any, tenant_id: str, after: StreamId, count: int, block_ms: int
) -> list[tuple[StreamId, str]]:
    """Entries after ``after``, waiting up to ``block_ms`` for one (XREAD BLOCK)."""
    reply = await redis.xread({live_key(tenant_id): format_id(after)}, count=count, block=block_ms)
    out: list[tuple[StreamId, str]] = []
    if not reply:
        return out
    # RESP2: [[key, entries]]; RESP3: {key: [entries]}
    streams = reply.values() if isinstance(reply, dict) else (raw for _, raw in reply)
    for raw in streams:
        if raw and isinstance(raw[0], list) and isinstance(raw[0][0], tuple | list):
            raw = raw[0]
        out.extend(_entries(raw))
    return out


async def fetch_records(
    redis: Any, reader: Any, tenant_id: str, record_ids: Sequence[str]
) -> list[CallRecord | None]:
    """The records of ``record_ids`` as stored now (None: gone), in order.

    A record just announced is in the hot tier: one HMGET finds it. One that is not (it
    was sealed since, or replaced by an older start) is looked up by the reader's ``get``.
    """
    if not record_ids:
        return []
    payloads = await redis.hmget(hot_key(tenant_id), list(record_ids))
    out: list[CallRecord | None] = []
    for rid, payload in zip(record_ids, payloads, strict=True):
        if payload is not None:
            out.append(codec.decode(tenant_id, rid, payload))
        else:
            out.append(await reader.get(tenant_id, rid))
    return out
