"""Which version of a call the store keeps (``core/versions.py``)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cdrstream.core.versions import Version, replaces, version_of
from tests.unit.test_summary import record as sample_record

T = 1_800_000_000_000


@pytest.mark.parametrize(
    ("new", "stored", "kept"),
    [
        (Version(T + 1, 0), Version(T, T), "new"),  # a later end wins, whatever the event time
        (Version(T, T), Version(T + 1, 0), "stored"),  # an earlier end loses
        (Version(T, T + 1), Version(T, T), "new"),  # same end: the later event wins
        (Version(T, T - 1), Version(T, T), "stored"),
        (Version(T, T), Version(T, T), "new"),  # a tie: the last written wins
        (Version(T, 0), Version(T, 0), "new"),  # untimed events tie too
    ],
)
def test_which_version_is_kept(new: Version, stored: Version, kept: str) -> None:
    assert replaces(new, stored) is (kept == "new")


def test_version_of_a_record() -> None:
    record = replace(sample_record(1, T - 60_000), ended_at_ms=T)
    assert version_of(record, T + 5) == Version(T, T + 5)
    # No Kafka timestamp (None), or aiokafka's -1 for "none": event time 0.
    assert version_of(record, None) == version_of(record, -1) == Version(T, 0)
