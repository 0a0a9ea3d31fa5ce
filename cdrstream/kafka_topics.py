"""The topics cdrstream owns (Faust creates only its internal ones)."""

from __future__ import annotations

import contextlib

from cdrstream.settings import Settings


async def ensure_owned_topics(settings: Settings) -> None:
    """The call-ended topic (``topic_partitions`` partitions) and its dead-letter topic."""
    await ensure_topics(
        settings.kafka_bootstrap, {settings.topic: settings.topic_partitions, settings.dlq_topic: 1}
    )


async def ensure_topics(bootstrap: str, topics: dict[str, int]) -> None:
    """Create missing topics (name -> partitions), replication factor 1 on the local node.

    Faust only creates its internal topics; the source and dead-letter topics are ours.
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(name, num_partitions=parts, replication_factor=1)
            for name, parts in topics.items()
            if name not in existing
        ]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process was first
                await admin.create_topics(wanted)
    finally:
        await admin.close()
