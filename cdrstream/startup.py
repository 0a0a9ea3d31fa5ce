"""Start-up waits: a role starts once its engines answer, retrying with backoff meanwhile."""

from __future__ import annotations

import asyncio
import logging
import time

from cdrstream.kafka_topics import ensure_owned_topics
from cdrstream.settings import Settings


def wait_for_topics(settings: Settings, log: logging.Logger, max_delay_s: float = 10.0) -> None:
    """Create the source and dead-letter topics if missing, retrying until Kafka answers."""
    delay = 0.5
    while True:
        try:
            asyncio.run(ensure_owned_topics(settings))
            return
        except Exception as exc:  # Kafka not reachable yet: wait, say so, try again
            log.warning(
                "kafka at %s not reachable (%s: %s), retrying in %.1fs",
                settings.kafka_bootstrap,
                type(exc).__name__,
                exc,
                delay,
            )
            time.sleep(delay)
            delay = min(max_delay_s, delay * 2)
