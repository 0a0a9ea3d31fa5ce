"""The adapters' Kafka producer (a shell): an event keyed by its tenant, a dead letter with
its reason; each call returns only once the broker acknowledged (``acks=all``).

The producer connects in the background and keeps trying while Kafka is away, so a
receiver can start (and say "not ready") before Kafka does. A send while disconnected, or
one Kafka does not acknowledge within `SEND_TIMEOUT_S`, raises `Unavailable`: the caller
answers 503 (FreeSWITCH retries) or waits and tries again (the file tailer, the AMI client).
A send that timed out may still be delivered later; the event id is the same when it is
sent again, so the store counts the second one as a duplicate.

Every producer is idempotent with ``acks=all`` (a retry inside the client cannot write a
batch twice) and compresses its batches with ``CDRSTREAM_INGEST_COMPRESSION`` (`CODECS`;
zstd by default: a 314-byte FreeSWITCH event, alone in its batch, goes out as 192 bytes).

Readiness (`ready`) is what Kafka says *now*: an acknowledgement in the last `FRESH_S`
seconds (a produce, or an earlier probe), else a metadata round trip that has to reach a
broker within `PROBE_TIMEOUT_S`. Cached metadata never counts: it outlives the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Sequence
from typing import Any

import orjson

from cdrstream.ingest.metrics import PRODUCE
from cdrstream.kafka_connection import KafkaAccessRefused, check_access, producer_options
from cdrstream.settings import Settings

log = logging.getLogger("cdrstream.ingest")

SEND_TIMEOUT_S = 10.0
#: ``CDRSTREAM_INGEST_COMPRESSION`` -> aiokafka's ``compression_type`` (``None``: uncompressed).
CODECS: dict[str, str | None] = {
    "zstd": "zstd",
    "lz4": "lz4",
    "gzip": "gzip",
    "snappy": "snappy",
    "none": None,
}
#: An acknowledgement this recent answers readiness without asking the broker again.
FRESH_S = 5.0
PROBE_TIMEOUT_S = 5.0
_RETRY_FIRST_S = 0.5
_RETRY_MAX_S = 10.0


class Unavailable(Exception):
    """Kafka did not acknowledge (down, unreachable, or too slow)."""


def compression_type(name: str) -> str | None:
    """aiokafka's ``compression_type`` for a ``CDRSTREAM_INGEST_COMPRESSION`` value."""
    try:
        return CODECS[name.strip().lower()]
    except KeyError:
        raise ValueError(
            f"CDRSTREAM_INGEST_COMPRESSION: {name!r} is not one of {', '.join(CODECS)}"
        ) from None


class EventProducer:
    def __init__(self, settings: Settings, *, source: str) -> None:
        self._settings = settings
        self._source = source
        self._compression = compression_type(settings.ingest_compression)
        self._acknowledged_at = -math.inf
        self._probe = asyncio.Lock()
        self._producer: Any = None
        self.refused: str | None = None  # why Kafka refused the settings: never retried
        self._started = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self._started.is_set()

    async def start(self) -> None:
        """Begin connecting in the background (returns at once)."""
        self._task = asyncio.create_task(self._connect(), name="kafka-producer-connect")

    async def wait_connected(self, timeout_s: float | None = None) -> bool:
        try:
            async with asyncio.timeout(timeout_s):
                await self._started.wait()
        except TimeoutError:
            return False
        return True

    async def _connect(self) -> None:
        from aiokafka import AIOKafkaProducer

        delay = _RETRY_FIRST_S
        while True:
            producer = AIOKafkaProducer(
                **producer_options(self._settings),
                compression_type=self._compression,
                linger_ms=0,
                request_timeout_ms=int(SEND_TIMEOUT_S * 1000),
                client_id=f"cdrstream-ingest-{self._source}",
            )
            try:
                await check_access(self._settings)  # tells a refused login from an outage
                await producer.start()
            except KafkaAccessRefused as exc:
                with contextlib.suppress(Exception):
                    await producer.stop()
                self.refused = str(exc)
                log.error("kafka refused: %s; not producing until the settings change", exc)
                return
            except Exception as exc:
                with contextlib.suppress(Exception):
                    await producer.stop()
                log.warning(
                    "kafka %s not reachable (%s); retrying in %.1f s",
                    self._settings.kafka_bootstrap,
                    type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX_S)
                continue
            self._producer = producer
            self._started.set()
            log.info("producing to kafka %s", self._settings.kafka_bootstrap)
            return

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._producer is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await self._producer.stop()

    async def ready(self) -> bool:
        """Kafka acknowledged in the last `FRESH_S` seconds, or answers a metadata request
        now, naming the call-ended topic's partitions."""
        if self._producer is None:
            return False
        async with self._probe:  # one probe at a time; the others take its answer
            if time.monotonic() - self._acknowledged_at < FRESH_S:
                return True
            try:
                async with asyncio.timeout(PROBE_TIMEOUT_S):
                    metadata = await self._producer.client.fetch_all_metadata()
            except Exception:
                return False
            if not metadata.partitions_for_topic(self._settings.topic):
                return False
            self._acknowledged_at = time.monotonic()
            return True

    async def _send(
        self, topic: str, value: bytes, key: bytes | None, headers: Sequence[tuple[str, bytes]]
    ) -> None:
        if self._producer is None:
            raise Unavailable("not connected to kafka")
        began = time.perf_counter()
        try:
            async with asyncio.timeout(SEND_TIMEOUT_S):
                await self._producer.send_and_wait(
                    topic, value=value, key=key, headers=list(headers) or None
                )
        except Exception as exc:
            self._acknowledged_at = -math.inf
            raise Unavailable(type(exc).__name__) from exc
        PRODUCE.observe(time.perf_counter() - began)
        self._acknowledged_at = time.monotonic()

    async def send_event(self, event: dict[str, Any]) -> None:
        """Produce one event onto the call-ended topic, keyed by its tenant id."""
        await self._send(
            self._settings.topic,
            orjson.dumps(event),
            str(event["tenant_id"]).encode(),
            (("cdrstream.source", self._source.encode()),),
        )

    async def send_dead_letter(self, value: bytes, reason: str, **where: str) -> None:
        """Produce an unreadable record (as read) onto the dead-letter topic, with
        ``cdrstream.reason``, ``cdrstream.source`` and ``cdrstream.source.<name>`` headers."""
        headers = [
            ("cdrstream.reason", reason.encode()),
            ("cdrstream.source", self._source.encode()),
        ]
        headers += [(f"cdrstream.source.{name}", text.encode()) for name, text in where.items()]
        await self._send(self._settings.dlq_topic, value[:900_000], None, headers)
