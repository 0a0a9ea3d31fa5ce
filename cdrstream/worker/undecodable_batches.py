"""A record batch the consumer cannot decode becomes one marker record, not an exception.

aiokafka 0.14 decodes a fetched partition's record batches while ``getmany`` hands out its
records (``aiokafka/consumer/fetcher.py``, ``PartitionRecords._unpack_records``): a batch
whose CRC does not match raises ``CorruptRecordException``, one whose compression codec it
does not know (a codec added to Kafka later) or has no library for raises
``UnsupportedCodecError``, a payload its codec cannot decompress raises that codec's own
error. The exception leaves ``getmany``, the partition's position does not move, and every
later fetch returns the same batch: Faust's fetcher crashes, the worker with it, again after
each restart, for as long as the topic keeps the batch; a rebuild fails on it the same way.

`guard_record_batches` makes the fetcher read fetched bytes through `GuardedRecords`: each
batch is decoded whole when the fetcher reaches it, and one that fails yields a single
record in its place, at the batch's last offset, whose value is an `UndecodableBatch` (the
batch's raw bytes, its first offset and the error). The fetch position then moves past the
batch as past any other. The worker dead-letters that record as ``undecodable_batch`` with
the partition and the offset range (`cdrstream.worker.batch`), the rebuild skips it and
says so (`cdrstream.rebuild.run`).

Private names of aiokafka 0.14.0 (pinned in pyproject.toml) this relies on, checked by
``tests/unit/test_undecodable_batches.py``: the module global ``MemoryRecords`` of
``aiokafka.consumer.fetcher`` (looked up when a fetch response is parsed) and the batch
interface ``PartitionRecords`` uses (``validate_crc``, ``is_control_batch``, ``producer_id``,
``base_offset``, ``next_offset``, iteration).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

from aiokafka.consumer import fetcher as aiokafka_fetcher
from aiokafka.record.memory_records import MemoryRecords

from cdrstream.worker.incoming import UndecodableSpan

#: A batch's leading offset (int64) and length (int32): what frames every batch on the wire.
LOG_OVERHEAD = 12


class UndecodableBatch(bytes):
    """The raw bytes of a record batch that could not be decoded, and why."""

    span: UndecodableSpan


def undecodable_batch(raw: bytes, first_offset: int, error: str) -> UndecodableBatch:
    value = UndecodableBatch(raw)
    value.span = UndecodableSpan(first_offset=first_offset, error=error)
    return value


class _MarkerRecord:
    """What ``PartitionRecords`` turns into a ConsumerRecord, for an undecodable batch."""

    __slots__ = ("offset", "value")
    key = None
    timestamp = None
    timestamp_type = 0
    headers = ()
    checksum = None

    def __init__(self, offset: int, value: UndecodableBatch) -> None:
        self.offset = offset
        self.value = value


class _GuardedBatch:
    """A decoded batch as aiokafka's, except that decoding failures become a marker."""

    __slots__ = ("_batch", "_buffer", "_crc_ok", "_end", "_start")

    def __init__(self, batch: Any, buffer: Any, start: int, end: int) -> None:
        self._batch = batch
        self._buffer = buffer
        self._start = start
        self._end = end
        self._crc_ok = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batch, name)

    def __next__(self) -> Any:  # a control batch's marker record is read with next()
        return next(self._batch)

    def validate_crc(self) -> bool:
        """A CRC mismatch is reported by iteration (as a marker), not by the fetcher."""
        self._crc_ok = bool(self._batch.validate_crc())
        return True

    def __iter__(self) -> Iterator[Any]:
        batch = self._batch
        if self._crc_ok:
            try:
                return iter(list(batch))
            except Exception as exc:  # whatever the codec raises, the bytes will not change
                error = f"{type(exc).__name__}: {exc}"
        else:
            error = "CorruptRecordException: the batch's CRC does not match its bytes"
        raw = bytes(self._buffer[self._start : self._end])
        first = batch.base_offset
        return iter([_MarkerRecord(batch.next_offset - 1, undecodable_batch(raw, first, error))])


class _BrokenFrame:
    """A frame too short to be a batch (aiokafka's ``next_batch`` refuses it): one offset."""

    producer_id = None
    is_control_batch = False
    is_transactional = False

    def __init__(self, buffer: Any, start: int, end: int, error: str) -> None:
        (self.base_offset,) = struct.unpack_from(">q", buffer, start)
        self.next_offset = self.base_offset + 1
        raw = bytes(buffer[start:end])
        self._marker = _MarkerRecord(
            self.base_offset, undecodable_batch(raw, self.base_offset, error)
        )

    def validate_crc(self) -> bool:
        return True

    def __iter__(self) -> Iterator[Any]:
        return iter([self._marker])


class GuardedRecords:
    """``MemoryRecords`` of one fetched partition, handing out `_GuardedBatch` views."""

    __slots__ = ("_broken", "_buffer", "_pos", "_records")

    def __init__(self, buffer: Any) -> None:
        self._buffer = buffer
        self._records = MemoryRecords(buffer)
        self._pos = 0
        self._broken = False  # a frame aiokafka refused: it cannot read past it

    def size_in_bytes(self) -> int:
        return int(self._records.size_in_bytes())

    def has_next(self) -> bool:
        return not self._broken and bool(self._records.has_next())

    def next_batch(self) -> Any:
        if not self.has_next():
            return None
        start = self._pos
        (length,) = struct.unpack_from(">i", self._buffer, start + 8)
        end = self._pos = start + LOG_OVERHEAD + length
        try:
            batch = self._records.next_batch()
        except Exception as exc:
            self._broken = True  # the next fetch starts after it
            return _BrokenFrame(self._buffer, start, end, f"{type(exc).__name__}: {exc}")
        return _GuardedBatch(batch, self._buffer, start, end)


def guard_record_batches() -> None:
    """Make every aiokafka consumer of this process read fetches through `GuardedRecords`."""
    aiokafka_fetcher.MemoryRecords = GuardedRecords
