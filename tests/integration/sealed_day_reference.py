"""A reference reader of a sealed day (a segment and its index), written from the format
documented in ``store/segment.py`` and sharing no code with it: the second implementation
the conformance tests hold the writer (``segment.py``) and the Lua reader
(``lua/read_day.lua``) to. It checks every structural rule as it reads (magic, counts,
both fence levels, offsets, order) and raises ``AssertionError`` on the first broken one.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import orjson

CHUNK_ROWS = 32
DIRECTORY_FENCE_EVERY = 32
INDEX_FENCE_EVERY = 64


@dataclass(frozen=True)
class Chunk:
    oldest: int
    newest: int
    rows: list[list[Any]]  # decoded rows [id, ...payload], oldest first


@dataclass(frozen=True)
class Entry:
    key: int
    chunk: int
    row: int  # the row byte: row in chunk + 32 outbound / 64 another direction


@dataclass(frozen=True)
class SealedDay:
    nonce: bytes
    chunks: list[Chunk]
    numbers: list[Entry]
    extensions: list[Entry]

    def rows(self) -> list[list[Any]]:
        return [row for chunk in self.chunks for row in chunk.rows]

    def count_numbers(self, low: int, high: int) -> int:
        keys = [e.key for e in self.numbers]
        return bisect.bisect_right(keys, high) - bisect.bisect_left(keys, low)

    def count_extension(self, key: int) -> int:
        keys = [e.key for e in self.extensions]
        return bisect.bisect_right(keys, key) - bisect.bisect_left(keys, key)


def _uint48(hi: int, lo: int) -> int:
    return hi << 32 | lo


def read_segment(raw: bytes) -> tuple[bytes, list[Chunk]]:
    magic, nonce, nchunks, nrecords = struct.unpack_from(">2s8sII", raw, 0)
    assert magic == b"S2", magic
    nfence = math.ceil(nchunks / DIRECTORY_FENCE_EVERY)
    fence = [struct.unpack_from(">HIHI", raw, 18 + 12 * i) for i in range(nfence)]
    directory_at = 18 + 12 * nfence
    data_at = directory_at + 17 * nchunks
    directory = [struct.unpack_from(">HIHIIB", raw, directory_at + 17 * i) for i in range(nchunks)]
    chunks: list[Chunk] = []
    for i, (o_hi, o_lo, n_hi, n_lo, offset, rows) in enumerate(directory):
        end = directory[i + 1][4] if i + 1 < nchunks else len(raw) - data_at
        assert 0 <= offset < end <= len(raw) - data_at, f"chunk {i}: data offsets"
        text = zlib.decompress(raw[data_at + offset : data_at + end], -15)
        decoded = [orjson.loads(line) for line in text.split(b"\n")]
        assert len(decoded) == rows and 1 <= rows <= CHUNK_ROWS, f"chunk {i}: rows"
        oldest, newest = _uint48(o_hi, o_lo), _uint48(n_hi, n_lo)
        assert (oldest, newest) == (decoded[0][1], decoded[-1][1]), f"chunk {i}: range"
        if i % DIRECTORY_FENCE_EVERY == 0:
            assert fence[i // DIRECTORY_FENCE_EVERY] == (o_hi, o_lo, n_hi, n_lo), f"fence {i}"
        chunks.append(Chunk(oldest, newest, decoded))
    assert directory[0][4] == 0 if directory else len(raw) == data_at
    assert sum(len(c.rows) for c in chunks) == nrecords
    keys = [(row[1], row[0]) for c in chunks for row in c.rows]
    assert keys == sorted(keys) and len(set(keys)) == len(keys), "rows out of order"
    return nonce, chunks


def _read_section(
    index: bytes, at: int, count: int, width: int, key_format: str
) -> tuple[int, list[int], list[int]]:
    """Both fence levels of a section (every 4096th key, every 64th): where they end."""
    second = math.ceil(count / INDEX_FENCE_EVERY)
    top = math.ceil(second / INDEX_FENCE_EVERY)
    fences = []
    for n in (top, second):
        fences.append([struct.unpack_from(key_format, index, at + width * i)[0] for i in range(n)])
        at += width * n
    return at, fences[0], fences[1]


def read_index(index: bytes) -> tuple[list[Entry], list[Entry]]:
    magic, nnum, next_ = struct.unpack_from(">2sII", index, 0)
    assert magic == b"Y3", magic
    at, num_top, num_second = _read_section(index, 10, nnum, 8, ">Q")
    at, ext_top, ext_second = _read_section(index, at, next_, 4, ">I")
    numbers = [Entry(*struct.unpack_from(">QHB", index, at + 11 * i)) for i in range(nnum)]
    at += 11 * nnum
    extensions = [Entry(*struct.unpack_from(">IHB", index, at + 7 * i)) for i in range(next_)]
    assert at + 7 * next_ == len(index), "index length"
    for entries, top, second in ((numbers, num_top, num_second), (extensions, ext_top, ext_second)):
        keys = [e.key for e in entries]
        raw = [(e.key, e.chunk, e.row) for e in entries]
        assert raw == sorted(raw), "index entries out of order"
        assert second == keys[::INDEX_FENCE_EVERY], "second fence level"
        assert top == keys[:: INDEX_FENCE_EVERY**2], "top fence level"
    return numbers, extensions


def read_sealed_day(segment: bytes, index: bytes) -> SealedDay:
    nonce, chunks = read_segment(segment)
    numbers, extensions = read_index(index)
    return SealedDay(nonce, chunks, numbers, extensions)


def number_key(digits: str) -> int:
    """The documented key: the digits as 16 nibbles, digit d as d + 1, 0-padded, cut at 16."""
    nibbles = [int(d) + 1 for d in digits[:16]]
    nibbles += [0] * (16 - len(nibbles))
    return int("".join(f"{n:x}" for n in nibbles), 16)


def number_key_range(prefix: str) -> tuple[int, int]:
    nibbles = "".join(f"{int(d) + 1:x}" for d in prefix[:16])
    return int(nibbles.ljust(16, "0"), 16), int(nibbles.ljust(16, "f"), 16)


def extension_key(extension: str) -> int:
    return int.from_bytes(hashlib.blake2b(extension.encode(), digest_size=4).digest(), "big")


def _digits(value: Any) -> str | None:
    if isinstance(value, int):
        return str(value)
    if value.startswith("+") and value[1:].isascii() and value[1:].isdigit() and value[1:]:
        return value[1:]
    return None


def entries_of(chunks: list[Chunk]) -> tuple[list[Entry], list[Entry]]:
    """The index entries the rows of ``chunks`` make, sorted."""
    numbers, extensions = [], []
    for c, chunk in enumerate(chunks):
        for r, row in enumerate(chunk.rows):
            byte = r + {0: 0, 1: 32}.get(row[5], 64)
            keys = {number_key(d) for d in (_digits(row[3]), _digits(row[4])) if d is not None}
            numbers += [Entry(k, c, byte) for k in keys]
            extensions.append(Entry(extension_key(row[2]), c, byte))
    order = lambda e: (e.key, e.chunk, e.row)  # noqa: E731
    return sorted(numbers, key=order), sorted(extensions, key=order)
