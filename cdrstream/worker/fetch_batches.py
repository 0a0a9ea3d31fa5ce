"""Whole fetches through Faust: each ``getmany`` result becomes one batch for the worker.

faust-streaming delivers a fetch message by message (a few tasks, a flow-control wait,
sensor calls and an ack per message), which caps a worker at a few thousand events a
second on this project's machine. Faust stays in charge of everything else (the consumer
group, assignment, rebalances, seek-to-committed, the commit timer, the producer, timers,
the web server, the lifecycle); only the last step changes: the consumer's drain loop puts
each fetch, as one `FetchedBatch`, on a bounded queue read by the worker's batch task, and
a batch's offsets enter Faust's offset bookkeeping only after its records and dead letters
are written (`BatchDelivery.acknowledge`). The commit timer then commits them as usual.

This is the only module of cdrstream that touches Faust's private internals, all of
**faust-streaming 0.15.3** (pinned in pyproject.toml, asserted at start by
`require_supported_faust`, and each name below checked against the installed Faust by
``tests/unit/test_fetch_batches_faust_names.py``):

- ``App._new_consumer``: overridden by `WholeFetchApp` to install the drain loop;
- ``Fetcher._fetcher`` calls ``consumer._drain_messages(fetcher)``: replaced on the instance
  by `BatchDelivery.drain`, a copy of the original loop (``faust/transport/consumer.py``)
  that keeps its steps (the ``FETCHING`` diagnostic flag, wait for the next records, honour
  ``flow_active``/``suspend_flow``, skip records below ``_read_offset``, record offset gaps
  with ``_add_gap``, the partitions' end offsets for the monitor with
  ``track_tp_end_offset``, once per partition and fetch instead of once per record, and its
  stop handling: ``consumer_stopped_errors`` or a cancellation while the app stops end the
  loop quietly, anything else is logged and raised) and delivers whole fetches. One step is
  left out on purpose: the loop's ``commit()`` every ``broker_commit_every`` acks (the
  worker commits on the interval only, ``broker_commit_every`` is set out of reach);
- ``_wait_next_records``, ``_read_offset``, ``_add_gap``, ``_buffered_partitions``,
  ``perform_seek``, ``suspend_flow``, ``flow_active``, ``diag``, ``_stopped``: used as the
  original loop uses them;
- ``_acked``, ``_acked_index``, ``_n_acked``, ``_committed_offset``: the bookkeeping that
  ``Consumer.ack`` fills and ``_new_offset`` turns into the highest contiguous offset to
  commit; filled the same way here, per batch instead of per message;
- ``_unacked_messages`` (a WeakSet) and ``_waiting_for_ack``: every undelivered or unwritten
  batch holds a marker there, so ``wait_empty`` (``stream_wait_empty``, on rebalance and
  shutdown) waits for the batch in hand to be written, as it waits for messages; a worker
  that gives a batch up turns that wait off (`BatchDelivery.stop_waiting_for_unwritten`);
- ``monitor.stream_inbound_time``: set when the batch task takes a partition's batch, as
  Faust's stream does per event, so Faust's slow-processing check ("Stream has not started
  processing") sees a healthy worker as healthy;
- ``app.consumer_generation_id``: a batch fetched before a rebalance is dropped unwritten
  and unacknowledged; Faust seeks every assigned partition back to its committed offset;
- ``App._on_rebalance_when_stopped``: overridden by `WholeFetchApp` to leave the consumer to
  the shutdown under way (Faust's closes it from the wrong thread: see the override).

A fetch waiting for room on the queue when a rebalance suspends the flow is dropped (it is
read again after the seek); so is a batch whose write ends after its generation changed.
A record batch that cannot be decoded arrives as one message standing for its offsets
(`cdrstream.worker.undecodable_batches`); its whole offset range is acknowledged with it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import faust
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers.aiokafka import Producer
from mode.utils.futures import notify

from cdrstream.worker.incoming import Incoming
from cdrstream.worker.undecodable_batches import UndecodableBatch

log = logging.getLogger(__name__)

SUPPORTED_FAUST = "0.15.3"
#: The consumer's attributes this module uses (checked against the installed Faust by a test).
FAUST_CONSUMER_NAMES = (
    "_acked",
    "_acked_index",
    "_add_gap",
    "_buffered_partitions",
    "_committed_offset",
    "_drain_messages",
    "_n_acked",
    "_read_offset",
    "_stopped",
    "_unacked_messages",
    "_wait_next_records",
    "_waiting_for_ack",
    "consumer_stopped_errors",
    "diag",
    "flow_active",
    "highwater",
    "perform_seek",
    "should_stop",
    "suspend_flow",
)
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
        undecodable=value.span if type(value) is UndecodableBatch else None,
    )


def covered_offsets(messages: Sequence[Incoming]) -> list[int]:
    """Every offset ``messages`` (one partition's, in order) stand for."""
    if not any(m.undecodable for m in messages):
        return [m.offset for m in messages]
    return [offset for m in messages for offset in m.offsets]


class BatchDelivery:
    """The consumer's drain loop for whole fetches, and the acknowledgement of written ones."""

    def __init__(self, app: faust.App, contact: Callable[[], None] = lambda: None) -> None:
        self.app = app
        self.queue: asyncio.Queue[FetchedBatch] = asyncio.Queue(maxsize=QUEUE_BATCHES)
        #: Called after every fetch that returned records (the broker answered).
        self.contact = contact

    def install(self, consumer: Any) -> Any:
        consumer._drain_messages = self.drain  # the Fetcher calls it on the instance
        return consumer

    async def drain(self, fetcher: Any) -> None:
        """``Consumer._drain_messages``, one batch per fetch instead of one callback per message."""
        consumer: Any = self.app.consumer
        consumer_stopped = consumer._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        set_flag, unset_flag = consumer.diag.set_flag, consumer.diag.unset_flag
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                set_flag(CONSUMER_FETCHING)
                records, active = await consumer._wait_next_records(1.0)
                if records is None or consumer.should_stop:
                    continue
                if records:
                    self.contact()
                if not consumer.flow_active:
                    try:  # as Faust does: a fetch while the flow is off seeks back
                        await consumer.perform_seek()
                    except Exception as exc:
                        log.warning("seek when flow not active failed: %r", exc)
                    continue
                batch = await self._batch(consumer, records, active)
                if batch is not None:
                    await self._deliver(consumer, batch)
                unset_flag(CONSUMER_FETCHING)
        except consumer.consumer_stopped_errors:
            if self.app.should_stop:
                log.info("broker stopped the consumer while the worker stops")
                return
            raise
        except asyncio.CancelledError:
            if self.app.should_stop:
                log.info("consumer's drain loop cancelled while the worker stops")
                return
            raise
        except Exception as exc:
            log.exception("drain loop raised: %r", exc)
            raise
        finally:
            unset_flag(CONSUMER_FETCHING)

    async def _batch(
        self, consumer: Any, records: dict[Any, Sequence[Any]], active: set[Any] | None
    ) -> FetchedBatch | None:
        generation = self.app.consumer_generation_id
        read_offset = consumer._read_offset
        monitor = self.app.monitor
        messages: list[Incoming] = []
        offsets: dict[Any, list[int]] = {}
        for tp, tp_records in records.items():
            if active is not None and tp not in active and tp not in consumer._buffered_partitions:
                continue
            monitor.track_tp_end_offset(tp, consumer.highwater(tp))
            last = read_offset[tp]
            fresh = tp_records if last is None else [r for r in tp_records if r.offset >= last]
            if not fresh:
                continue
            tp_messages = list(map(incoming, fresh))
            tp_offsets = covered_offsets(tp_messages)
            if last is not None and tp_offsets[0] < last:  # an undecodable batch, read again
                tp_offsets = [o for o in tp_offsets if o >= last]
            if consumer.app.topics.acks_enabled_for(tp.topic):
                await self._record_gaps(consumer, tp, last, tp_offsets)
            read_offset[tp] = tp_offsets[-1]
            messages.extend(tp_messages)
            offsets[tp] = tp_offsets
        if not messages:
            return None
        batch = FetchedBatch(generation, messages, offsets)
        batch.marker = _Marker(next(iter(offsets)))
        return batch

    @staticmethod
    async def _record_gaps(consumer: Any, tp: Any, last: int | None, fresh: Sequence[int]) -> None:
        """Offsets that will never be delivered (compaction, transaction markers) count as
        done, as in Faust's loop, or the commit would stop at the first of them."""
        first, final = fresh[0], fresh[-1]
        if last and first - last > 1:
            await consumer._add_gap(tp, last + 1, first)
        if final - first + 1 == len(fresh):
            return  # contiguous: the usual case, no per-offset walk
        previous = first
        for offset in fresh[1:]:
            if offset - previous > 1:
                await consumer._add_gap(tp, previous + 1, offset)
            previous = offset

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

    def take(self, batch: FetchedBatch) -> bool:
        """The batch task starts on ``batch``: False when it was fetched before a rebalance
        (then it is released, to be read again by the partitions' owner after the seek)."""
        if batch.generation != self.app.consumer_generation_id:
            self.release(batch)
            return False
        inbound = self.app.monitor.stream_inbound_time
        now = time.monotonic()
        for tp in batch.offsets:
            inbound[tp] = now
        return True

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

    def stop_waiting_for_unwritten(self) -> None:
        """Shutdown no longer waits for delivered batches to be written (one was given up:
        it will never be written)."""
        self.app.conf.stream_wait_empty = False

    def release_queued(self) -> int:
        """Drop every batch still queued, unacknowledged (shutdown with an engine down)."""
        dropped = 0
        while not self.queue.empty():
            self.release(self.queue.get_nowait())
            dropped += 1
        return dropped


class IdempotentProducer(Producer):
    """Faust's producer (the worker's dead letters) with idempotence always on.

    faust-streaming 0.15.3 passes ``producer_acks`` to aiokafka but turns idempotence on only
    inside transactions (``Producer._settings_extra``); with it on, aiokafka's own retries
    after a lost acknowledgement never write a dead letter twice.
    """

    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}


class WholeFetchApp(faust.App):
    """A faust.App whose consumer delivers whole fetches to ``self.delivery`` and whose
    producer is idempotent."""

    delivery: BatchDelivery

    def _new_consumer(self) -> Any:
        return self.delivery.install(super()._new_consumer())

    def _new_producer(self) -> Any:
        return IdempotentProducer(self.transport, loop=self.loop, beacon=self.beacon)

    def _on_rebalance_when_stopped(self) -> None:
        """A rebalance that reaches the app after it began to stop: nothing to do, the
        shutdown under way stops the consumer in the consumer's own thread.

        faust-streaming 0.15.3 calls ``consumer.close()`` here
        (``AIOKafkaConsumerThread.close``), which marks the aiokafka consumer closed, so the
        consumer thread's ``stop()`` then skips it, and runs its client's and coordinator's
        ``close()`` on the app's event loop although both live on the consumer thread's loop:
        their tasks are cancelled, futures resolved and broker connections closed from the
        main thread (uvloop is not thread-safe), the awaits fail ("attached to a different
        loop") and the consumer is never closed where it runs. A worker told to stop during
        its first rebalance then hung until killed, or crashed with SIGSEGV: the consumer
        thread's libuv read a connection the main thread had just closed (``uv__read`` calling
        a NULL callback; docs/pipeline.md, scripts/stop_during_start.py)."""
        log.info("rebalance while the worker stops: the consumer is stopped by the shutdown")
