"""The worker role's Faust app: whole fetches in, records and dead letters out.

Design around faust-streaming 0.15.3 (docs/pipeline.md, "Worker"):
- values are consumed raw and decoded by the rules core, so a malformed message never
  reaches Faust's JSON codec;
- each fetch reaches the batch task whole (`cdrstream.worker.fetch_batches`), the rules of
  one batch run while the previous one is written (`cdrstream.worker.pipeline`), and a
  batch's offsets become committable only once its records and dead letters are written;
- `BatchHandler` retries what can pass and dead-letters what cannot, so the task never
  raises;
- on shutdown a batch still unwritten after ``SHUTDOWN_GRACE_S`` (an engine down) is given
  up before ``App.on_stop`` stops the consumer (which waits for every delivered batch to
  be written, ``stream_wait_empty``): it and the batches queued behind it are released
  unacknowledged, that wait is switched off, and the next owner of the partitions reads
  them again;
- a record batch the consumer cannot decode reaches the batch task as one message and is
  dead-lettered whole (`cdrstream.worker.undecodable_batches`);
- readiness includes the last contact with a broker (`cdrstream.worker.kafka_contact`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from cdrstream.core.clock import now_ms
from cdrstream.core.outcome import Policy
from cdrstream.core.summary import first_day
from cdrstream.kafka_connection import client_options, faust_credentials
from cdrstream.observability import health
from cdrstream.observability import pipeline_metrics as m
from cdrstream.settings import Settings
from cdrstream.store.connection import RedisClient, connect, prepare
from cdrstream.store.sweeper import count_in_window, sweep_expired
from cdrstream.store.writer import RecordWriter
from cdrstream.tenant_profiles import load_tenant_profiles
from cdrstream.worker.batch import BatchHandler
from cdrstream.worker.dead_letters import DeadLetter
from cdrstream.worker.fetch_batches import BatchDelivery, FetchedBatch, WholeFetchApp
from cdrstream.worker.kafka_contact import PROBE_EVERY_S, KafkaContact
from cdrstream.worker.pipeline import OverlappedBatches
from cdrstream.worker.progress import Progress
from cdrstream.worker.undecodable_batches import guard_record_batches

log = logging.getLogger(__name__)

#: How long shutdown waits for the batch in hand before giving it up (unacked).
SHUTDOWN_GRACE_S = 5.0


class WorkerApp(WholeFetchApp):
    """faust.App with whole-fetch delivery and the worker's batch task, timers and pages."""

    def __init__(self, settings: Settings) -> None:
        guard_record_batches()
        super().__init__(
            settings.consumer_group,
            broker=[f"kafka://{server}" for server in settings.kafka_bootstrap.split(",")],
            broker_credentials=faust_credentials(settings),
            value_serializer="raw",
            key_serializer="raw",
            store="memory://",
            topic_partitions=settings.topic_partitions,
            topic_disable_leader=True,
            consumer_auto_offset_reset="earliest",
            broker_max_poll_records=settings.batch_max,
            web_port=settings.worker_port,
            web_bind=settings.api_bind,
            web_transport="tcp://",
            broker_commit_every=1_000_000,  # commit on the interval, not inside the fetch loop
            broker_commit_interval=1.0,
            # A killed worker's partitions move after the session timeout: keep failover short.
            broker_session_timeout=10.0,
            broker_heartbeat_interval=2.0,
            producer_acks=-1,
            producer_linger_ms=1,
            web_enabled=True,
        )
        self.settings = settings
        self.source = self.topic(settings.topic, value_type=bytes, key_type=bytes, internal=False)
        self.topics.add(self.source)  # subscribed without an agent: BatchDelivery delivers
        self.dead_letter_topic = settings.dlq_topic
        self.policy = Policy(
            retention_ms=settings.retention_ms,
            default_region=settings.default_region,
            tenants=load_tenant_profiles(settings.tenants_file) if settings.tenants_file else {},
        )
        self.progress = Progress(stall_after_s=settings.stall_after_s)
        m.STUCK.set_function(self.progress.busy_for)
        self.kafka_contact = KafkaContact(client_options(settings))
        m.KAFKA_CONTACT_AGE.set_function(self.kafka_contact.age_s)
        self.delivery = BatchDelivery(self, contact=self.kafka_contact.reached)
        self.pipeline: OverlappedBatches[FetchedBatch] | None = None
        self.given_up = False
        self._redis: RedisClient | None = None
        self.task(self.write_batches)
        self.timer(interval=float(settings.sweep_interval_s))(self.sweep_window)
        self.timer(interval=5.0)(self.sample_lag)
        self.timer(interval=PROBE_EVERY_S)(self.kafka_contact.probe)
        _add_pages(self)

    @property
    def redis(self) -> RedisClient:
        if self._redis is None:  # created inside the worker's event loop
            self._redis = connect(self.settings)
        return self._redis

    async def write_batches(self) -> None:
        """The batch task: every fetch through the rules and the writer, in order."""
        try:  # a cluster client loads its slot map before concurrent use (connection.py)
            await prepare(self.redis)
        except Exception as exc:  # Redis down at start: the first write retries
            log.warning("redis not ready at start: %s", type(exc).__name__)
        handler = BatchHandler(
            records=RecordWriter(
                self.redis,
                retention_ms=self.settings.retention_ms,
                display_tz=self.settings.display_tz,
            ),
            dead_letters=self.send_dead_letters,
            policy=self.policy,
            progress=self.progress,
        )
        self.pipeline = pipeline = OverlappedBatches(handler, self.delivery.acknowledge)
        queue = self.delivery.queue
        while True:
            batch = await queue.get()
            if self.given_up:
                self.delivery.release(batch)
                continue
            if self.delivery.take(batch):  # else fetched before a rebalance: read again later
                await pipeline.feed(batch.messages, batch)

    async def send_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        producer = self.producer
        futures = [
            await producer.send(
                self.dead_letter_topic,
                letter.key,
                letter.value,
                partition=None,
                timestamp=None,
                headers=list(letter.headers),
            )
            for letter in letters
        ]
        await asyncio.gather(*futures)

    async def give_up(self, grace_s: float) -> bool:
        """Let the batch in hand finish within ``grace_s``, else drop it and the queued ones
        unacknowledged (True)."""
        current = self.pipeline.in_flight() if self.pipeline is not None else None
        if current is None:
            return False
        work, batch = current
        done, _ = await asyncio.wait({work}, timeout=grace_s)
        if done:
            return False
        self.given_up = True
        work.cancel()
        self.delivery.release(batch)
        queued = self.delivery.release_queued()
        log.warning(
            "stopping with %d events not written (and %d fetches queued): not acknowledged,"
            " the next owner of their partitions reads them again",
            len(batch.messages),
            queued,
        )
        return True

    async def on_stop(self) -> None:
        if await self.give_up(SHUTDOWN_GRACE_S):
            self.delivery.stop_waiting_for_unwritten()
        await super().on_stop()

    async def on_shutdown(self) -> None:
        await super().on_shutdown()
        await self.kafka_contact.close()
        if self._redis is not None:
            await self._redis.aclose()

    async def sweep_window(self) -> None:
        settings = self.settings
        try:
            now = now_ms()
            removed = await sweep_expired(
                self.redis,
                now_ms=now,
                retention_ms=settings.retention_ms,
                summary_floor_day=first_day(
                    now, settings.retention_ms, ZoneInfo(settings.display_tz)
                ),
            )
            m.SWEPT.inc(removed)
            m.RECORDS_IN_WINDOW.set(
                await count_in_window(
                    self.redis, now_ms=now_ms(), retention_ms=settings.retention_ms
                )
            )
        except Exception as exc:  # the next tick tries again; writes trim on their own
            log.warning("window sweep failed: %s: %s", type(exc).__name__, exc)

    async def sample_lag(self) -> None:
        """Highwater minus committed offset per assigned partition: the committed offset as
        Faust's monitor saw it commit, else (nothing committed yet by this member) the
        consumer's position, which the assignment sought to the committed offset."""
        consumer = self.consumer
        committed_offsets = self.monitor.tp_committed_offsets
        assigned = [tp for tp in consumer.assignment() if tp.topic == self.settings.topic]
        m.CONSUMER_LAG.clear()  # partitions move on rebalance; drop the ones we lost
        for tp in assigned:
            committed = committed_offsets.get(tp)
            if committed is None:
                committed = await consumer.position(tp)
            highwater = consumer.highwater(tp) or 0
            m.CONSUMER_LAG.labels(str(tp.partition)).set(max(0, highwater - (committed or 0)))

    async def readiness(self) -> tuple[int, dict[str, Any]]:
        async def kafka() -> str | None:
            outage = self.kafka_contact.outage()
            if outage is not None:
                return outage
            return None if self.consumer.assignment() else "no partitions assigned"

        async def progress() -> str | None:
            return self.progress.stall()

        return await health.readiness(
            {"kafka": kafka, "redis": health.redis_check(lambda: self.redis), "progress": progress}
        )


def _add_pages(app: WorkerApp) -> None:
    """/metrics, /healthz and /readyz on the worker's web server (Faust views take
    ``(view, request)``, so these are functions, not methods)."""

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        content_type = health.METRICS_CONTENT_TYPE.split(";")[0]
        return web.bytes(health.metrics_body(), content_type=content_type)

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json(health.HEALTHY)

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        status, body = await app.readiness()
        return web.json(body, status=status)


def create_worker_app(settings: Settings) -> WorkerApp:
    return WorkerApp(settings)
