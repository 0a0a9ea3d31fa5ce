"""The worker's log during a broker outage: one line per distinct library error per interval
with a count, and Faust's stream-idle lines below ERROR."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import orjson
import pytest

from cdrstream.observability.json_logs import (
    FaustStreamIdleIsWarning,
    JsonFormatter,
    RepeatedLines,
    _through_its_logger,
    logging_config,
)

# As aiokafka and Faust word them (aiokafka/conn.py, aiokafka/client.py,
# faust/transport/drivers/aiokafka.py), with mode's service prefix.
CONNECT = "Unable connect to node with id %s: %s"
REFUSED = "[Errno 111] Connect call failed ('127.0.0.1', 9092)"
IDLE = "[^--AIOKafkaConsumerThread]: Stream has not started processing %r (started %s)."


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def lines(clock: Clock) -> Iterator[tuple[io.StringIO, logging.Handler]]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(FaustStreamIdleIsWarning())
    handler.addFilter(RepeatedLines(interval_s=30.0, clock=clock, emit=handler.handle))
    yield out, handler


def _log(handler: logging.Handler, name: str, level: int, msg: str, *args: object) -> None:
    handler.handle(logging.LogRecord(name, level, __file__, 1, msg, args, None))


def _repeated_lines(handler: logging.Handler) -> RepeatedLines:
    return next(f for f in handler.filters if isinstance(f, RepeatedLines))


def _written(out: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in out.getvalue().splitlines()]


def test_a_connection_error_80_times_a_second_is_one_line_then_one_with_the_count(
    lines: tuple[io.StringIO, logging.Handler], clock: Clock
) -> None:
    out, handler = lines
    for i in range(80 * 40):  # 40 s of an outage, 80 lines a second
        clock.now = 1_000.0 + i / 80
        _log(handler, "aiokafka.conn", logging.ERROR, CONNECT, 1, REFUSED)
    written = _written(out)
    assert [line["msg"] for line in written] == [CONNECT % (1, REFUSED)] * 2
    assert "repeated" not in written[0]
    assert written[1]["repeated"] == 30 * 80 - 1  # held back during the first 30 s


def test_the_count_of_an_outage_that_ended_is_written_an_interval_later(
    lines: tuple[io.StringIO, logging.Handler], clock: Clock
) -> None:
    out, handler = lines
    for i in range(80 * 40):  # 40 s of an outage, then the broker is back: silence
        clock.now = 1_000.0 + i / 80
        _log(handler, "aiokafka.conn", logging.ERROR, CONNECT, 1, REFUSED)
    repeated = _repeated_lines(handler)
    repeated.flush()  # less than an interval since the last line written
    assert len(_written(out)) == 2
    clock.now += 30.0
    repeated.flush()
    repeated.flush()  # once only
    written = _written(out)
    assert [line.get("repeated") for line in written[1:]] == [30 * 80 - 1, 10 * 80 - 2]
    assert len(written) + sum(line.get("repeated", 0) for line in written) == 80 * 40
    assert written[2]["msg"] == CONNECT % (1, REFUSED)


def test_at_exit_whatever_is_still_held_is_written_with_its_count(
    lines: tuple[io.StringIO, logging.Handler], clock: Clock
) -> None:
    out, handler = lines
    for _ in range(5):
        _log(handler, "aiokafka.client", logging.WARNING, "Unable to update metadata")
    _log(handler, "aiokafka.conn", logging.ERROR, CONNECT, 1, REFUSED)  # none held back
    _repeated_lines(handler).flush(everything=True)
    assert [line.get("repeated") for line in _written(out)] == [None, None, 3]


def test_a_line_held_back_goes_out_again_through_its_logger(clock: Clock) -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    repeated = RepeatedLines(interval_s=30.0, clock=clock, emit=_through_its_logger)
    handler.addFilter(repeated)
    logger = logging.getLogger("aiokafka.test-held-back")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)  # whatever an earlier test left on "aiokafka"
    try:
        for _ in range(3):
            logger.error("Unable connect to node with id %s", 1)
        clock.now += 31.0
        repeated.flush()
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    assert [line.get("repeated") for line in _written(out)] == [None, 1]


def test_distinct_errors_each_get_their_line(
    lines: tuple[io.StringIO, logging.Handler], clock: Clock
) -> None:
    out, handler = lines
    for _ in range(10):
        _log(handler, "aiokafka.conn", logging.ERROR, CONNECT, 1, REFUSED)
        _log(handler, "aiokafka.client", logging.ERROR, "Unable to update metadata from [1]")
        _log(handler, "aiokafka.conn", logging.WARNING, CONNECT, 1, REFUSED)
    assert len(_written(out)) == 3


def test_lines_that_differ_only_in_numbers_are_the_same_error(
    lines: tuple[io.StringIO, logging.Handler],
) -> None:
    out, handler = lines
    for seconds in (5.2, 10.7, 16.1):
        _log(
            handler,
            "faust.transport",
            logging.ERROR,
            "Aiokafka stopped fetching (last %ss)",
            seconds,
        )
    assert len(_written(out)) == 1


def test_our_own_lines_and_info_lines_are_never_held_back(
    lines: tuple[io.StringIO, logging.Handler],
) -> None:
    out, handler = lines
    for _ in range(5):
        _log(handler, "cdrstream.worker.batch", logging.WARNING, "undecodable record batch")
        _log(handler, "aiokafka.consumer", logging.INFO, "joined group")
    assert len(_written(out)) == 10


def test_faust_stream_idle_is_a_warning_not_an_error(
    lines: tuple[io.StringIO, logging.Handler],
) -> None:
    out, handler = lines
    _log(handler, "faust.transport.drivers.aiokafka", logging.ERROR, IDLE, "tp", "5 minutes ago")
    _log(handler, "faust.transport.drivers.aiokafka", logging.ERROR, "Has not committed %r", "tp")
    assert [line["level"] for line in _written(out)] == ["warning", "error"]


def test_the_process_logging_config_applies_both_filters() -> None:
    config = logging_config("INFO")
    names = config["handlers"]["stderr"]["filters"]
    assert {config["filters"][name]["()"] for name in names} == {
        RepeatedLines,
        FaustStreamIdleIsWarning,
    }
