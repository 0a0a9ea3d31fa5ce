"""Shared fixtures: the suite runs its own Kafka and Redis on free ports, not the dev stack's."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from cdrstream.settings import Settings, load_settings
from cdrstream.stack.kafka import KafkaNode
from cdrstream.stack.processes import free_port
from cdrstream.stack.redis_server import RedisNode

# No per-example deadline: on a loaded CI machine, late in a long process, an example's
# duration says nothing about the property tested (the other defaults stay as they are).
hypothesis_settings.register_profile("cdrstream", deadline=None)
hypothesis_settings.load_profile("cdrstream")


@pytest.fixture(scope="session")
def redis_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisNode]:
    node = RedisNode(base_dir=tmp_path_factory.mktemp("redis"), port=free_port())
    node.up()
    yield node
    node.down()


def running_kafka(base_dir: Path) -> Iterator[KafkaNode]:
    """A real broker on free ports under ``base_dir``, up while the generator is."""
    defaults = load_settings({})
    node = KafkaNode(
        base_dir=base_dir,
        port=free_port(),
        controller_port=free_port(),
        version=defaults.kafka_version,
        cache_dir=Path(defaults.cache_dir),
    )
    node.up()
    yield node
    node.down()


@pytest.fixture(scope="session")
def kafka_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaNode]:
    yield from running_kafka(tmp_path_factory.mktemp("kafka"))


@pytest.fixture
def redis_settings(redis_node: RedisNode, tmp_path: Path) -> Settings:
    """Settings pointing at the suite's Redis, on a database of its own per test."""
    return replace(
        load_settings({}),
        redis_url=redis_node.url,
        access_file=str(tmp_path / "access.json"),
        cursor_secret="test-cursor-secret",
    )


@pytest.fixture
def stack_settings(redis_settings: Settings, kafka_node: KafkaNode) -> Settings:
    """Settings for the suite's Kafka + Redis, with topic and group names unique to the test."""
    suffix = uuid.uuid4().hex[:8]
    return replace(
        redis_settings,
        kafka_bootstrap=kafka_node.bootstrap,
        topic=f"cdr.call-ended.{suffix}",
        dlq_topic=f"cdr.call-ended.{suffix}.dlq",
        consumer_group=f"cdrstream-{suffix}",
        topic_partitions=3,
    )
