"""The Redis layout of the CDR store (version 2): every key, its type, its encoding, and why.

A tenant's records live in three tiers, newest first:

- **hot**: records written recently, one small hash entry each, no per-record index;
- **sealed**: once their hour is past (``sealer.seal_boundary``; or when the hot tier of a
  tenant outgrows ``sealer.HOT_MAX``) records are moved, a day at a time, into one
  compressed string per (tenant, UTC day) plus a sorted index string per day: the way
  time-series stores compact old data;
- **legacy**: records of the version-1 layout (``legacy.py``) that a worker has not yet
  migrated (``migrate.py``); read, never written.

All of one tenant's keys carry the hash tag ``{tenant_id}``: one hash slot, so the Lua
scripts that touch several of them run unchanged on Redis Cluster. Every script declares
every key it touches in ``KEYS``: names that depend on data (an id-map bucket, a day) are
computed by the client (``bucket_of``, ``day_of``) and checked by the script against the
state it reads (a stale id-map shape makes the write script answer "retry" and change
nothing). No key name is built inside Lua.

======================  ======  ==============================================================
key                     type    content
======================  ======  ==============================================================
``cdr:{T}:m``           HASH    meta: ``L``, ``p`` (id-map shape, below), ``n`` (ids in the
                                id map), ``wm`` (window watermark: records that started
                                before it are gone), ``ts`` (tombstone sequence), ``sb``
                                (the hour boundary the hot tier was last sealed to).
``cdr:{T}:i:<b>``       HASH    id-map bucket ``b``: field ``id8`` (8 bytes of BLAKE2b of the
                                record id) -> ``S6 + digest6 + V12`` (the record's start, 6
                                bytes of BLAKE2b of its payload, its version: ended_at and
                                event time, 6 bytes each; a feature may append bytes it
                                keeps per record). The upsert-by-id table: a replayed
                                record finds an equal value and adds nothing; a changed
                                one is found wherever it is stored; an older version of
                                it changes nothing (``core/versions.py``). Listpack
                                encoded (<= 128 fields of <= 64 bytes: Redis defaults).
``cdr:{T}:h``           HASH    hot records: field record id (UTF-8) -> payload
                                (``codec.encode``, the version-1 JSON array).
``cdr:{T}:ht``          ZSET    hot time index, score 0, member ``S6 + id``: newest-first
                                lex walks with exact cursor bounds (as version 1's ``t``).
``cdr:{T}:k``           HASH    tombstones: field ``S6 + id`` -> sequence number. "No current
                                version of this id started at S6": set when a record's
                                start changed or it left the window by an update, so the
                                stale sealed copy is skipped until the day is sealed again.
``cdr:{T}:d``           HASH    sealed days: field day number -> records in the segment.
``cdr:{T}:s:<day>``     STRING  day segment (``segment.py``): a chunk directory and chunks
                                of 32 records, newest first, each a raw-deflate of
                                newline-separated JSON rows ``[id, ...payload]``.
``cdr:{T}:y:<day>``     STRING  day index (``segment.py``): sorted fixed-width entries
                                (number as 16 BCD nibbles, chunk, row) and (extension hash,
                                chunk, row), binary-searched by the read script.
``cdr:{T}:lock``        STRING  the sealer's per-tenant lock (SET NX PX).
``cdr:tenants``         SET     tenant ids that have written records (not tenant-tagged:
                                one SADD per batch, outside the scripts).
======================  ======  ==============================================================

**Id map shape** (linear hashing): with ``L`` and ``p`` from the meta hash there are
``2**L + p`` buckets; a record's bucket is ``h % 2**L``, or ``h % 2**(L+1)`` when that is
below ``p``, with ``h`` the first 4 bytes of ``id8``. When the map holds more than
``ID_TARGET`` ids per bucket, the write script splits bucket ``p`` into ``p`` and
``p + 2**L`` (the client declares the next ``SPLITS_PER_CALL`` pairs of bucket keys), so
buckets stay small listpacks whatever the tenant's size: about 49 bytes per id.

**Readers never miss a record that moves**: records only move forward (legacy -> hot ->
sealed), each move is one script, and a reader reads the tiers of a range in that order
(one pipeline, commands run in order), so a record moved between two of its reads is seen
in the later tier; the same id seen twice is kept once (hot before sealed).

**Window**: reads are bounded by ``now - retention``; the watermark ``wm`` makes records
that started before it invisible to ``get`` at once; the sweeper deletes hot records
individually and a sealed day as a whole when all of it has left the window (with the
id-map entries of its records). Hot, meta, tombstone and day-list keys get a TTL of
retention + 1 day on each write, segments expire one day after their day leaves the window;
id-map buckets have no TTL: they empty as days are dropped (an empty hash is deleted).

Memory at 1,000,000 records of the benchmark's tenant (52-character call ids, 12-digit
numbers, SIP-URI and national raw forms, 200 extensions), Redis 7.0: ~139 bytes per record
(``used_memory``): ~76 of segments, ~30 of day indexes, ~36 of id map (its values carry the
daily summary's 7 bytes), ~1 of hot tier; the previous layout took 768. The measured points
and the page costs per filter: ``docs/pipeline.md`` ("Redis memory, write cost and pages").
"""

from __future__ import annotations

import hashlib

from cdrstream.core.versions import Version

KEY_PREFIX = "cdr"
TENANTS_KEY = f"{KEY_PREFIX}:tenants"

#: started_at_ms must fit the 6 bytes of ``S6`` (up to the year 10889).
MAX_STORED_MS = (1 << 48) - 1
DAY_MS = 86_400_000
NUL = b"\x00"
#: Greater than any byte that can follow a number's digits in a version-1 ``n`` member.
HIGH = b"\xff"

#: Ids per id-map bucket above which buckets are split (linear hashing keeps unsplit
#: buckets at up to twice this, well inside the listpack limit of 128 fields).
ID_TARGET = 40
#: Bucket splits the write script may do per call (each needs two declared keys).
SPLITS_PER_CALL = 16


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


def s6(ms: int) -> bytes:
    """``ms`` as 6 bytes big-endian, clamped to [0, MAX_STORED_MS] (bounds of ranges only)."""
    return min(max(ms, 0), MAX_STORED_MS).to_bytes(6, "big")


def day_of(ms: int) -> int:
    return ms // DAY_MS


def number_digits(number: str) -> bytes | None:
    """The digits an E.164 number or prefix is indexed under, or None if not ``+<digits>``."""
    if number.startswith("+") and number[1:].isascii() and number[1:].isdigit():
        return number[1:].encode("ascii")
    return None


def hot_member(started_ms: int, record_id: str) -> bytes:
    """A record's member of ``ht`` (and of version 1's ``t``)."""
    return s6(started_ms) + record_id.encode("utf-8")


def split_member(member: bytes, keyed: bool) -> tuple[int, bytes]:
    """(started_ms, id bytes) of an index member; ``keyed``: the member has a ``key NUL`` head."""
    start = member.index(NUL) + 1 if keyed else 0
    return int.from_bytes(member[start : start + 6], "big"), member[start + 6 :]


def id8(record_id: str) -> bytes:
    """The 8-byte key of a record id in the id map."""
    return hashlib.blake2b(record_id.encode("utf-8"), digest_size=8).digest()


#: The version of a record whose version is not known (moved from version 1): any write
#: of the call replaces it.
NO_VERSION = Version(0, 0)


def id_value(
    started_ms: int, payload: bytes, version: Version = NO_VERSION, extra: bytes = b""
) -> bytes:
    """An id-map value: where the record is (its start), what it is (a payload digest),
    which version of the call it is (``core.versions``: ended_at then event time, 6 bytes
    each), then ``extra``: bytes a feature keeps per record (part of the content, like the
    digest: the write script compares everything but the version to tell a duplicate)."""
    digest = hashlib.blake2b(payload, digest_size=6).digest()
    return s6(started_ms) + digest + s6(version.ended_at_ms) + s6(version.event_ms) + extra


def bucket_of(key8: bytes, level: int, split: int) -> int:
    """The id-map bucket of ``key8`` when the map has shape (L, p) = (level, split)."""
    h = int.from_bytes(key8[:4], "big")
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
