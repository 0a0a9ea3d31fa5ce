"""Kafka record batches (message format v2) as bytes, built and damaged by hand.

A batch starts with its base offset (int64) and length (int32), then the partition leader
epoch (int32), the magic byte, a CRC-32C (uint32) over everything from the attributes
(int16, whose low three bits are the compression codec) to the end of the batch.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.util import calc_crc32c

CRC_AT = 17
ATTRIBUTES_AT = 21
CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def batch(
    base_offset: int, values: Sequence[bytes], codec: str = "none", key: bytes | None = None
) -> bytes:
    """One v2 batch of ``values`` at ``base_offset``, compressed with ``codec``."""
    builder = DefaultRecordBatchBuilder(2, CODECS[codec], 0, -1, -1, -1, 1 << 20)
    for delta, value in enumerate(values):
        builder.append(delta, 1_800_000_000_000, key, value, [])
    raw = bytearray(builder.build())
    struct.pack_into(">q", raw, 0, base_offset)
    return bytes(raw)


def with_codec(raw: bytes, codec_id: int) -> bytes:
    """``raw`` claiming compression codec ``codec_id``, its CRC made to match again."""
    damaged = bytearray(raw)
    (attributes,) = struct.unpack_from(">h", damaged, ATTRIBUTES_AT)
    struct.pack_into(">h", damaged, ATTRIBUTES_AT, (attributes & ~0x07) | codec_id)
    struct.pack_into(">I", damaged, CRC_AT, calc_crc32c(bytes(damaged[ATTRIBUTES_AT:])))
    return bytes(damaged)


def with_bad_crc(raw: bytes) -> bytes:
    damaged = bytearray(raw)
    damaged[CRC_AT] ^= 0xFF
    return bytes(damaged)


@dataclass(frozen=True)
class BatchOnDisk:
    segment: Path
    position: int
    base_offset: int
    last_offset: int
    codec: int

    def read(self) -> bytes:
        with self.segment.open("rb") as f:
            f.seek(self.position + 8)
            (length,) = struct.unpack(">i", f.read(4))
            f.seek(self.position)
            return f.read(12 + length)

    def overwrite(self, raw: bytes) -> None:
        """Replace the batch's bytes in the broker's segment file (same length)."""
        assert len(raw) == len(self.read())
        with self.segment.open("r+b") as f:
            f.seek(self.position)
            f.write(raw)


def batches_on_disk(partition_dir: Path) -> Iterator[BatchOnDisk]:
    """Every batch of a partition's segment files, as the broker stored it."""
    for segment in sorted(partition_dir.glob("*.log")):
        data = segment.read_bytes()
        position = 0
        while position + 61 <= len(data):
            base, length = struct.unpack_from(">qi", data, position)
            if length <= 0:
                break
            (last_delta,) = struct.unpack_from(">i", data, position + 23)
            (attributes,) = struct.unpack_from(">h", data, position + ATTRIBUTES_AT)
            yield BatchOnDisk(segment, position, base, base + last_delta, attributes & 0x07)
            position += 12 + length
