"""The Redis layout of the CDR store: every key, its type, its encoding, and why.

All of one tenant's keys carry the hash tag ``{tenant_id}``, so they live in one hash
slot: the Lua scripts that touch several of them at once are legal on Redis Cluster, and
the same code runs on a single Redis. Every script declares, in ``KEYS``, every key it
touches (the four keys of one tenant below, all fixed names); no key name is ever built
inside Lua.

=====================  ========  ==========================================================
key                    type      content
=====================  ========  ==========================================================
``cdr:{T}:r``          HASH      field: record id (``CallRecord.id``, UTF-8, 16 chars as
                                 made by ``record_id``); value: the record, compact
                                 encoding of ``codec.py`` (an orjson array; tenant and id
                                 are not repeated in it). The upsert-by-id table:
                                 a replayed event finds its id here and adds no row.
``cdr:{T}:t``          ZSET      time index. Every score is 0; member = ``S6 + id``, where
                                 ``S6`` is ``started_at_ms`` as 6 bytes big-endian. Member
                                 order is therefore (started, id); ``ZRANGE ... BYLEX REV``
                                 walks newest first (started desc, id desc), ``from``/
                                 ``to`` and the cursor are exact lex bounds, O(log N).
``cdr:{T}:x``          ZSET      extension index, score 0, member = ``ext + NUL + S6 + id``.
                                 The members of one extension are contiguous and in time
                                 order, so an extension page is a lex range walk.
``cdr:{T}:n``          ZSET      number index, score 0, member = ``digits + NUL + S6 + id``
                                 for the E.164 source and destination (digits without the
                                 ``+``; one member when both are the same number; numbers
                                 that are not E.164, e.g. ``anonymous``, are not indexed).
                                 An exact number is a time-ordered range
                                 (``digits + NUL``); a prefix is the range
                                 ``[digits, digits + 0xFF)``, counted with ZLEXCOUNT to
                                 choose the plan (see ``reader.py``).
``cdr:tenants``        SET       tenant ids that have written records: how the sweeper
                                 and the window gauge find tenants (not tenant-tagged: it
                                 is touched with one SADD per batch, outside the scripts).
=====================  ========  ==========================================================

Member encodings are built in two places that must agree: ``index_members`` below (the
writer sends the members of each record it stores) and ``members`` in ``scripts.py``
(the scripts rebuild the members of a stored record from its payload when it is replaced
or trimmed). A NUL inside an extension is stored as 0x01 in ``x`` members, by both.

Why one key per concern, not per extension, number or time bucket: a changed record must
lose its old index entries in the same script, and its old extension, numbers and start
are known only after the script has read the old record; with fixed key names every key
a script may touch is known up front and declared. The price is memory (below).

Memory (Redis 7.0, jemalloc, ``used_memory`` before/after 100,000 records of one tenant
as the benchmark makes them: 52-char call ids, 12-digit numbers, SIP-URI and national
raw forms, 200 extensions; ``MEMORY USAGE`` per key): about **780 bytes per record**,

=========  =================  =============  ===============================================
key        encoding           bytes/record   of which
=========  =================  =============  ===============================================
``r``      hashtable          ~227           payload ~144 (160-byte allocation), field 16
                                             (32), dict entry 24 (32), bucket ~10
``t``      skiplist           ~120           member 22 (32), skiplist node ~54, dict ~42
``x``      skiplist           ~120           member ~26 (32), node, dict
``n``      skiplist           ~272           two members of ~35 (48 each), nodes, dicts
=========  =================  =============  ===============================================

so the 200-byte target of the spec is missed by ~4x. The fixed cost of a skiplist entry
(~90 bytes) and of a hashtable entry (~75 bytes) times five entries per record is ~450
bytes before any data; short key names and short members cannot remove it (ids as 12 raw
bytes would save 16 bytes on ``r`` only, because of jemalloc's size classes). Listpack
encodings (~3 bytes of overhead per element) need keys of at most 128 elements, i.e.
bucketed indexes whose bucket keys the scripts discover (a directory of buckets, splits):
a quick prototype of such a layout (data in 64-record lists by sequence number, id map and
indexes in listpack buckets) measured ~270-280 bytes/record with this payload, so it would
also need a binary payload (~80 bytes instead of ~144) to reach 200; and its scripts would
build bucket key names inside Lua (same slot, so Redis Cluster 7 runs them, but the keys are
not declared in ``KEYS``), which this layout deliberately avoids.

Window: a record whose ``started_at`` is before ``now - retention`` is never served (the
reader bounds every range by it) and is deleted by the trim step of every write script
(bounded, only when the time index has such members) and by ``sweeper.sweep_expired``.
Every tenant key gets a TTL of retention + 1 day on each write, so an idle tenant's keys
vanish on their own.
"""

from __future__ import annotations

KEY_PREFIX = "cdr"
TENANTS_KEY = f"{KEY_PREFIX}:tenants"

#: started_at_ms must fit the 6 bytes of ``S6`` (up to the year 10889).
MAX_MS = (1 << 48) - 1
NUL = b"\x00"
#: Greater than any byte that can follow a number's digits in an ``n`` member.
HIGH = b"\xff"


def tenant_tag(tenant_id: str) -> str:
    return "{" + tenant_id + "}"


def records_key(tenant_id: str) -> str:
    return f"{KEY_PREFIX}:{tenant_tag(tenant_id)}:r"


def time_key(tenant_id: str) -> str:
    return f"{KEY_PREFIX}:{tenant_tag(tenant_id)}:t"


def extension_key(tenant_id: str) -> str:
    return f"{KEY_PREFIX}:{tenant_tag(tenant_id)}:x"


def number_key(tenant_id: str) -> str:
    return f"{KEY_PREFIX}:{tenant_tag(tenant_id)}:n"


def tenant_keys(tenant_id: str) -> list[str]:
    """The four keys of a tenant, in the order every script declares them (KEYS[1..4])."""
    return [
        records_key(tenant_id),
        time_key(tenant_id),
        extension_key(tenant_id),
        number_key(tenant_id),
    ]


def s6(ms: int) -> bytes:
    """``ms`` as 6 bytes big-endian, clamped to [0, MAX_MS] (bounds of ranges only)."""
    return min(max(ms, 0), MAX_MS).to_bytes(6, "big")


def extension_prefix(extension: str) -> bytes:
    """``ext NUL``; a NUL inside the extension is stored as 0x01 (the scripts do the same)."""
    return extension.encode("utf-8").replace(NUL, b"\x01") + NUL


def number_digits(number: str) -> bytes | None:
    """The digits an E.164 number or prefix is indexed under, or None if not ``+<digits>``."""
    if number.startswith("+") and number[1:].isascii() and number[1:].isdigit():
        return number[1:].encode("ascii")
    return None


def index_members(
    started_ms: int, record_id: str, extension: str, source: str, destination: str
) -> tuple[bytes, bytes, bytes, bytes]:
    """A record's members of ``t``, ``x`` and ``n`` (b"" where a number is not indexed).

    The write script receives these for the records it stores; for the stored records it
    replaces or trims it rebuilds them from their payload with the same rules (``members``
    in ``scripts.py``), so the two must agree (the store's tests check the indexes after
    replacements and trims).
    """
    tail = s6(started_ms) + record_id.encode("utf-8")
    a, b = number_digits(source), number_digits(destination)
    return (
        tail,
        extension_prefix(extension) + tail,
        b"" if a is None else a + NUL + tail,
        b"" if b is None or b == a else b + NUL + tail,
    )


def split_member(member: bytes, keyed: bool) -> tuple[int, bytes]:
    """(started_ms, id bytes) of an index member; ``keyed``: the member has a ``key NUL`` head."""
    start = member.index(NUL) + 1 if keyed else 0
    return int.from_bytes(member[start : start + 6], "big"), member[start + 6 :]
