"""The batch handler never loops on what retrying cannot cure, and never loses an event.

The sinks here are in-memory stand-ins that refuse the way Redis and the producer do
(the same exception types); the real engines are exercised in
``tests/integration/test_worker_hardening.py``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

import orjson
import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from cdrstream.core.outcome import Policy
from cdrstream.core.record import CallRecord
from cdrstream.simulation.calls import valid_event
from cdrstream.worker.batch import BatchHandler
from cdrstream.worker.dead_letters import DeadLetter
from cdrstream.worker.incoming import Incoming
from cdrstream.worker.progress import Progress

NOW = 1_790_000_000_000
POLICY = Policy(retention_ms=30 * 86_400_000)


def _events(n: int) -> list[Incoming]:
    import random

    rng = random.Random(5)
    out = []
    for i in range(n):
        event = valid_event(rng, "acme", NOW - 60_000)
        event.update(caller="+31201234567", callee="+31301234567", direction="inbound")
        event["call_id"] = f"call-{i}"
        value = orjson.dumps(event)
        out.append(Incoming(value, b"acme", "cdr.call-ended", 0, i, NOW - 1_000 + i, ()))
    return out


class Records:
    """Stores records; refuses any batch holding a record of ``poison`` for good."""

    def __init__(self, poison: set[str] = frozenset(), transient_failures: int = 0) -> None:  # type: ignore[assignment]
        self.poison = poison
        self.transient_failures = transient_failures
        self.stored: dict[str, CallRecord] = {}
        self.event_ms: dict[str, int | None] = {}

    async def write_batch(
        self,
        records: Sequence[CallRecord],
        now_ms: int,
        event_ms: Sequence[int | None] | None = None,
    ) -> Sequence[str]:
        assert event_ms is not None and len(event_ms) == len(records)
        if self.transient_failures:
            self.transient_failures -= 1
            raise RedisConnectionError("Connection closed by server.")
        if any(r.call_id in self.poison for r in records):
            raise ResponseError("ERR Error running script: user_script:1: bad record")
        for r, event in zip(records, event_ms, strict=True):
            self.stored[r.call_id] = r
            self.event_ms[r.call_id] = event
        return ["stored"] * len(records)


class Letters:
    def __init__(self, refuse_with_value: bool = False, refuse_all: bool = False) -> None:
        self.refuse_with_value = refuse_with_value
        self.refuse_all = refuse_all
        self.sent: list[DeadLetter] = []
        self.transient_failures = 0

    async def __call__(self, letters: Sequence[DeadLetter]) -> None:
        if self.transient_failures:
            self.transient_failures -= 1
            raise KafkaConnectionError("broker down")
        if self.refuse_all or (self.refuse_with_value and any(x.value for x in letters)):
            raise MessageSizeTooLargeError("The message is too large")
        self.sent.extend(letters)


class Handler(BatchHandler):
    async def store_all(self, batch: list[Incoming]) -> Counter[str]:
        """Both steps, as the pipeline runs them."""
        return await self.store(await self.decide(batch))


def _handler(records: Records, letters: Letters) -> Handler:
    return Handler(
        records=records,
        dead_letters=letters,
        policy=POLICY,
        progress=Progress(stall_after_s=30),
        clock_ms=lambda: NOW,
    )


async def test_a_record_redis_refuses_for_good_is_dead_lettered_and_the_rest_stored() -> None:
    records, letters = Records(poison={"call-3"}), Letters()
    outcomes = await _handler(records, letters).store_all(_events(10))
    assert outcomes == {"stored": 9, "invalid": 1}
    assert sorted(records.stored) == sorted(f"call-{i}" for i in range(10) if i != 3)
    # Written with its event's Kafka timestamp (which version of a call is the later),
    # in the batch write and in the record-by-record one alike.
    assert records.event_ms == {f"call-{i}": NOW - 1_000 + i for i in range(10) if i != 3}
    [letter] = letters.sent
    headers = dict(letter.headers)
    assert headers["cdrstream.reason"] == b"internal_error:ResponseError"
    assert headers["cdrstream.source.offset"] == b"3"


async def test_transient_failures_are_retried_until_they_pass() -> None:
    records, letters = Records(transient_failures=3), Letters()
    letters.transient_failures = 2
    batch = [*_events(5), Incoming(b"{not json", b"acme", "cdr.call-ended", 0, 99, None, ())]
    outcomes = await _handler(records, letters).store_all(batch)
    assert outcomes == {"stored": 5, "invalid": 1}
    assert len(records.stored) == 5 and len(letters.sent) == 1


async def test_a_dead_letter_the_producer_refuses_goes_again_without_its_payload() -> None:
    letters = Letters(refuse_with_value=True)
    batch = [Incoming(b"x" * 50, b"acme", "cdr.call-ended", 1, 7, None, (("h", b"1"),))]
    outcomes = await _handler(Records(), letters).store_all(batch)
    assert outcomes == {"invalid": 1}
    [bare] = letters.sent
    headers = dict(bare.headers)
    assert bare.value == b"" and "h" not in headers
    assert headers["cdrstream.refused"] == b"MessageSizeTooLargeError"
    assert headers["cdrstream.reason"] == b"not_json"
    assert headers["cdrstream.source.offset"] == b"7"


async def test_a_dead_letter_refused_twice_is_logged_and_the_batch_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    letters = Letters(refuse_all=True)
    batch = [Incoming(b"x", b"acme", "cdr.call-ended", 1, 8, None, ()), *_events(2)]
    records = Records()
    with caplog.at_level(logging.ERROR):
        outcomes = await _handler(records, letters).store_all(batch)
    assert outcomes == {"invalid": 1, "stored": 2}
    assert len(records.stored) == 2
    assert any("refused twice" in r.message for r in caplog.records)


async def test_a_bug_in_the_handler_dead_letters_the_batch_instead_of_looping(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: object) -> object:
        raise ZeroDivisionError("bug")

    monkeypatch.setattr(BatchHandler, "_observe", broken)
    letters = Letters()
    outcomes = await _handler(Records(), letters).store_all(_events(3))
    assert outcomes == {"invalid": 3}
    reasons = {dict(x.headers)["cdrstream.reason"] for x in letters.sent}
    assert reasons == {b"internal_error:ZeroDivisionError"}
