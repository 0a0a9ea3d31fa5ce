"""One batch of consumed events: rules, one Redis round trip, dead letters, metrics.

Two steps, so that the rules of one batch can run while the previous one is written
(`cdrstream.worker.pipeline`): `BatchHandler.decide` (CPU only, yields to the loop every
few hundred events) and `BatchHandler.store`, which returns only when every event of the
batch is durably handled (its record written, or its dead letter acknowledged by Kafka).
The caller acknowledges the Kafka offsets afterwards, so a crash at any point re-delivers
the batch, and the idempotent writer makes the replay harmless.

Failures (`cdrstream.worker.failures`): a transient one (Redis or Kafka unreachable, a
timeout) is retried with backoff until it passes, and the batch's age shows in
`cdrstream.worker.progress`. A permanent one never loops:

- a batch write refused for a reason other than the engine's state is retried record by
  record; a record refused alone goes to the dead-letter topic as
  ``internal_error:<ExceptionType>`` and the rest are written;
- a dead letter the broker or producer refuses is sent again without its original value
  and headers (``cdrstream.refused`` says why); if even that is refused, it is logged at
  ERROR with its partition and offset and counted in ``cdrstream_dead_letters_refused_total``;
- a bug in this handler itself dead-letters the whole batch as ``internal_error:<Type>``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from cdrstream.core.clock import now_ms
from cdrstream.core.outcome import Decision, Policy, decide, internal_error_reason
from cdrstream.core.record import CallRecord
from cdrstream.observability import pipeline_metrics as m
from cdrstream.observability.bulk_histogram import observe_many
from cdrstream.worker.dead_letters import DeadLetter, dead_letter
from cdrstream.worker.incoming import Incoming
from cdrstream.worker.progress import Progress
from cdrstream.worker.retry import until_done

log = logging.getLogger(__name__)


class RecordSink(Protocol):
    async def write_batch(
        self,
        records: Sequence[CallRecord],
        now_ms: int,
        event_ms: Sequence[int | None] | None = None,
    ) -> Sequence[str]: ...


DeadLetterSink = Callable[[Sequence[DeadLetter]], Awaitable[None]]


#: Events decided between two yields to the event loop (the web server and timers stay live).
YIELD_EVERY = 256
#: The dead-letter reason of a record batch the consumer could not decode (sent whole).
UNDECODABLE_BATCH = "undecodable_batch"
_UNDECODABLE = Decision("invalid", UNDECODABLE_BATCH, None, None, None, None)


@dataclass(slots=True)
class DecidedBatch:
    """A batch and the rules' decision for each of its events."""

    messages: Sequence[Incoming]
    decisions: list[Decision]
    now_ms: int
    started: float  # perf_counter when the batch was handed over


class BatchHandler:
    def __init__(
        self,
        *,
        records: RecordSink,
        dead_letters: DeadLetterSink,
        policy: Policy,
        progress: Progress,
        clock_ms: Callable[[], int] = now_ms,
    ) -> None:
        self._records = records
        self._dead_letters = dead_letters
        self._policy = policy
        self._progress = progress
        self._clock_ms = clock_ms

    async def decide(self, batch: Sequence[Incoming]) -> DecidedBatch:
        """The rules on every event (`decide` never raises)."""
        started = time.perf_counter()
        now_ms = self._clock_ms()
        policy = self._policy
        decisions: list[Decision] = []
        for start in range(0, len(batch), YIELD_EVERY):
            if start:
                await asyncio.sleep(0)
            decisions.extend(
                decide(message.value, now_ms, policy)
                if message.undecodable is None
                else _UNDECODABLE
                for message in batch[start : start + YIELD_EVERY]
            )
        return DecidedBatch(batch, decisions, now_ms, started)

    async def store(self, decided: DecidedBatch) -> Counter[str]:
        """Write the batch durably; returns its outcome counts. Raises only when cancelled."""
        batch = decided.messages
        self._progress.batch_started()
        try:
            return await self._store(decided)
        except Exception as exc:  # a bug here: never loop on it, never lose the events
            log.exception("batch handler failed; the batch goes to the dead-letter topic")
            reason = internal_error_reason(exc)
            failed = [Decision("invalid", reason, None, None, None, None)] * len(batch)
            await self._send_dead_letters(batch, failed)
            m.EVENTS.labels("invalid").inc(len(batch))
            m.INVALID_REASONS.labels("internal_error").inc(len(batch))
            return Counter({"invalid": len(batch)})
        finally:
            self._progress.batch_finished()

    async def _store(self, decided: DecidedBatch) -> Counter[str]:
        batch, decisions, now_ms = decided.messages, decided.decisions, decided.now_ms
        outcomes: list[str] = [d.outcome for d in decisions]

        to_store = [i for i, d in enumerate(decisions) if d.record is not None]
        if to_store:
            records = [
                (record, message.timestamp_ms)
                for message, decision in zip(batch, decisions, strict=True)
                if (record := decision.record) is not None
            ]
            results = await self._write(records, now_ms)
            for i, result in zip(to_store, results, strict=True):
                if isinstance(result, BaseException):
                    decisions[i] = _failed(decisions[i], result)
                    outcomes[i] = "invalid"
                else:
                    outcomes[i] = result

        await self._send_dead_letters(batch, decisions)
        return self._observe(batch, decisions, outcomes, decided.started)

    async def _write(
        self, records: list[tuple[CallRecord, int | None]], now_ms: int
    ) -> Sequence[str | BaseException]:
        """``(record, event time)`` pairs (the event's Kafka timestamp: which version of a
        call is the later, ``core.versions``), in one round trip; if Redis refuses the
        batch for good, record by record."""
        try:
            return await self._retried_write(records, now_ms)
        except Exception as exc:
            log.warning(
                "batch write refused (%s); writing its %d records one by one",
                type(exc).__name__,
                len(records),
            )
        results: list[str | BaseException] = []
        for record in records:
            try:
                results.extend(await self._retried_write([record], now_ms))
            except Exception as exc:
                results.append(exc)
        return results

    async def _retried_write(
        self, records: list[tuple[CallRecord, int | None]], now_ms: int
    ) -> Sequence[str]:
        def failed(exc: BaseException) -> None:
            m.REDIS_ERRORS.inc()
            self._progress.failed("redis write", exc)

        async def write() -> Sequence[str]:
            begin = time.perf_counter()
            results = await self._records.write_batch(
                [r for r, _ in records], now_ms, [event for _, event in records]
            )
            m.REDIS_WRITE.observe(time.perf_counter() - begin)
            return results

        return await until_done("redis write", write, log=log, on_error=failed)

    async def _send_dead_letters(
        self, batch: Sequence[Incoming], decisions: Sequence[Decision]
    ) -> None:
        letters = [
            dead_letter(message, decision.reason or "invalid", decision.event_id)
            for message, decision in zip(batch, decisions, strict=True)
            if decision.outcome == "invalid"
        ]
        if not letters:
            return
        try:
            await self._retried_send(letters)
        except Exception as exc:
            log.warning("dead letters refused (%s); sending them one by one", type(exc).__name__)
            for letter in letters:
                await self._send_one(letter)
        m.DEAD_LETTERS.inc(len(letters))

    async def _send_one(self, letter: DeadLetter) -> None:
        try:
            await self._retried_send([letter])
            return
        except Exception as exc:
            refused = type(exc).__name__
        bare = DeadLetter(
            key=None,
            value=b"",
            headers=(
                *(h for h in letter.headers if h[0].startswith("cdrstream.")),
                ("cdrstream.refused", refused.encode()),
            ),
        )
        try:
            await self._retried_send([bare])
        except Exception as exc:
            m.DEAD_LETTERS_REFUSED.inc()
            log.error(
                "dead letter refused twice (%s, then %s); event left behind",
                refused,
                type(exc).__name__,
                extra={"headers": {k: v.decode(errors="replace") for k, v in bare.headers}},
            )

    async def _retried_send(self, letters: Sequence[DeadLetter]) -> None:
        def failed(exc: BaseException) -> None:
            m.DEAD_LETTER_ERRORS.inc()
            self._progress.failed("dead-letter send", exc)

        await until_done(
            "dead-letter send", lambda: self._dead_letters(letters), log=log, on_error=failed
        )

    def _observe(
        self,
        batch: Sequence[Incoming],
        decisions: Sequence[Decision],
        outcomes: Sequence[str],
        started: float,
    ) -> Counter[str]:
        written_ms = now_ms()
        m.PROCESSING.observe(time.perf_counter() - started)
        m.BATCH_SIZE.observe(len(batch))
        counts = Counter(outcomes)
        for outcome, count in counts.items():
            m.EVENTS.labels(outcome).inc(count)
        end_to_end: list[float] = []
        produce_to_store: list[float] = []
        for message, decision, outcome in zip(batch, decisions, outcomes, strict=True):
            if outcome == "stored":
                end_to_end.append(written_ms - decision.record.ended_at_ms)  # type: ignore[union-attr]
                if message.timestamp_ms is not None:
                    produce_to_store.append(written_ms - message.timestamp_ms)
            elif outcome == "invalid":
                m.INVALID_REASONS.labels((decision.reason or "invalid").split(":", 1)[0]).inc()
                if message.undecodable is not None:
                    _log_undecodable(message)
                    continue
                log.info(
                    "invalid event to dead letters",
                    extra={
                        "event_id": decision.event_id,
                        "tenant_id": decision.tenant_id,
                        "reason": decision.reason,
                        "partition": message.partition,
                        "offset": message.offset,
                    },
                )
        observe_many(m.END_TO_END, [max(0, ms) / 1000 for ms in end_to_end])
        observe_many(m.PRODUCE_TO_STORE, [max(0, ms) / 1000 for ms in produce_to_store])
        return counts


def _log_undecodable(message: Incoming) -> None:
    m.UNDECODABLE_BATCHES.inc()
    span = message.undecodable
    assert span is not None
    log.warning(
        "undecodable record batch in partition %d, offsets %d-%d (%s): sent whole to the"
        " dead-letter topic as %s, the partition moves on",
        message.partition,
        span.first_offset,
        message.offset,
        span.error,
        UNDECODABLE_BATCH,
        extra={"reason": UNDECODABLE_BATCH, "partition": message.partition},
    )


def _failed(decision: Decision, exc: BaseException) -> Decision:
    """``decision`` turned invalid because storing its record failed for good."""
    return replace(decision, outcome="invalid", reason=internal_error_reason(exc), record=None)
