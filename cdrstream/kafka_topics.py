"""The topics cdrstream owns: the call-ended topic and its dead-letter topic.

Faust creates only its internal topics, and the worker creates none: on a real cluster the
operator decides partitions and replication (`cdrstream topics create`). `cdrstream stack
up`, the demo, the benchmark and the tests create them on the local single node.
"""

from __future__ import annotations

import contextlib

from cdrstream.core.clock import DAY_MS
from cdrstream.kafka_connection import client_options
from cdrstream.settings import Settings


def owned_topics(settings: Settings) -> dict[str, int]:
    """Name -> partitions. The dead-letter topic has as many partitions as the source."""
    return {
        settings.topic: settings.topic_partitions,
        settings.dlq_topic: settings.topic_partitions,
    }


def topic_configs(settings: Settings, name: str, replication_factor: int) -> dict[str, str]:
    """The call-ended topic keeps a day more than the window, so `cdrstream rebuild` can bring
    the whole window back (the dead-letter topic keeps the broker's default). With three or
    more replicas an `acks=all` write must reach two of them (`min.insync.replicas=2`): one
    broker may die without losing or refusing an acknowledged event."""
    configs = (
        {"retention.ms": str(settings.retention_ms + DAY_MS)} if name == settings.topic else {}
    )
    if replication_factor >= 3:
        configs["min.insync.replicas"] = "2"
    return configs


async def ensure_owned_topics(settings: Settings, *, replication_factor: int = 1) -> None:
    """Create the owned topics that are missing (existing ones are left as they are)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                name,
                num_partitions=parts,
                replication_factor=replication_factor,
                topic_configs=topic_configs(settings, name, replication_factor),
            )
            for name, parts in owned_topics(settings).items()
            if name not in existing
        ]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process was first
                await admin.create_topics(wanted)
    finally:
        await admin.close()


async def missing_topics(settings: Settings) -> list[str]:
    """The owned topics the cluster does not have."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
    finally:
        await admin.close()
    return [name for name in owned_topics(settings) if name not in existing]
