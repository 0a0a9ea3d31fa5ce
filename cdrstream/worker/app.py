"""The Faust app of the worker role: the agent, the timers and the worker's own web pages.

Design around faust-streaming 0.15 (see the project's notes on Faust):
- values are consumed raw and decoded by the rules core, so a malformed message never
  reaches Faust's JSON codec (which would stall a ``take()`` agent);
- ``take_events()`` acks a batch in its ``finally``: the batch's work runs in its own task
  and the agent waits for that task even when cancelled, so offsets are never acked (and
  so never committed) before the records and dead letters are written;
- the body never raises: ``BatchHandler`` retries what can pass and dead-letters what
  cannot;
- on shutdown a batch still unwritten after ``SHUTDOWN_GRACE_S`` (an engine down) is given
  up (`InFlight`): its messages are marked acked on the message only (``Message.acked``),
  which makes the stream's final ack skip the consumer's offset bookkeeping, so their
  offsets are never committed and the next owner of the partition reads them again. This
  must happen before ``App.on_stop`` stops the consumer, which waits for every delivered
  message to be acked (``stream_wait_empty``) before the agents are cancelled; after a
  give-up that wait is switched off, since the messages behind the batch are never acked.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import faust
from faust.types import StreamT
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from cdrstream.core.outcome import Policy
from cdrstream.observability import pipeline_metrics as m
from cdrstream.settings import Settings
from cdrstream.store.connection import connect
from cdrstream.store.sweeper import count_in_window, sweep_expired
from cdrstream.store.writer import RecordWriter
from cdrstream.tenant_profiles import load_tenant_profiles
from cdrstream.worker.batch import BatchHandler
from cdrstream.worker.dead_letters import DeadLetter
from cdrstream.worker.incoming import Incoming
from cdrstream.worker.progress import Progress

log = logging.getLogger(__name__)

#: How long shutdown waits for the batch in hand before giving it up (unacked).
SHUTDOWN_GRACE_S = 5.0


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _incoming(event: Any) -> Incoming:
    message = event.message
    value = message.value
    return Incoming(
        value=value if isinstance(value, bytes) else b"",
        key=message.key if isinstance(message.key, bytes) else None,
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        timestamp_ms=int(message.timestamp * 1000) if message.timestamp else None,
        headers=tuple((str(k), bytes(v or b"")) for k, v in (message.headers or ())),
    )


def leave_unacked(events: Sequence[Any]) -> None:
    """Mark the messages acked on the message only: the stream's final ack then skips the
    consumer's offset bookkeeping, so their offsets are never committed."""
    for event in events:
        event.message.acked = True


class InFlight:
    """The batch in hand: its Faust events and the task writing them."""

    def __init__(self) -> None:
        self.events: Sequence[Any] = ()
        self.work: asyncio.Future[Any] | None = None
        self.given_up = False

    async def give_up(self, grace_s: float) -> bool:
        """Let the batch finish within ``grace_s``, else cancel it without acking it (True)."""
        work, events = self.work, self.events
        if work is None or work.done():
            return False
        done, _ = await asyncio.wait({work}, timeout=grace_s)
        if done:
            return False
        self.given_up = True
        leave_unacked(events)
        work.cancel()
        log.warning(
            "stopping with a batch of %d events not written: not acknowledged, the next"
            " owner of their partitions reads them again",
            len(events),
        )
        return True


class WorkerApp(faust.App):
    """faust.App that gives up an unwritable batch before the consumer waits for acks."""

    in_flight: InFlight

    async def on_stop(self) -> None:
        if await self.in_flight.give_up(SHUTDOWN_GRACE_S):
            # Messages delivered after the given-up batch will never be acked either: do
            # not wait for them (uncommitted, they are read again by the next owner).
            self.conf.stream_wait_empty = False
        await super().on_stop()


def create_worker_app(settings: Settings) -> faust.App:
    app = WorkerApp(
        settings.consumer_group,
        broker=[f"kafka://{server}" for server in settings.kafka_bootstrap.split(",")],
        value_serializer="raw",
        key_serializer="raw",
        store="memory://",
        topic_partitions=settings.topic_partitions,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        web_port=settings.worker_port,
        web_bind=settings.api_bind,
        web_transport="tcp://",
        stream_buffer_maxsize=max(4096, settings.batch_max * 2),
        broker_commit_every=1_000_000,  # commit on the interval, not inside the fetch loop
        broker_commit_interval=1.0,
        # A killed worker's partitions move after the session timeout: keep failover short.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
        producer_acks=-1,
        producer_linger_ms=1,
        web_enabled=True,
    )
    source = app.topic(settings.topic, value_type=bytes, key_type=bytes, internal=False)
    dead_letter_topic = app.topic(
        settings.dlq_topic, value_type=bytes, key_type=bytes, internal=False
    )
    policy = Policy(
        retention_ms=settings.retention_ms,
        default_region=settings.default_region,
        tenants=load_tenant_profiles(settings.tenants_file) if settings.tenants_file else {},
    )
    state: dict[str, Any] = {}
    in_flight = app.in_flight = InFlight()
    progress = Progress(stall_after_s=settings.stall_after_s)
    m.STUCK.set_function(progress.busy_for)

    def redis() -> Any:
        if "redis" not in state:  # created inside the worker's event loop
            state["redis"] = connect(settings)
        return state["redis"]

    async def send_dead_letters(letters: Sequence[DeadLetter]) -> None:
        producer = app.producer
        futures = [
            await producer.send(
                dead_letter_topic.get_topic_name(),
                letter.key,
                letter.value,
                partition=None,
                timestamp=None,
                headers=list(letter.headers),
            )
            for letter in letters
        ]
        await asyncio.gather(*futures)

    def handler() -> BatchHandler:
        if "handler" not in state:
            state["handler"] = BatchHandler(
                records=RecordWriter(redis(), retention_ms=settings.retention_ms),
                dead_letters=send_dead_letters,
                policy=policy,
                progress=progress,
            )
        return state["handler"]

    @app.agent(source, name="cdr-records", concurrency=1)
    async def write_records(stream: StreamT) -> None:
        within = settings.batch_within_ms / 1000
        # take_events is on faust.Stream but missing from the StreamT protocol.
        batches = stream.take_events(settings.batch_max, within=within)  # type: ignore[attr-defined]
        async for events in batches:
            if in_flight.given_up:  # stopping: what is still delivered is left for later
                leave_unacked(events)
                continue
            batch = [_incoming(e) for e in events]
            # handle() raises only when cancelled: an exception escaping here would ack
            # the batch and leave the agent deaf (faust-streaming 0.15).
            in_flight.events = events
            in_flight.work = work = asyncio.ensure_future(handler().handle(batch))
            try:
                await asyncio.shield(work)
            except asyncio.CancelledError:
                if in_flight.given_up and work.cancelled():
                    continue  # given up by WorkerApp.on_stop, not a cancel of the agent
                # Finish the batch before take_events() acks it, or give it up unacked.
                await in_flight.give_up(SHUTDOWN_GRACE_S)
                raise

    @app.timer(interval=float(settings.sweep_interval_s), on_leader=False)
    async def sweep_window() -> None:
        try:
            removed = await sweep_expired(
                redis(), now_ms=_now_ms(), retention_ms=settings.retention_ms
            )
            m.SWEPT.inc(removed)
            m.RECORDS_IN_WINDOW.set(
                await count_in_window(redis(), now_ms=_now_ms(), retention_ms=settings.retention_ms)
            )
        except Exception as exc:  # the next tick tries again; writes trim on their own
            log.warning("window sweep failed: %s: %s", type(exc).__name__, exc)

    @app.timer(interval=5.0)
    async def sample_lag() -> None:
        consumer = app.consumer
        assigned = [tp for tp in consumer.assignment() if tp.topic == settings.topic]
        m.CONSUMER_LAG.clear()  # partitions move on rebalance; drop the ones we lost
        for tp in assigned:
            committed = getattr(consumer, "_committed_offset", {}).get(tp) or 0  # no public getter
            highwater = consumer.highwater(tp) or 0
            m.CONSUMER_LAG.labels(str(tp.partition)).set(max(0, highwater - committed))

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        stall = progress.stall()
        checks = {"kafka": bool(app.consumer.assignment()), "redis": False, "progress": not stall}
        try:
            checks["redis"] = bool(await redis().ping())
        except Exception:  # reported, not raised: readiness is an answer, not an error
            checks["redis"] = False
        status = 200 if all(checks.values()) else 503
        body: dict[str, Any] = {"status": "ready" if status == 200 else "not ready"}
        body["checks"] = checks
        if stall:
            body["reason"] = stall
        return web.json(body, status=status)

    return app
