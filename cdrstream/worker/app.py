"""The Faust app of the worker role: the agent, the timers and the worker's own web pages.

Design around faust-streaming 0.15 (see the project's notes on Faust):
- values are consumed raw and decoded by the rules core, so a malformed message never
  reaches Faust's JSON codec (which would stall a ``take()`` agent);
- ``take_events()`` acks a batch in its ``finally``: the batch's work runs in its own task
  and the agent waits for that task even when cancelled, so offsets are never acked (and
  so never committed) before the records and dead letters are written;
- the body never raises: failures are retried inside ``BatchHandler``.
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
from cdrstream.worker.retry import until_done

log = logging.getLogger("cdrstream.worker")


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


def create_worker_app(settings: Settings) -> faust.App:
    app = faust.App(
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
            )
        return state["handler"]

    @app.agent(source, name="cdr-records", concurrency=1)
    async def write_records(stream: StreamT) -> None:
        within = settings.batch_within_ms / 1000
        # take_events is on faust.Stream but missing from the StreamT protocol.
        batches = stream.take_events(settings.batch_max, within=within)  # type: ignore[attr-defined]
        async for events in batches:
            batch = [_incoming(e) for e in events]
            # Even a bug in the handler must not escape: an exception here would ack the
            # batch and leave the agent deaf (faust-streaming 0.15). It stalls instead.
            work = asyncio.ensure_future(
                until_done("batch", lambda: handler().handle(batch), log=log)  # noqa: B023
            )
            try:
                await asyncio.shield(work)
            except asyncio.CancelledError:
                # Shutdown or rebalance: finish the batch before take_events() acks it.
                await work
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
        checks = {"kafka": bool(app.consumer.assignment()), "redis": False}
        try:
            checks["redis"] = bool(await redis().ping())
        except Exception:  # reported, not raised: readiness is an answer, not an error
            checks["redis"] = False
        status = 200 if all(checks.values()) else 503
        return web.json(
            {"status": "ready" if status == 200 else "not ready", "checks": checks}, status=status
        )

    return app
