"""When the worker last reached a Kafka broker: what its readiness and outage metric read.

aiokafka retries a lost broker on its own and Faust's fetch loop then simply receives no
records, as on a quiet topic, so "no records" says nothing. Contact is proven instead by a
fetch that returned records or, when the topic is quiet, by a metadata round trip that a
broker answered (`KafkaContact.probe`, every ``PROBE_EVERY_S`` when no fetch proved it).
The worker is not ready while its last contact is older than ``OUTAGE_AFTER_S``
(docs/operations.md, "Worker readiness").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

PROBE_EVERY_S = 5.0
PROBE_TIMEOUT_S = 5.0
#: No contact for this long: the worker reports itself not ready.
OUTAGE_AFTER_S = 15.0


class KafkaContact:
    def __init__(
        self,
        client_options: Mapping[str, Any],
        *,
        clock: Callable[[], float] = time.monotonic,
        outage_after_s: float = OUTAGE_AFTER_S,
    ) -> None:
        self._client_options = client_options  # kafka_connection.client_options: TLS, SASL
        self._clock = clock
        self._outage_after_s = outage_after_s
        self._last = clock()  # starting counts as contact: the topics were just checked
        self._last_error: str | None = None
        self._client: Any = None

    def reached(self) -> None:
        """A broker answered (a fetch returned records, or a probe succeeded)."""
        self._last = self._clock()
        self._last_error = None

    def age_s(self) -> float:
        """Seconds since a broker last answered."""
        return max(0.0, self._clock() - self._last)

    def outage(self) -> str | None:
        """Why the worker cannot fetch now, or None."""
        age = self.age_s()
        if age < self._outage_after_s:
            return None
        cause = f" ({self._last_error})" if self._last_error else ""
        return f"no kafka broker reached for {age:.0f}s{cause}"

    async def probe(self) -> None:
        """One metadata round trip, unless a fetch proved contact within ``PROBE_EVERY_S``."""
        if self.age_s() < PROBE_EVERY_S:
            return
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                client = await self._started_client()
                await client.fetch_all_metadata()
        except Exception as exc:  # unreachable, timed out, refused: the age tells
            self._last_error = type(exc).__name__
            await self._drop_client()
            return
        self.reached()

    async def _started_client(self) -> Any:
        if self._client is None:
            from aiokafka.client import AIOKafkaClient

            client = AIOKafkaClient(
                **self._client_options, request_timeout_ms=int(PROBE_TIMEOUT_S * 1000)
            )
            self._client = client  # closed by _drop_client if bootstrap fails
            await client.bootstrap()
        return self._client

    async def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()

    async def close(self) -> None:
        await self._drop_client()
