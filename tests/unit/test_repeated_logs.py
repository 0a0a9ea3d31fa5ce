"""The filter that folds repeated warnings: one line per distinct record per interval."""

from __future__ import annotations

import logging

from cdrstream.observability.repeated_logs import RepeatedRecords


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _record(message: str, level: int = logging.ERROR, name: str = "aiokafka", **extra: str):
    record = logging.LogRecord(name, level, __file__, 1, message, (), None)
    record.__dict__.update(extra)
    return record


def test_a_refusal_repeated_for_a_minute_gives_one_line_per_interval_with_a_count() -> None:
    clock = Clock()
    limiter = RepeatedRecords(10.0, clock=clock)
    passed = []
    for _ in range(600):  # 10 a second for a minute, as aiokafka does while Kafka is away
        record = _record("Unable connect to node with id 1: [Errno 111] Connection refused")
        if limiter.filter(record):
            passed.append(record.getMessage())
        clock.now += 0.1
    assert len(passed) == 6
    assert passed[0] == "Unable connect to node with id 1: [Errno 111] Connection refused"
    assert passed[1].endswith("(99 more like it held back since the last one)")


def test_distinct_records_and_low_levels_are_never_folded() -> None:
    limiter = RepeatedRecords(10.0, clock=Clock())
    records = [
        _record("Unable to update metadata from [1]"),
        _record("Unable to update metadata from [1]", level=logging.WARNING),
        _record("Unable to update metadata from [1]", name="aiokafka.client"),
        _record("Unable connect to node with id 1"),
        _record("kafka did not acknowledge", name="cdrstream.ingest", event_id="fs:a"),
        _record("kafka did not acknowledge", name="cdrstream.ingest", event_id="fs:b"),
        _record("GET /readyz 503", level=logging.INFO),
        _record("GET /readyz 503", level=logging.INFO),
    ]
    assert [limiter.filter(r) for r in records] == [True] * len(records)
    assert limiter.filter(_record("Unable to update metadata from [1]")) is False
