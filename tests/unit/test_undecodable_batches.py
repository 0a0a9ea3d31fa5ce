"""A record batch aiokafka cannot decode becomes one marker record, and the next batches
still come: run through aiokafka 0.14's own ``PartitionRecords`` (what ``getmany`` uses)."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.consumer import fetcher
from aiokafka.structs import TopicPartition

from cdrstream.worker.fetch_batches import covered_offsets, incoming
from cdrstream.worker.undecodable_batches import (
    GuardedRecords,
    UndecodableBatch,
    guard_record_batches,
)
from tests.record_batches import CODECS, batch, with_bad_crc, with_codec

TP = TopicPartition("cdr.call-ended", 4)
VALUES = [b'{"n":1}', b'{"n":2}', b'{"n":3}']


def _fetched(buffer: bytes, fetch_offset: int = 0) -> tuple[list[Any], int]:
    """The ConsumerRecords aiokafka hands out for one partition's fetched bytes, and the
    position it moves to."""
    records = fetcher.PartitionRecords(
        TP, fetcher.MemoryRecords(buffer), [], fetch_offset, None, None, True, 0
    )
    return list(records), records.next_fetch_offset


@pytest.fixture(autouse=True)
def guarded() -> None:
    guard_record_batches()


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_every_codec_kafka_offers_decodes(codec: str) -> None:
    records, position = _fetched(batch(10, VALUES, codec))
    assert [(r.offset, r.value) for r in records] == [
        (10, VALUES[0]),
        (11, VALUES[1]),
        (12, VALUES[2]),
    ]
    assert position == 13


@pytest.mark.parametrize(
    ("damage", "error"),
    [
        (lambda raw: with_codec(raw, 5), "UnsupportedCodecError"),  # a codec Kafka may add
        (lambda raw: with_codec(raw, 7), "UnsupportedCodecError"),
        (with_bad_crc, "CorruptRecordException"),
        (lambda raw: with_codec(raw, 4), ""),  # gzip bytes read as zstd: the codec's own error
    ],
)
def test_an_undecodable_batch_is_one_marker_and_the_next_batches_come(
    damage: Any, error: str
) -> None:
    bad = damage(batch(3, VALUES, "gzip"))
    buffer = batch(0, VALUES) + bad + batch(6, [b'{"n":7}'])
    records, position = _fetched(buffer)

    assert [r.offset for r in records] == [0, 1, 2, 5, 6]
    marker = records[3].value
    assert type(marker) is UndecodableBatch
    assert bytes(marker) == bad  # the batch's raw bytes, nothing lost
    assert marker.span.first_offset == 3
    assert marker.span.error.startswith(error)
    assert records[4].value == b'{"n":7}'
    assert position == 7

    message = incoming(records[3])
    assert message.undecodable == marker.span
    assert list(message.offsets) == [3, 4, 5]
    assert covered_offsets([incoming(r) for r in records]) == [0, 1, 2, 3, 4, 5, 6]


def test_a_fetch_from_inside_an_undecodable_batch_still_gets_its_marker() -> None:
    records, position = _fetched(with_codec(batch(3, VALUES, "gzip"), 6), fetch_offset=4)
    assert [r.offset for r in records] == [5]
    assert position == 6


def test_without_the_guard_aiokafka_raises_on_every_fetch() -> None:
    """What the guard is for (and the private name it replaces)."""
    bad = with_codec(batch(0, VALUES, "gzip"), 5)
    unguarded = fetcher.PartitionRecords(TP, _plain(bad), [], 0, None, None, True, 0)
    with pytest.raises(Exception, match="codec"):
        list(unguarded)


def _plain(buffer: bytes) -> Any:
    from aiokafka.record.memory_records import MemoryRecords

    return MemoryRecords(buffer)


def test_the_guard_replaces_the_name_the_fetcher_looks_up() -> None:
    assert fetcher.MemoryRecords is GuardedRecords
