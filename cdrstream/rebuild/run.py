"""The rebuild itself: the topic read from ``now - retention`` through the worker's own batch
pipeline (the same rules, writer and overlap), so a rebuilt record is byte for byte what the
live worker writes, and the idempotent upsert makes overlap with live workers harmless.

Invalid events are not dead-lettered again (the live worker did when they arrived), nor is
a record batch that cannot be decoded: the rebuild skips it, logs its partition and offsets
and lists it in its result (the live worker dead-lettered it as ``undecodable_batch``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cdrstream.core.clock import now_ms
from cdrstream.core.outcome import Policy
from cdrstream.kafka_connection import client_options
from cdrstream.rebuild.plan import Progress, TopicRetention, retention_refusal, start_time_ms
from cdrstream.settings import Settings
from cdrstream.store.connection import connect, prepare
from cdrstream.store.writer import RecordWriter
from cdrstream.tenant_profiles import load_tenant_profiles
from cdrstream.worker.batch import BatchHandler
from cdrstream.worker.dead_letters import DeadLetter
from cdrstream.worker.fetch_batches import incoming
from cdrstream.worker.incoming import Incoming
from cdrstream.worker.pipeline import OverlappedBatches
from cdrstream.worker.progress import Progress as StallProgress
from cdrstream.worker.undecodable_batches import guard_record_batches

log = logging.getLogger(__name__)


class RebuildRefused(RuntimeError):
    """The rebuild cannot be complete; the message says why and what to change."""


@dataclass(frozen=True, slots=True)
class RebuildResult:
    events: int  # read from the topic
    seconds: float
    replayed: int = 0  # of those, through the pipeline (the tenant's, with --tenant)
    #: (partition, first offset, last offset) of each record batch that could not be decoded
    undecodable: tuple[tuple[int, int, int], ...] = ()

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class TopicLayout:
    partitions: list[int]
    retention: TopicRetention

    @property
    def retention_ms(self) -> int | None:
        return self.retention.retention_ms


RETENTION_CONFIGS = ("retention.ms", "retention.bytes", "cleanup.policy")


async def topic_layout(settings: Settings) -> TopicLayout:
    """The topic's partitions and retention settings, as the broker reports them."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        topics = await admin.describe_topics([settings.topic])
        responses = await admin.describe_configs(
            [
                ConfigResource(
                    ConfigResourceType.TOPIC, settings.topic, dict.fromkeys(RETENTION_CONFIGS)
                )
            ]
        )
    finally:
        await admin.close()
    described = [t for t in topics if t["topic"] == settings.topic and not t["error_code"]]
    if not described or not described[0]["partitions"]:
        raise RebuildRefused(f"topic {settings.topic} does not exist")
    partitions = sorted(p["partition"] for p in described[0]["partitions"])
    values: dict[str, str] = {}
    for response in responses:
        for error_code, _message, _type, name, entries, *_ in response.resources:
            if error_code:
                raise RebuildRefused(f"topic {settings.topic}: broker error code {error_code}")
            for entry in entries:
                if name == settings.topic and entry[0] in RETENTION_CONFIGS and entry[1]:
                    values[entry[0]] = entry[1]
    retention = TopicRetention(
        retention_ms=int(values["retention.ms"]) if "retention.ms" in values else None,
        retention_bytes=int(values["retention.bytes"]) if "retention.bytes" in values else None,
        cleanup_policy=values.get("cleanup.policy", "delete"),
    )
    return TopicLayout(partitions, retention)


async def rebuild(
    settings: Settings,
    *,
    tenant: str | None = None,
    since_ms: int | None = None,
    report: Callable[[Progress], None] = lambda progress: None,
    report_every_s: float = 1.0,
) -> RebuildResult:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.partitioner import DefaultPartitioner
    from aiokafka.structs import TopicPartition

    layout = await topic_layout(settings)
    refusal = retention_refusal(settings.topic, layout.retention, settings.retention_ms)
    if refusal is not None:
        raise RebuildRefused(refusal)
    guard_record_batches()

    consumer = AIOKafkaConsumer(
        **client_options(settings),
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=1 << 20,
    )
    redis = connect(settings)
    await consumer.start()
    try:
        await prepare(redis)
        partitions = layout.partitions
        key = tenant.encode() if tenant is not None else None
        if key is not None:  # one tenant lives on one partition: read only that one
            partitions = [DefaultPartitioner()(key, partitions, partitions)]
        tps = [TopicPartition(settings.topic, p) for p in partitions]
        consumer.assign(tps)
        start = start_time_ms(now_ms(), settings.retention_ms, since_ms)
        firsts = await _first_offsets(consumer, tps, start)
        ends = await consumer.end_offsets(tps)
        todo: dict[Any, int] = {}  # partition -> end offset (exclusive) to read up to
        total = 0
        for tp in tps:
            first = firsts.get(tp)
            if first is not None and first < ends[tp]:
                todo[tp] = ends[tp]
                total += ends[tp] - first
        if not todo:  # (assigning no partition would leave aiokafka's fetcher unstoppable)
            return RebuildResult(0, 0.0)
        consumer.assign(list(todo))  # nothing to read elsewhere
        for tp in todo:
            consumer.seek(tp, firsts[tp])
        return await _read(consumer, redis, settings, todo, key, total, report, report_every_s)
    finally:
        await consumer.stop()
        await redis.aclose()


async def _first_offsets(consumer: Any, tps: list[Any], start_ms: int) -> dict[Any, int | None]:
    """Each partition's first offset at or after ``start_ms`` (None: no event that recent).
    A partition whose broker cannot answer (it fails the timestamp search on a damaged
    segment) is read from its beginning: the rules leave out what is older than the window."""
    from aiokafka.errors import KafkaError

    firsts: dict[Any, int | None] = {}
    for tp in tps:
        try:
            found = (await consumer.offsets_for_times({tp: start_ms})).get(tp)
        except KafkaError as exc:
            log.warning(
                "rebuild: partition %d cannot be searched by time (%s): read from its beginning",
                tp.partition,
                type(exc).__name__,
            )
            firsts[tp] = (await consumer.beginning_offsets([tp]))[tp]
        else:
            firsts[tp] = None if found is None else found.offset
    return firsts


async def _read(
    consumer: Any,
    redis: Any,
    settings: Settings,
    todo: dict[Any, int],
    key: bytes | None,
    total: int,
    report: Callable[[Progress], None],
    report_every_s: float,
) -> RebuildResult:
    async def no_dead_letters(letters: Sequence[DeadLetter]) -> None:
        return None

    handler = BatchHandler(
        records=RecordWriter(redis, retention_ms=settings.retention_ms),
        dead_letters=no_dead_letters,
        policy=Policy(
            retention_ms=settings.retention_ms,
            default_region=settings.default_region,
            tenants=load_tenant_profiles(settings.tenants_file) if settings.tenants_file else {},
        ),
        progress=StallProgress(stall_after_s=settings.stall_after_s),
    )
    pipeline: OverlappedBatches[None] = OverlappedBatches(handler, lambda token: None)
    began = time.perf_counter()
    reported = began
    done = 0
    replayed = 0
    undecodable: list[tuple[int, int, int]] = []
    while todo:
        fetched = await consumer.getmany(timeout_ms=500, max_records=settings.batch_max)
        messages: list[Incoming] = []
        for tp, records in fetched.items():
            end = todo.get(tp)
            if end is None:
                continue
            kept = [r for r in records if r.offset < end]
            done += len(kept)
            if len(kept) < len(records) or (kept and kept[-1].offset >= end - 1):
                del todo[tp]  # reached the end offset taken at the start
                consumer.pause(tp)
            for message in map(incoming, kept):
                if message.undecodable is not None:
                    undecodable.append(_skipped(message))
                    done += len(message.offsets) - 1  # one message for the batch's offsets
                elif key is None or message.key == key:
                    messages.append(message)
        if messages:
            replayed += len(messages)
            await pipeline.feed(messages, None)
        now = time.perf_counter()
        if now - reported >= report_every_s:
            report(Progress(done, total, now - began))
            reported = now
    await pipeline.flush()
    elapsed = time.perf_counter() - began
    report(Progress(done, total, elapsed))
    return RebuildResult(done, elapsed, replayed, tuple(undecodable))


def _skipped(message: Incoming) -> tuple[int, int, int]:
    offsets = message.offsets
    span = message.undecodable
    log.warning(
        "rebuild: skipped an undecodable record batch in partition %d, offsets %d-%d (%s);"
        " the live worker sent it to the dead-letter topic as undecodable_batch",
        message.partition,
        offsets[0],
        offsets[-1],
        span.error if span else "",
        extra={"reason": "undecodable_batch", "partition": message.partition},
    )
    return message.partition, offsets[0], offsets[-1]
