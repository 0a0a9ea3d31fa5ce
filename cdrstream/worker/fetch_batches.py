"""Whole fetches through Faust: each ``getmany`` result becomes one batch for the worker.

faust-streaming delivers a fetch message by message (a few tasks, a flow-control wait,
sensor calls and an ack per message), which caps a worker at a few thousand events a
second on this project's machine. Faust stays in charge of everything else (the consumer
group, assignment, rebalances, seek-to-committed, the commit timer, the producer, timers,
the web server, the lifecycle); only the last step changes: the consumer's drain loop puts
each fetch, as one `FetchedBatch`, on a bounded queue read by the worker's batch task, and
a batch's offsets enter Faust's offset bookkeeping only after its records and dead letters
are written (`BatchDelivery.acknowledge`). The commit timer then commits them as usual.

This relies on private internals of **faust-streaming 0.15.3** (pinned in pyproject.toml and
asserted at start by `require_supported_faust`), all of the consumer
(``faust/transport/consumer.py``):

- ``Fetcher._fetcher`` calls ``consumer._drain_messages(fetcher)``: replaced on the instance
  by `BatchDelivery.drain`, a copy of the original loop that keeps its steps (wait for the
  next records, honour ``flow_active``/``suspend_flow``, skip records below
  ``_read_offset``, record offset gaps with ``_add_gap``) and delivers whole fetches;
- ``_wait_next_records``, ``_read_offset``, ``_add_gap``, ``_buffered_partitions``,
  ``perform_seek``, ``suspend_flow``, ``flow_active``: used as the original loop uses them;
- ``_acked``, ``_acked_index``, ``_n_acked``, ``_committed_offset``: the bookkeeping that
  ``Consumer.ack`` fills and ``_new_offset`` turns into the highest contiguous offset to
  commit; filled the same way here, per batch instead of per message;
- ``_unacked_messages`` (a WeakSet) and ``_waiting_for_ack``: every undelivered or unwritten
  batch holds a marker there, so ``wait_empty`` (``stream_wait_empty``, on rebalance and
  shutdown) waits for the batch in hand to be written, as it waits for messages;
- ``app.consumer_generation_id``: a batch fetched before a rebalance is dropped unwritten
  and unacknowledged; Faust seeks every assigned partition back to its committed offset.

A fetch waiting for room on the queue when a rebalance suspends the flow is dropped (it is
read again after the seek); so is a batch whose write ends after its generation changed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import faust
from mode.utils.futures import notify

from cdrstream.worker.incoming import Incoming

log = logging.getLogger(__name__)

SUPPORTED_FAUST = "0.15.3"
#: Fetches waiting for the batch task: one being decided while one is written, one ready.
QUEUE_BATCHES = 2


def require_supported_faust() -> None:
    """Refuse to run on a faust-streaming whose internals this module was not written for."""
    if faust.__version__ != SUPPORTED_FAUST:
        raise SystemExit(
            f"cdrstream's worker needs faust-streaming=={SUPPORTED_FAUST} (found"
            f" {faust.__version__}): its batch delivery relies on that version's consumer"
            " internals (cdrstream/worker/fetch_batches.py)"
        )


class _Marker:
    """Stands for a batch in the consumer's set of unacked messages (what wait_empty reads)."""

    __slots__ = ("__weakref__", "acked", "refcount", "tp")

    def __init__(self, tp: Any) -> None:
        self.acked = False
        self.refcount = 1
        self.tp = tp

    def __repr__(self) -> str:
        return f"<batch of {self.tp}>"


@dataclass(eq=False, slots=True)
class FetchedBatch:
    """One fetch: its messages in partition order, and what acknowledging it needs."""

    generation: int
    messages: list[Incoming]
    offsets: dict[Any, list[int]]  # TP -> offsets of this batch
    marker: _Marker = field(repr=False, default=None)  # type: ignore[assignment]


def incoming(record: Any) -> Incoming:
    """An aiokafka ConsumerRecord as the pipeline sees it."""
    value = record.value
    key = record.key
    return Incoming(
        value=value if isinstance(value, bytes) else b"",
        key=key if isinstance(key, bytes) else None,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp_ms=record.timestamp,
        headers=tuple((k, v or b"") for k, v in record.headers) if record.headers else (),
    )


class BatchDelivery:
    """The consumer's drain loop for whole fetches, and the acknowledgement of written ones."""

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self.queue: asyncio.Queue[FetchedBatch] = asyncio.Queue(maxsize=QUEUE_BATCHES)

    def install(self, consumer: Any) -> Any:
        consumer._drain_messages = self.drain  # the Fetcher calls it on the instance
        return consumer

    async def drain(self, fetcher: Any) -> None:
        """``Consumer._drain_messages``, one batch per fetch instead of one callback per message."""
        consumer: Any = self.app.consumer
        consumer_stopped = consumer._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        while not (consumer_stopped() or fetcher_stopped()):
            records, active = await consumer._wait_next_records(1.0)
            if records is None or consumer.should_stop:
                continue
            if not consumer.flow_active:
                try:  # as Faust does: a fetch while the flow is off seeks back
                    await consumer.perform_seek()
                except Exception as exc:
                    log.warning("seek when flow not active failed: %r", exc)
                continue
            batch = await self._batch(consumer, records, active)
            if batch is not None:
                await self._deliver(consumer, batch)

    async def _batch(
        self, consumer: Any, records: dict[Any, Sequence[Any]], active: set[Any] | None
    ) -> FetchedBatch | None:
        generation = self.app.consumer_generation_id
        read_offset = consumer._read_offset
        messages: list[Incoming] = []
        offsets: dict[Any, list[int]] = {}
        for tp, tp_records in records.items():
            if active is not None and tp not in active and tp not in consumer._buffered_partitions:
                continue
            last = read_offset[tp]
            fresh = tp_records if last is None else [r for r in tp_records if r.offset >= last]
            if not fresh:
                continue
            if consumer.app.topics.acks_enabled_for(tp.topic):
                await self._record_gaps(consumer, tp, last, fresh)
            read_offset[tp] = fresh[-1].offset
            messages.extend(map(incoming, fresh))
            offsets[tp] = [r.offset for r in fresh]
        if not messages:
            return None
        batch = FetchedBatch(generation, messages, offsets)
        batch.marker = _Marker(next(iter(offsets)))
        return batch

    @staticmethod
    async def _record_gaps(consumer: Any, tp: Any, last: int | None, fresh: Sequence[Any]) -> None:
        """Offsets that will never be delivered (compaction, transaction markers) count as
        done, as in Faust's loop, or the commit would stop at the first of them."""
        previous = last
        first, final = fresh[0].offset, fresh[-1].offset
        if previous and first - previous > 1:
            await consumer._add_gap(tp, previous + 1, first)
        if final - first + 1 == len(fresh):
            return  # contiguous: the usual case, no per-record walk
        previous = first
        for record in fresh[1:]:
            if record.offset - previous > 1:
                await consumer._add_gap(tp, previous + 1, record.offset)
            previous = record.offset

    async def _deliver(self, consumer: Any, batch: FetchedBatch) -> None:
        consumer._unacked_messages.add(batch.marker)
        put = asyncio.ensure_future(self.queue.put(batch))
        suspended = asyncio.ensure_future(consumer.suspend_flow.wait())
        try:
            await asyncio.wait({put, suspended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            suspended.cancel()
            if not put.done():  # a rebalance: drop it, it is read again after the seek
                put.cancel()
                self.release(batch)

    def acknowledge(self, batch: FetchedBatch) -> bool:
        """Mark the written batch's offsets as safe to commit; False when a rebalance came
        in between (then nothing is marked: the partitions' new owner reads them again)."""
        consumer: Any = self.app.consumer
        if batch.generation != self.app.consumer_generation_id:
            self.release(batch)
            return False
        for tp, tp_offsets in batch.offsets.items():
            committed = consumer._committed_offset[tp]
            index = consumer._acked_index[tp]
            new = [
                o for o in tp_offsets if (committed is None or o >= committed) and o not in index
            ]
            index.update(new)
            consumer._acked[tp].extend(new)
            consumer._n_acked += len(new)
        self.release(batch)
        return True

    def release(self, batch: FetchedBatch) -> None:
        """The batch no longer holds up ``wait_empty`` (written, dropped or given up)."""
        consumer: Any = self.app.consumer
        batch.marker.acked = True
        consumer._unacked_messages.discard(batch.marker)
        notify(consumer._waiting_for_ack)

    def release_queued(self) -> int:
        """Drop every batch still queued, unacknowledged (shutdown with an engine down)."""
        dropped = 0
        while not self.queue.empty():
            self.release(self.queue.get_nowait())
            dropped += 1
        return dropped
