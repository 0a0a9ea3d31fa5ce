"""The store's Lua scripts (``lua/*.lua``, package data) and, per script, the one function
that builds its KEYS and ARGV.

One file per script; snippets shared by several (``common.lua``, ``idmap.lua``,
``summary.lua``, ``live.lua``) are pulled in by a line ``-- @include "name.lua"``, expanded
once per script when this module is imported (as BullMQ's loader does). Every script is
run by ``EVALSHA`` with the NOSCRIPT fallback of ``runner.py``. EVAL scripts rather than
Redis Functions: docs/pipeline.md, "Lua scripts, not Redis Functions".

Every script declares every key it touches in ``KEYS``, the tenant's keys only (one hash
slot: the same script runs on Redis Cluster); names that depend on data (an id-map bucket,
a day) are computed here (``layout.bucket_of``) and checked by the script against what it
reads: the scripts that address id-map buckets answer ``{-1, level, split}`` without
changing anything when the id-map shape they were built for is stale (``idmap.py``).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from cdrstream.store import layout
from cdrstream.store.layout import (
    ID_TARGET,
    Shape,
    bucket_key,
    bucket_of,
    day_index_key,
    days_key,
    hot_key,
    hot_time_key,
    id_key,
    meta_key,
    segment_key,
    split_pairs,
    summary_key,
    tombstones_key,
)
from cdrstream.store.live import KEEP_MS, MAX_ENTRIES, live_key
from cdrstream.store.runner import Script, ScriptCall

_INCLUDE = re.compile(r'^-- @include "([a-z_]+\.lua)"$', re.M)


def _text(name: str) -> str:
    return (resources.files("cdrstream.store") / "lua" / name).read_text(encoding="utf-8")


def load_script(name: str) -> Script:
    """``lua/<name>`` with its includes expanded (each once, in the order named)."""
    seen: set[str] = set()

    def expand(match: re.Match[str]) -> str:
        included = match.group(1)
        if included in seen:
            return ""
        seen.add(included)
        return _INCLUDE.sub(expand, _text(included)).rstrip("\n")

    return Script(name, _INCLUDE.sub(expand, _text(name)))


WRITE = load_script("write.lua")
TRIM_HOT = load_script("trim_hot.lua")
FORGET = load_script("forget.lua")
SEAL = load_script("seal.lua")
READ_DAY = load_script("read_day.lua")
READ_HOT = load_script("read_hot.lua")
SWEEP_SUMMARY = load_script("sweep_summary.lua")

_LENGTH = struct.Struct(">I").pack
_WRITE_HEAD = struct.Struct(">H8sI").pack
_SLOT_ID = struct.Struct(">H8s").pack


def pack_strings(*parts: bytes) -> bytes:
    """Strings as one script argument: each as a 4-byte length and its bytes."""
    out: list[bytes] = []
    for part in parts:
        out += (_LENGTH(len(part)), part)
    return b"".join(out)


class _Buckets:
    """The id-map buckets of one call: each bucket's key declared once, records refer to
    it by its slot (its place among the call's buckets)."""

    def __init__(self, tenant: str, shape: Shape) -> None:
        self.tenant, self.shape = tenant, shape
        self._slots: dict[int, int] = {}

    def slot(self, key: bytes) -> int:
        return self._slots.setdefault(bucket_of(key, *self.shape), len(self._slots))

    def keys(self) -> list[str]:
        return [bucket_key(self.tenant, b) for b in self._slots]


# -- write.lua ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WriteItem:
    """One record of a write: its id-map key and value (``layout.id_value``; the value's
    start and digest are empty for a record out of the window), id and payload (b"": out
    of the window, any stored version is removed)."""

    key: bytes
    value: bytes
    record_id: bytes
    payload: bytes


def write_call(
    tenant: str,
    shape: Shape,
    items: Sequence[WriteItem],
    *,
    cutoff_ms: int,
    ttl_ms: int,
    summary_floor: int,
    splits: int = 0,
) -> ScriptCall:
    """Upsert ``items`` under id-map ``shape``, keeping the tenant's daily summary (from
    ``summary_floor``) and live stream (``live.py``) in step; ``splits``: bucket splits the
    call may do (the bucket pairs of the next ``splits`` splits are declared)."""
    buckets = _Buckets(tenant, shape)
    packed: list[bytes] = []
    for item in items:
        packed += (
            _WRITE_HEAD(buckets.slot(item.key), item.key, len(item.value)),
            item.value,
            _LENGTH(len(item.record_id)),
            item.record_id,
            _LENGTH(len(item.payload)),
            item.payload,
        )
    bucket_keys = buckets.keys()
    pairs = [bucket_key(tenant, b) for pair in split_pairs(*shape, splits) for b in pair]
    keys = [
        meta_key(tenant),
        hot_key(tenant),
        hot_time_key(tenant),
        tombstones_key(tenant),
        summary_key(tenant),
        live_key(tenant),
        *bucket_keys,
        *pairs,
    ]
    args: list[Any] = [
        cutoff_ms, ttl_ms, shape[0], shape[1], len(bucket_keys), splits, ID_TARGET,
        b"".join(packed), summary_floor, KEEP_MS, MAX_ENTRIES,
    ]  # fmt: skip
    return ScriptCall(WRITE, keys, args)


# -- the sweep's scripts --------------------------------------------------------------------


def trim_hot_call(
    tenant: str, shape: Shape, cutoff_ms: int, members: Sequence[bytes]
) -> ScriptCall:
    """Advance the watermark to ``cutoff_ms``; remove the hot records of ``members`` (hot
    time index members) with their id-map entries."""
    buckets = _Buckets(tenant, shape)
    entries = []
    for member in members:
        key = id_key(member[6:].decode("utf-8"))
        entries.append(_SLOT_ID(buckets.slot(key), key) + member)
    keys = [meta_key(tenant), hot_key(tenant), hot_time_key(tenant), *buckets.keys()]
    return ScriptCall(TRIM_HOT, keys, [shape[0], shape[1], cutoff_ms, *entries])


def forget_call(
    tenant: str, day: int, shape: Shape, nonce: bytes, records: Sequence[tuple[str, int]]
) -> ScriptCall:
    """Remove the id-map entries of ``records`` ((id, start) of a sealed day's rows) that
    still point at that start, if the day's segment still has ``nonce``."""
    buckets = _Buckets(tenant, shape)
    entries = []
    for record_id, started in records:
        key = id_key(record_id)
        entries.append(_SLOT_ID(buckets.slot(key), key) + layout.start_bytes(started))
    keys = [meta_key(tenant), segment_key(tenant, day), *buckets.keys()]
    return ScriptCall(FORGET, keys, [shape[0], shape[1], nonce, *entries])


def seal_call(
    tenant: str,
    day: int,
    *,
    nonce: bytes,
    mode: str,
    segment: bytes = b"",
    index: bytes = b"",
    count: int = 0,
    expire_at_ms: int = 0,
    sealed: Sequence[tuple[bytes, bytes]] = (),
    tombstones: Sequence[tuple[bytes, bytes]] = (),
) -> ScriptCall:
    """Install a day (``mode``: "set" ``segment`` and ``index``, "drop" the day, "keep" it)
    if its segment still has ``nonce``; remove the hot records ``sealed`` ((member,
    payload) pairs) whose payload is unchanged, and the ``tombstones`` ((field, sequence)
    pairs) applied, if unchanged."""
    keys = [
        meta_key(tenant),
        hot_key(tenant),
        hot_time_key(tenant),
        tombstones_key(tenant),
        segment_key(tenant, day),
        day_index_key(tenant, day),
        days_key(tenant),
    ]
    args: list[Any] = [
        nonce, mode, segment, index, day, count, expire_at_ms,
        b"".join(pack_strings(member, payload) for member, payload in sealed),
    ]  # fmt: skip
    for fieldname, sequence in tombstones:
        args += [fieldname, sequence]
    return ScriptCall(SEAL, keys, args)


def sweep_summary_call(tenant: str, floor_day: int) -> ScriptCall:
    """Drop the tenant's daily summary days before ``floor_day``."""
    return ScriptCall(SWEEP_SUMMARY, [summary_key(tenant)], [floor_day])


# -- the read path --------------------------------------------------------------------------


def read_hot_call(
    tenant: str,
    upper: bytes,
    lower_ms: int,
    most_looked: int,
    *,
    extension_json: bytes = b"",
    digits: bytes = b"",
    most_sent: int,
) -> ScriptCall:
    """Hot records below the time-index member ``upper`` (exclusive) down to ``lower_ms``
    (inclusive), newest first: at most ``most_looked`` looked at, ``most_sent`` sent; only
    those whose payload text may hold the extension (as JSON) and a number starting with
    ``digits``."""
    keys = [hot_time_key(tenant), hot_key(tenant)]
    bounds = [b"(" + upper, b"[" + layout.start_bytes(lower_ms)]
    return ScriptCall(READ_HOT, keys, [*bounds, most_looked, extension_json, digits, most_sent])


def _day_keys(tenant: str, day: int) -> list[str]:
    return [segment_key(tenant, day), day_index_key(tenant, day)]


@dataclass(frozen=True, slots=True)
class IndexKeys:
    """What a query looks up in a day index: a number key range (8-byte keys, both ends
    included) and an extension key (4 bytes); None for none."""

    numbers: tuple[bytes, bytes] | None = None
    extension: bytes | None = None

    def args(self) -> list[bytes]:
        return [*(self.numbers or (b"", b"")), self.extension or b""]


def read_day_walk(tenant: str, day: int, upper: int, lower: int, most_chunks: int) -> ScriptCall:
    """The day's chunks that may hold records started in [lower, upper], newest first."""
    return ScriptCall(READ_DAY, _day_keys(tenant, day), ["walk", upper, lower, most_chunks])


@dataclass(frozen=True, slots=True)
class IndexRead:
    """An index read of a day: entries of ``keys`` whose chunk may hold records started in
    [lower, upper] (of ``direction``'s code when given), at most ``most_refs`` within
    ``most_chunks`` chunks; a walk of ``walk_chunks`` chunks instead when the key has more
    than ``most_entries`` entries or ``most_share`` of the day's records."""

    keys: IndexKeys
    upper: int
    lower: int
    most_refs: int
    most_chunks: int
    walk_chunks: int
    most_entries: int
    most_share: float
    direction: int | None = None


def read_day_index(tenant: str, day: int, read: IndexRead) -> ScriptCall:
    args: list[Any] = ["index", read.upper, read.lower, read.most_refs, read.most_chunks]
    args += read.keys.args()
    args += [read.walk_chunks, read.most_entries, read.most_share]
    args.append(b"" if read.direction is None else read.direction)
    return ScriptCall(READ_DAY, _day_keys(tenant, day), args)


def read_day_count(tenant: str, day: int, keys: IndexKeys) -> ScriptCall:
    """The day's index entries of the number range and of the extension."""
    return ScriptCall(READ_DAY, _day_keys(tenant, day), ["count", *keys.args()])


def read_day_find(tenant: str, day: int, started_ms: int) -> ScriptCall:
    """The day's chunks whose range holds ``started_ms``."""
    return ScriptCall(READ_DAY, _day_keys(tenant, day), ["find", started_ms])


def read_day_from(tenant: str, day: int, cutoff_ms: int) -> ScriptCall:
    """Rows of the day's chunks wholly at or after ``cutoff_ms``, and the chunks that
    straddle it."""
    return ScriptCall(READ_DAY, _day_keys(tenant, day), ["from", cutoff_ms])
