"""The Redis layout of the CDR store: every key, its type, its encoding, and why.

A tenant's records live in two tiers, newest first:

- **hot**: records written recently, one small hash entry each, no per-record index;
- **sealed**: once their hour is past (``sealer.seal_boundary``; or when the hot tier of a
  tenant outgrows ``sealer.HOT_MAX``) records are moved, a day at a time, into one
  compressed string per (tenant, UTC day) plus a sorted index string per day
  (``segment.py``): the way time-series stores compact old data.

(An earlier layout, "version 1", a records hash and three sorted sets per tenant, was
never released; it and its migration were deleted.)

All of one tenant's keys carry the hash tag ``{tenant_id}``: one hash slot, so the Lua
scripts that touch several of them run unchanged on Redis Cluster. Every script declares
every key it touches in ``KEYS``: names that depend on data (an id-map bucket, a day) are
computed by the client (``scripts.py``, with ``bucket_of`` and ``day_of``) and checked by
the script against the state it reads (a stale id-map shape makes a script answer
"retry" and change nothing). No key name is built inside Lua.

======================  ======  ==============================================================
key                     type    content
======================  ======  ==============================================================
``cdr:{T}:m``           HASH    meta: the fields below.
``cdr:{T}:i:<b>``       HASH    id-map bucket ``b``: field ``id_key`` (8 bytes of BLAKE2b of
                                the record id) -> ``id_value``: start (6 bytes), 6 bytes of
                                BLAKE2b of the payload, version (ended_at and event time, 6
                                bytes each), then the record's daily-summary contribution
                                (7 bytes, ``core.summary.encode_contribution``). The
                                upsert-by-id table: a replayed record finds an equal value
                                and adds nothing; a changed one is found wherever it is
                                stored; an older version of it changes nothing
                                (``core/versions.py``). Listpack encoded (<= 128 fields of
                                <= 64 bytes: Redis defaults).
``cdr:{T}:h``           HASH    hot records: field record id (UTF-8) -> payload
                                (``codec.encode``, a JSON array).
``cdr:{T}:ht``          ZSET    hot time index, score 0, member ``start_bytes + id``:
                                newest-first lex walks with exact cursor bounds.
``cdr:{T}:k``           HASH    tombstones: field ``start_bytes + id`` -> sequence number.
                                "No current version of this id started then": set when a
                                record's start changed or it left the window by an update,
                                so the stale sealed copy is skipped until the day is sealed
                                again.
``cdr:{T}:d``           HASH    sealed days: field day number -> records in the segment.
``cdr:{T}:s:<day>``     STRING  day segment (``segment.py``): a chunk directory and chunks
                                of 32 records, oldest first, each a raw-deflate of
                                newline-separated JSON rows ``[id, ...payload]``.
``cdr:{T}:y:<day>``     STRING  day index (``segment.py``): sorted fixed-width entries
                                (number as 16 BCD nibbles, chunk, row) and (extension hash,
                                chunk, row), binary-searched by the read script.
``cdr:{T}:lock``        STRING  the sealer's per-tenant lock (SET NX PX).
``cdr:{T}:sum``         HASH    daily summaries (``summary.py``).
``cdr:{T}:live``        STREAM  the live tail (``live.py``).
``cdr:tenants``         SET     tenant ids that have written records (not tenant-tagged:
                                one SADD per batch, outside the scripts).
======================  ======  ==============================================================

**Meta fields** (``cdr:{T}:m``; absent means 0):

=================  ============================================================================
field              content
=================  ============================================================================
``level``          the id map's linear-hashing level (below)
``split``          the id map's next bucket to split (below)
``ids``            ids in the id map (the write script splits buckets by it)
``watermark``      records that started before it have left the window: invisible to ``get``
                   at once, removed by the sweep (ms)
``tombstone_seq``  the last tombstone's sequence number (a tombstone is deleted by a seal
                   only if its sequence is the one the seal read)
``sealed_to``      the hour boundary the hot tier was last wholly sealed to (ms): the sweep
                   seals a tenant again once a later boundary has passed
``ttl_pushed_at``  when (by the writer's cutoff clock, ms) the tenant keys' TTLs were last
                   pushed back: at most once an hour; deleted when the hot tier empties, so
                   the next write gives the new hot keys their TTL
=================  ============================================================================

One meta hash per tenant: the names' length costs nothing per record (``MEMORY USAGE`` of
a full meta hash, Redis 7.0: 176 bytes with these names, 128 with the one- and two-letter
names they replaced: 48 bytes per tenant).

**Id map shape** (linear hashing): with ``level`` and ``split`` from the meta hash there
are ``2**level + split`` buckets; a record's bucket is ``h % 2**level``, or
``h % 2**(level+1)`` when that is below ``split``, with ``h`` the first 4 bytes of its
``id_key``. When the map holds more than ``ID_TARGET`` ids per bucket, the write script
splits bucket ``split`` into ``split`` and ``split + 2**level`` (the client declares the
bucket pairs of the next splits), so buckets stay small listpacks whatever the tenant's
size: about 49 bytes per id.

**Readers never miss a record that moves**: records only move forward (hot -> sealed),
each move is one script, and a reader reads the tiers of a range in that order (one
pipeline, commands run in order), so a record moved between two of its reads is seen in
the later tier; the same id seen twice is kept once (hot before sealed).

**Window**: reads are bounded by ``now - retention``; the ``watermark`` makes records that
started before it invisible to ``get`` at once; the sweeper deletes hot records
individually and a sealed day as a whole when all of it has left the window (with the
id-map entries of its records). Hot, meta, tombstone and day-list keys get a TTL of
retention + 1 day on each write (at most hourly: ``ttl_pushed_at``), segments expire one
day after their day leaves the window; id-map buckets have no TTL: they empty as days are
dropped (an empty hash is deleted).

Memory at 1,000,000 records of the benchmark's tenant: ``docs/pipeline.md`` ("Redis
memory, write cost and pages").
"""

from __future__ import annotations

import hashlib

from cdrstream.core.versions import Version

KEY_PREFIX = "cdr"
TENANTS_KEY = f"{KEY_PREFIX}:tenants"

#: started_at_ms must fit the 6 bytes of ``start_bytes`` (up to the year 10889).
MAX_STORED_MS = (1 << 48) - 1
DAY_MS = 86_400_000

#: Ids per id-map bucket above which buckets are split (linear hashing keeps unsplit
#: buckets at up to twice this, well inside the listpack limit of 128 fields).
ID_TARGET = 40

#: The id map's shape: (level, split).
Shape = tuple[int, int]


def tenant_tag(tenant_id: str) -> str:
    return "{" + tenant_id + "}"


def _key(tenant_id: str, suffix: str) -> str:
    return f"{KEY_PREFIX}:{tenant_tag(tenant_id)}:{suffix}"


def meta_key(tenant_id: str) -> str:
    return _key(tenant_id, "m")


def hot_key(tenant_id: str) -> str:
    return _key(tenant_id, "h")


def hot_time_key(tenant_id: str) -> str:
    return _key(tenant_id, "ht")


def tombstones_key(tenant_id: str) -> str:
    return _key(tenant_id, "k")


def days_key(tenant_id: str) -> str:
    return _key(tenant_id, "d")


def bucket_key(tenant_id: str, bucket: int) -> str:
    return _key(tenant_id, f"i:{bucket}")


def segment_key(tenant_id: str, day: int) -> str:
    return _key(tenant_id, f"s:{day}")


def day_index_key(tenant_id: str, day: int) -> str:
    return _key(tenant_id, f"y:{day}")


def lock_key(tenant_id: str) -> str:
    return _key(tenant_id, "lock")


def summary_key(tenant_id: str) -> str:
    return _key(tenant_id, "sum")


def start_bytes(ms: int) -> bytes:
    """A start time as 6 bytes big-endian, clamped to [0, MAX_STORED_MS] (the clamp only
    matters for the bounds of ranges): the head of hot time members, tombstones and id-map
    values, so that bytes order as times."""
    return min(max(ms, 0), MAX_STORED_MS).to_bytes(6, "big")


def day_of(ms: int) -> int:
    return ms // DAY_MS


def number_digits(number: str) -> bytes | None:
    """The digits an E.164 number or prefix is indexed under, or None if not ``+<digits>``."""
    if number.startswith("+") and number[1:].isascii() and number[1:].isdigit():
        return number[1:].encode("ascii")
    return None


def hot_member(started_ms: int, record_id: str) -> bytes:
    """A record's member of the hot time index ``ht``."""
    return start_bytes(started_ms) + record_id.encode("utf-8")


def member_position(member: bytes) -> tuple[int, bytes]:
    """(started_ms, id bytes) of a hot time index member."""
    return int.from_bytes(member[:6], "big"), member[6:]


def id_key(record_id: str) -> bytes:
    """The 8-byte key of a record id in the id map."""
    return hashlib.blake2b(record_id.encode("utf-8"), digest_size=8).digest()


def id_value(started_ms: int, payload: bytes, version: Version, extra: bytes = b"") -> bytes:
    """An id-map value: where the record is (its start), what it is (a payload digest),
    which version of the call it is (``core.versions``: ended_at then event time, 6 bytes
    each), then ``extra``: bytes a feature keeps per record (part of the content, like the
    digest: the write script compares everything but the version to tell a duplicate)."""
    digest = hashlib.blake2b(payload, digest_size=6).digest()
    return (
        start_bytes(started_ms)
        + digest
        + start_bytes(version.ended_at_ms)
        + start_bytes(version.event_ms)
        + extra
    )


def bucket_of(key: bytes, level: int, split: int) -> int:
    """The id-map bucket of ``key`` (an ``id_key``) when the map has shape (level, split)."""
    h = int.from_bytes(key[:4], "big")
    bucket = h & ((1 << level) - 1)
    if bucket < split:
        bucket = h & ((1 << (level + 1)) - 1)
    return bucket


def split_pairs(level: int, split: int, count: int) -> list[tuple[int, int]]:
    """The (old, new) buckets of the next ``count`` splits from shape (level, split)."""
    pairs = []
    for _ in range(count):
        pairs.append((split, split + (1 << level)))
        split += 1
        if split == 1 << level:
            level, split = level + 1, 0
    return pairs
