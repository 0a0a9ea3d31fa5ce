"""One batch of consumed events: rules, one Redis round trip, dead letters, metrics.

The handler returns only when every event of the batch is durably handled (its record
written, or its dead letter acknowledged by Kafka): the caller acknowledges the Kafka
offsets afterwards, so a crash at any point re-delivers the batch, and the idempotent
writer makes the replay harmless.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from cdrstream.core.outcome import Decision, Policy, decide
from cdrstream.core.record import CallRecord
from cdrstream.observability import pipeline_metrics as m
from cdrstream.worker.dead_letters import DeadLetter, dead_letter
from cdrstream.worker.incoming import Incoming
from cdrstream.worker.retry import until_done

log = logging.getLogger("cdrstream.worker")


class RecordSink(Protocol):
    async def write_batch(self, records: Sequence[CallRecord], now_ms: int) -> Sequence[str]: ...


DeadLetterSink = Callable[[Sequence[DeadLetter]], Awaitable[None]]


class BatchHandler:
    def __init__(
        self,
        *,
        records: RecordSink,
        dead_letters: DeadLetterSink,
        policy: Policy,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self._records = records
        self._dead_letters = dead_letters
        self._policy = policy
        self._clock_ms = clock_ms

    async def handle(self, batch: Sequence[Incoming]) -> Counter[str]:
        started = time.perf_counter()
        now_ms = self._clock_ms()
        decisions = [decide(message.value, now_ms, self._policy) for message in batch]
        outcomes: list[str] = [d.outcome for d in decisions]

        to_store = [
            i for i, d in enumerate(decisions) if d.record is not None and d.outcome == "stored"
        ]
        if to_store:
            records = [decisions[i].record for i in to_store]
            results = await until_done(
                "redis write",
                lambda: self._timed_write(records, now_ms),  # type: ignore[arg-type]
                log=log,
                on_error=m.REDIS_ERRORS.inc,
            )
            for i, result in zip(to_store, results, strict=True):
                outcomes[i] = result

        letters = [
            dead_letter(message, decision.reason or "invalid", decision.event_id)
            for message, decision in zip(batch, decisions, strict=True)
            if decision.outcome == "invalid"
        ]
        if letters:
            await until_done(
                "dead-letter send",
                lambda: self._dead_letters(letters),
                log=log,
                on_error=m.KAFKA_ERRORS.inc,
            )
            m.DEAD_LETTERS.inc(len(letters))

        self._observe(batch, decisions, outcomes, started)
        return Counter(outcomes)

    async def _timed_write(self, records: list[CallRecord], now_ms: int) -> Sequence[str]:
        begin = time.perf_counter()
        results = await self._records.write_batch(records, now_ms)
        m.REDIS_WRITE.observe(time.perf_counter() - begin)
        return results

    def _observe(
        self,
        batch: Sequence[Incoming],
        decisions: Sequence[Decision],
        outcomes: Sequence[str],
        started: float,
    ) -> None:
        written_ms = time.time_ns() // 1_000_000
        m.PROCESSING.observe(time.perf_counter() - started)
        m.BATCH_SIZE.observe(len(batch))
        for outcome, count in Counter(outcomes).items():
            m.EVENTS.labels(outcome).inc(count)
        for message, decision, outcome in zip(batch, decisions, outcomes, strict=True):
            if outcome == "invalid":
                m.INVALID_REASONS.labels((decision.reason or "invalid").split(":", 1)[0]).inc()
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
            elif outcome == "stored" and decision.record is not None:
                m.END_TO_END.observe(max(0, written_ms - decision.record.ended_at_ms) / 1000)
                if message.timestamp_ms is not None:
                    m.PRODUCE_TO_STORE.observe(max(0, written_ms - message.timestamp_ms) / 1000)
