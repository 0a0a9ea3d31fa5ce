"""Sealed days: the segment (the records) and the day index, built here, read by Lua.

A **segment** (``cdr:{T}:s:<day>``) holds one UTC day of a tenant's sealed records; all
integers big-endian:

======  ====  ======================================================================
offset  size  content
======  ====  ======================================================================
0       2     ``b"S2"``
2       8     nonce: random per build; the install script replaces a segment only if
              it still has the nonce the sealer read
10      4     chunks (c)
14      4     records
18      12    directory fence: oldest and newest start (6 + 6) of chunk 0, 32, 64, ...
              (ceil(c/32) entries)
..      17    per chunk, oldest chunk first: oldest start (6), newest start (6), data
              offset (4, from the end of the directory), rows (1)
..            chunk data: raw deflate (zlib, wbits -15) of the chunk's rows
              (``codec.row``), oldest first, joined by ``\\n``
======  ====  ======================================================================

Chunks hold ``CHUNK_ROWS`` rows (the last of a run fewer) and never overlap: every row of
chunk i is older, by (start, id), than every row of chunk i + 1 (equal starts may sit on
both sides of a boundary). Chunk numbers count from the oldest, so sealing newer records
appends chunks and leaves the numbers of the others, and the day index entries that point
at them, unchanged.

The **day index** (``cdr:{T}:y:<day>``):

======  ====  ======================================================================
0       2     ``b"Y3"``
2       4     number entries (n)
6       4     extension entries (x)
10      8     number fences: the key of every 4096th entry (ceil(n/4096)), then of
              every 64th (ceil(n/64))
..      4     extension fences, the same (ceil(x/4096), ceil(x/64))
..      11    per number entry: key (8: the digits as 16 nibbles, digit d as d + 1,
              padded with 0; longer numbers are cut to 16 digits), chunk (2), row (1:
              the row in its chunk, plus 32 for an outbound record, 64 for another
              direction)
..      7     per extension entry: key (4: BLAKE2b of the extension), chunk (2), row (1)
======  ====  ======================================================================

Both sections are sorted by their bytes, so one number is a contiguous range in time
order, and a number prefix p is the range [p padded with 0 nibbles, p padded with 0xF
nibbles]: the read script reads the top fence, one block of the next, and one block of
64 entries (three slices of at most ~700 bytes). The index only proposes candidates (an
extension hash can collide, a long number is cut): the reader tests every filter on the
rows it decodes.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import os
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import orjson

from cdrstream.store import codec

CHUNK_ROWS = 32
#: Chunk numbers are 2 bytes: at most this many chunks (2,097,120 records) per tenant-day.
MAX_CHUNKS = 65_535
LEVEL = 6
WBITS = -15

SEG_MAGIC = b"S2"
IDX_MAGIC = b"Y3"
#: Every DIR_FENCE_EVERY-th chunk's start range sits in front of the directory, and the
#: index keeps every FENCE_EVERY-th key (and every FENCE_EVERY-th of those) in front of
#: its entries: a lookup reads a few slices of at most ~700 bytes, never a whole
#: directory or section (a large GETRANGE into Lua costs ~1.6 us per KB).
DIR_FENCE_EVERY = 32
FENCE_EVERY = 64
SEG_HEADER = struct.Struct(">2s8sII")
DIR_FENCE = struct.Struct(">HIHI")
DIR_ENTRY = struct.Struct(">HIHIIB")
IDX_HEADER = struct.Struct(">2sII")
NUM_ENTRY = struct.Struct(">QHB")
EXT_ENTRY = struct.Struct(">IHB")
NONCE_AT = 2  # nonce bytes [2, 10): what the install script compares

_NIBBLES = bytes.maketrans(b"0123456789", b"123456789a")


class TooLarge(ValueError):
    """A day would need more chunks than a chunk number can address."""


def number_key(digits: bytes) -> int:
    """The index key of a number's digits (ASCII), cut to 16 digits."""
    return int(digits[:16].translate(_NIBBLES).ljust(16, b"0"), 16)


def number_range(prefix: bytes) -> tuple[int, int]:
    """The [low, high] keys of every number starting with ``prefix`` (ASCII digits)."""
    nibbles = prefix[:16].translate(_NIBBLES)
    return int(nibbles.ljust(16, b"0"), 16), int(nibbles.ljust(16, b"f"), 16)


def extension_key(extension: str) -> int:
    return int.from_bytes(hashlib.blake2b(extension.encode("utf-8"), digest_size=4).digest(), "big")


@dataclass(frozen=True, slots=True)
class Row:
    """One sealed record: its sort key, its line (``codec.row``) and what the index needs."""

    started: int
    id: str
    line: bytes
    extension: str
    source: int | str
    destination: int | str
    direction: int | str  # as encoded: 0 inbound, 1 outbound

    @property
    def key(self) -> tuple[int, str]:
        return (self.started, self.id)


def row_of_payload(record_id: str, payload: bytes) -> Row:
    f = orjson.loads(payload)
    return Row(f[0], record_id, codec.row(record_id, payload), f[1], f[2], f[3], f[4])


def row_of_line(line: bytes) -> Row:
    f = orjson.loads(line)
    return Row(f[1], f[0], line, f[2], f[3], f[4], f[5])


@dataclass(frozen=True, slots=True)
class Chunk:
    oldest: int
    newest: int
    rows: int
    data: bytes  # compressed


@dataclass(frozen=True, slots=True)
class Segment:
    nonce: bytes
    chunks: list[Chunk]

    @property
    def count(self) -> int:
        return sum(c.rows for c in self.chunks)

    @classmethod
    def parse(cls, raw: bytes) -> Segment:
        magic, nonce, nchunks, _ = SEG_HEADER.unpack_from(raw, 0)
        if magic != SEG_MAGIC:
            raise ValueError("not a segment")
        at = SEG_HEADER.size + DIR_FENCE.size * -(-nchunks // DIR_FENCE_EVERY)
        base = at + DIR_ENTRY.size * nchunks
        entries = [DIR_ENTRY.unpack_from(raw, at + DIR_ENTRY.size * i) for i in range(nchunks)]
        chunks = []
        for i, (lo_hi, lo_lo, hi_hi, hi_lo, offset, rows) in enumerate(entries):
            end = entries[i + 1][4] if i + 1 < nchunks else len(raw) - base
            chunks.append(
                Chunk(
                    (lo_hi << 32) | lo_lo,
                    (hi_hi << 32) | hi_lo,
                    rows,
                    raw[base + offset : base + end],
                )
            )
        return cls(nonce, chunks)

    def encode(self) -> bytes:
        if len(self.chunks) > MAX_CHUNKS:
            raise TooLarge(f"{len(self.chunks)} chunks in one day")
        head = [SEG_HEADER.pack(SEG_MAGIC, self.nonce, len(self.chunks), self.count)]
        for c in self.chunks[::DIR_FENCE_EVERY]:
            head.append(
                DIR_FENCE.pack(
                    c.oldest >> 32, c.oldest & 0xFFFFFFFF, c.newest >> 32, c.newest & 0xFFFFFFFF
                )
            )
        offset = 0
        for c in self.chunks:
            head.append(
                DIR_ENTRY.pack(
                    c.oldest >> 32, c.oldest & 0xFFFFFFFF, c.newest >> 32, c.newest & 0xFFFFFFFF,
                    offset, c.rows,
                )
            )  # fmt: skip
            offset += len(c.data)
        return b"".join(head) + b"".join(c.data for c in self.chunks)


def compress(lines: Sequence[bytes]) -> bytes:
    c = zlib.compressobj(LEVEL, zlib.DEFLATED, WBITS)
    return c.compress(b"\n".join(lines)) + c.flush()


def decompress(data: bytes) -> list[bytes]:
    """A chunk's rows (their lines), oldest first."""
    return zlib.decompress(data, WBITS).split(b"\n")


def chunk_rows(data: bytes) -> list[Row]:
    return [row_of_line(line) for line in decompress(data)]


def make_chunks(rows: Sequence[Row]) -> list[Chunk]:
    """``rows`` (sorted oldest first) as chunks of ``CHUNK_ROWS``."""
    out = []
    for start in range(0, len(rows), CHUNK_ROWS):
        part = rows[start : start + CHUNK_ROWS]
        out.append(
            Chunk(part[0].started, part[-1].started, len(part), compress([r.line for r in part]))
        )
    return out


@functools.lru_cache(maxsize=65_536)
def _number_key_of(value: int | str) -> int | None:
    digits = codec.number_digits_of(value)
    return None if not digits else number_key(digits)


_extension_key = functools.lru_cache(maxsize=16_384)(extension_key)


#: The row byte of an index entry: the row (5 bits, CHUNK_ROWS <= 32), then the record's
#: direction (0 inbound, 32 outbound, 64 another), so that a direction filter drops
#: entries before their chunks are read.
_DIRECTION_BITS: dict[int | str, int] = {0: 0, 1: 32}
ROW_MASK = 31


def _entries(rows_by_chunk: Iterable[tuple[int, Sequence[Row]]]) -> tuple[list[bytes], list[bytes]]:
    numbers: list[bytes] = []
    extensions: list[bytes] = []
    pack_n, pack_x = NUM_ENTRY.pack, EXT_ENTRY.pack
    add_n, add_x = numbers.append, extensions.append
    for chunk, rows in rows_by_chunk:
        for position, r in enumerate(rows):
            row = position | _DIRECTION_BITS.get(r.direction, 64)
            a = _number_key_of(r.source)
            b = _number_key_of(r.destination)
            if a is not None:
                add_n(pack_n(a, chunk, row))
            if b is not None and b != a:
                add_n(pack_n(b, chunk, row))
            add_x(pack_x(_extension_key(r.extension), chunk, row))
    return numbers, extensions


def _fences(entries: list[bytes], width: int) -> tuple[list[bytes], list[bytes]]:
    """Every 64th key, and every 64th of those."""
    first = [entries[i][:width] for i in range(0, len(entries), FENCE_EVERY)]
    return first[::FENCE_EVERY], first


def _fenced(n: int) -> tuple[int, int]:
    first = -(-n // FENCE_EVERY)
    return -(-first // FENCE_EVERY), first


def encode_index(numbers: list[bytes], extensions: list[bytes]) -> bytes:
    numbers.sort()
    extensions.sort()
    number_fences, extension_fences = _fences(numbers, 8), _fences(extensions, 4)
    return b"".join(
        [
            IDX_HEADER.pack(IDX_MAGIC, len(numbers), len(extensions)),
            *number_fences[0],
            *number_fences[1],
            *extension_fences[0],
            *extension_fences[1],
            *numbers,
            *extensions,
        ]
    )


def index_sections(index: bytes) -> tuple[bytes, bytes]:
    """The number and extension entries of a day index."""
    _, n_num, n_ext = IDX_HEADER.unpack_from(index, 0)
    at = IDX_HEADER.size + 8 * sum(_fenced(n_num)) + 4 * sum(_fenced(n_ext))
    split_at = at + NUM_ENTRY.size * n_num
    return index[at:split_at], index[split_at : split_at + EXT_ENTRY.size * n_ext]


def _split(section: bytes, width: int) -> list[bytes]:
    return [section[i : i + width] for i in range(0, len(section), width)]


def _remap(
    entries: list[bytes], layout: struct.Struct, first: int, end: int, shift: int, chunks: int
) -> list[bytes]:
    """Entries outside chunks [first, end); those of later chunks moved by ``shift``
    (``chunks``: how many the day had, so appending touches no entry)."""
    if first == end and (shift == 0 or end == chunks):
        return entries
    out = []
    for e in entries:
        key, chunk, position = layout.unpack(e)
        if chunk < first:
            out.append(e)
        elif chunk >= end:
            out.append(layout.pack(key, chunk + shift, position))
    return out


@dataclass(frozen=True, slots=True)
class Sealed:
    """A day's new segment and index (``segment`` is b"" when the day is left empty)."""

    segment: bytes
    index: bytes
    count: int
    rows: int  # rows decoded or encoded for this build (its cost)
    changed: bool = True  # False: nothing to do, ``segment`` and ``index`` are the old ones


def merge(
    old_segment: bytes | None,
    old_index: bytes | None,
    new: Sequence[Row],
    dead: set[tuple[int, str]],
) -> Sealed:
    """The day after sealing ``new`` rows into it and dropping ``dead`` (start, id) keys.

    A row of ``new`` replaces an older row with the same id and start (one whose start
    changed left a tombstone for the old start: the write script sees to it); a row whose
    (start, id) is in ``dead`` is dropped, new or old. Only the chunks that ``new`` or
    ``dead`` touch are decoded and rebuilt; the others keep their bytes, and their index
    entries their chunk numbers unless chunks were inserted before them.
    """
    fresh = sorted((r for r in new if r.key not in dead), key=lambda r: r.key)
    segment = Segment.parse(old_segment) if old_segment else Segment(b"", [])
    chunks = segment.chunks
    if not chunks:
        built = make_chunks(fresh)
        return _finish(
            built,
            [(i, fresh[i * CHUNK_ROWS : (i + 1) * CHUNK_ROWS]) for i in range(len(built))],
            fresh,
        )

    his = [c.newest for c in chunks]
    los = [c.oldest for c in chunks]
    first, end = len(chunks), 0
    if fresh:
        # Chunks entirely older than the new rows come first, entirely newer ones last.
        first = bisect.bisect_left(his, fresh[0].started)
        end = bisect.bisect_right(los, fresh[-1].started)
        end = max(end, first)
    for started, _ in dead:
        lo = bisect.bisect_left(his, started)
        hi = bisect.bisect_right(los, started)
        if lo < hi:
            first, end = min(first, lo), max(end, hi)
    if first >= end and not fresh:
        return Sealed(old_segment or b"", old_index or b"", segment.count, 0, changed=False)
    if first > end:
        first = end

    replaced = {r.id for r in fresh}
    rows: list[Row] = list(fresh)
    for c in chunks[first:end]:
        rows.extend(r for r in chunk_rows(c.data) if r.id not in replaced and r.key not in dead)
    rows.sort(key=lambda r: r.key)
    run = make_chunks(rows)
    shift = len(run) - (end - first)
    kept = chunks[:first] + run + chunks[end:]

    if old_index:
        number_section, extension_section = index_sections(old_index)
        numbers = _remap(
            _split(number_section, NUM_ENTRY.size),
            NUM_ENTRY,
            first,
            end,
            shift,
            len(chunks),
        )
        extensions = _remap(
            _split(extension_section, EXT_ENTRY.size), EXT_ENTRY, first, end, shift, len(chunks)
        )
    else:
        numbers, extensions = [], []
    new_numbers, new_extensions = _entries(
        (first + i, rows[i * CHUNK_ROWS : (i + 1) * CHUNK_ROWS]) for i in range(len(run))
    )
    numbers += new_numbers
    extensions += new_extensions
    count = sum(c.rows for c in kept)
    if not count:
        return Sealed(b"", b"", 0, len(rows))
    return Sealed(
        Segment(os.urandom(8), kept).encode(), encode_index(numbers, extensions), count, len(rows)
    )


def _finish(
    built: list[Chunk], rows_by_chunk: list[tuple[int, Sequence[Row]]], rows: Sequence[Row]
) -> Sealed:
    if not built:
        return Sealed(b"", b"", 0, 0)
    numbers, extensions = _entries(rows_by_chunk)
    return Sealed(
        Segment(os.urandom(8), built).encode(),
        encode_index(numbers, extensions),
        len(rows),
        len(rows),
    )


def nonce_of(raw: bytes | None) -> bytes:
    """What the install script compares (b"" for no segment)."""
    return raw[NONCE_AT : NONCE_AT + 8] if raw else b""
