"""Batches from a real Java producer, one per codec Kafka offers, and batches nobody can
decode: every event stored, the worker ready throughout, the undecodable batches dead-
lettered whole while their partition moves on, and a rebuild over all of it.

The Java producer is Kafka's own console producer (``org.apache.kafka:kafka-tools``, the
same version as the broker, fetched by ``cdrstream stack fetch``). The undecodable batches
are made as nothing but a damaged disk can make them: produced normally, then rewritten
in the broker's segment file (a codec Kafka does not have, with a matching CRC; a CRC that
does not match), which the broker serves as it is.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
import redis
from aiokafka import AIOKafkaProducer

from cdrstream.observability.scrape import fetch, total
from cdrstream.settings import Settings
from cdrstream.simulation.calls import valid_event
from cdrstream.stack.kafka import KafkaNode, kafka_tools_command
from cdrstream.stack.processes import free_port
from cdrstream.stack.redis_server import RedisNode
from tests.integration.pipeline_helpers import (
    cdrstream_command,
    create_topics,
    dead_letters,
    expected_records,
    now_ms,
    produce,
    start_worker,
    stored_records,
    wait_for,
)
from tests.record_batches import CODECS, BatchOnDisk, batches_on_disk, with_bad_crc, with_codec

pytestmark = pytest.mark.integration

JAVA_CODECS = ["gzip", "snappy", "lz4", "zstd"]


@pytest.fixture
def codec_settings(stack_settings: Settings, own_redis: RedisNode) -> Settings:
    return create_topics(
        replace(
            stack_settings, worker_port=free_port(), topic_partitions=3, redis_url=own_redis.url
        )
    )


def _events(tenants: list[str], per_tenant: int, seed: int) -> list[tuple[str, bytes]]:
    rng = random.Random(seed)
    return [
        (tenant, orjson.dumps(valid_event(rng, tenant, now_ms())))
        for tenant in tenants
        for _ in range(per_tenant)
    ]


def _java_produce(settings: Settings, codec: str, items: list[tuple[str, bytes]]) -> None:
    """``items`` through Kafka's Java console producer: one batch per partition (a long
    linger, a large batch), compressed with ``codec``."""
    lines = b"".join(tenant.encode() + b"\t" + value + b"\n" for tenant, value in items)
    command = kafka_tools_command(
        Path(settings.cache_dir),
        settings.kafka_version,
        "org.apache.kafka.tools.ConsoleProducer",
        "--bootstrap-server",
        settings.kafka_bootstrap,
        "--topic",
        settings.topic,
        "--compression-codec",
        codec,
        "--request-required-acks",
        "all",
        "--property",
        "parse.key=true",
        "--property",
        "key.separator=\t",
        "--producer-property",
        "linger.ms=3000",
        "--producer-property",
        "batch.size=1000000",
    )
    done = subprocess.run(command, input=lines, capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]


async def _produce_batch(
    settings: Settings, tenant: str, values: list[bytes], codec: str
) -> tuple[int, int, int]:
    """``values`` as one batch (aiokafka, ``codec``); (partition, first, last offset)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        linger_ms=500,
        compression_type=None if codec == "none" else codec,
    )
    await producer.start()
    try:
        futures = [await producer.send(settings.topic, v, key=tenant.encode()) for v in values]
        sent = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    assert len({m.partition for m in sent}) == 1
    return sent[0].partition, sent[0].offset, sent[-1].offset


def _on_disk(kafka: KafkaNode, settings: Settings, partition: int) -> list[BatchOnDisk]:
    return list(batches_on_disk(kafka.base_dir / "data" / f"{settings.topic}-{partition}"))


def _readyz(settings: Settings) -> int:
    # A generous timeout: the worker's answer may be slow while the Java producers start
    # (a busy machine), and a slow answer is not an unready one.
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{settings.worker_port}/readyz", timeout=30
        ) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0  # not answering at all: crashed or restarting


async def test_java_codecs_and_undecodable_batches(
    codec_settings: Settings, kafka_node: KafkaNode, own_redis: RedisNode, tmp_path: Path
) -> None:
    settings = codec_settings
    run = random.randrange(10**9)
    broken = f"bad{run}"

    # Two batches of one tenant that nobody can decode, then a valid event behind them.
    bad_values = [orjson.dumps(valid_event(random.Random(i), broken, now_ms())) for i in range(6)]
    unknown_codec = await _produce_batch(settings, broken, bad_values[:3], "gzip")
    bad_crc = await _produce_batch(settings, broken, bad_values[3:], "none")
    behind = _events([broken], 1, seed=5)
    await produce(settings, behind)
    for (partition, first, _), damage in [
        (unknown_codec, lambda raw: with_codec(raw, 5)),
        (bad_crc, with_bad_crc),
    ]:
        [stored] = [b for b in _on_disk(kafka_node, settings, partition) if b.base_offset == first]
        stored.overwrite(damage(stored.read()))

    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        await wait_for(lambda: asyncio.to_thread(_readyz, settings), lambda s: s == 200)
        statuses: list[int] = []
        polling = True

        async def poll_readiness() -> None:
            while polling:
                statuses.append(await asyncio.to_thread(_readyz, settings))
                await asyncio.sleep(0.5)

        poller = asyncio.ensure_future(poll_readiness())
        partitions = range(settings.topic_partitions)
        written_before = {
            p: max((b.last_offset for b in _on_disk(kafka_node, settings, p)), default=-1)
            for p in partitions
        }
        by_codec: dict[str, list[tuple[str, bytes]]] = {}
        for i, codec in enumerate(JAVA_CODECS):
            tenants = [f"{codec}{run}-{t}" for t in range(3)]
            by_codec[codec] = _events(tenants, 20, seed=100 + i)
            await asyncio.to_thread(_java_produce, settings, codec, by_codec[codec])

        java = [item for items in by_codec.values() for item in items]
        everything = java + behind
        tenants = sorted({tenant for tenant, _ in everything})
        expected = expected_records(settings, everything, now_ms())
        assert len(expected) == len(everything)  # every event is a visible call
        found = await wait_for(
            lambda: stored_records(settings, tenants), lambda f: set(f) == set(expected)
        )
        polling = False
        await poller
        assert found == {key: [record] for key, record in expected.items()}, worker.log_tail()
        assert statuses and set(statuses) == {200}, (statuses, worker.log_tail())
        assert worker.running

        # The Java producer really compressed: every batch it wrote carries its codec.
        java_batches = [
            b
            for p in partitions
            for b in _on_disk(kafka_node, settings, p)
            if b.base_offset > written_before[p]
        ]
        assert {CODECS_BY_ID[b.codec] for b in java_batches} == set(JAVA_CODECS)

        letters = await dead_letters(settings, 2)
        assert len(letters) == 2
        ranges = set()
        for letter in letters:
            headers = dict(letter.headers)
            assert headers["cdrstream.reason"] == b"undecodable_batch"
            ranges.add(
                (
                    int(headers["cdrstream.source.partition"]),
                    int(headers["cdrstream.source.offset"]),
                    int(headers["cdrstream.source.last_offset"]),
                )
            )
            assert letter.value  # the batch's raw bytes
        assert ranges == {unknown_codec, bad_crc}
        metrics = fetch(f"http://127.0.0.1:{settings.worker_port}/metrics")
        assert total(metrics, "cdrstream_undecodable_batches_total") == 2
        log = (tmp_path / "worker.log").read_text()
        assert log.count("undecodable record batch in partition") == 2
    finally:
        polling = False
        worker.stop()

    # The window lost and rebuilt from the topic: the same records, the bad batches skipped.
    client = redis.Redis(port=own_redis.port)
    client.flushall()
    client.close()
    done = await asyncio.to_thread(cdrstream_command, settings, "rebuild")
    assert done.returncode == 0, done.stderr
    for partition, first, last in (unknown_codec, bad_crc):
        assert (
            f"skipped an undecodable record batch: partition {partition}, offsets {first}-{last}"
            in done.stderr
        )
    assert await stored_records(settings, tenants) == found


CODECS_BY_ID = {number: name for name, number in CODECS.items()}
