"""Batches through the handler with the rules of batch N+1 overlapping the write of batch N.

Writes stay strictly in order (one in flight at a time) and ``on_written(token)`` runs only
after a batch is fully written: that is where the caller acknowledges its offsets. The same
class runs in the Faust worker and in the benchmark's bare aiokafka loop, so the two
measure the same work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from cdrstream.worker.batch import BatchHandler, DecidedBatch
from cdrstream.worker.incoming import Incoming

Token = TypeVar("Token")


class OverlappedBatches(Generic[Token]):
    def __init__(self, handler: BatchHandler, on_written: Callable[[Token], object]) -> None:
        self._handler = handler
        self._on_written = on_written
        self._writing: asyncio.Future[None] | None = None
        self._writing_token: Token | None = None

    async def feed(self, messages: Sequence[Incoming], token: Token) -> None:
        """Decide ``messages``, wait for the previous write, start this one; returns while
        it is being written."""
        decided = await self._handler.decide(messages)
        await self.flush()
        self._writing_token = token
        self._writing = asyncio.ensure_future(self._store(decided, token))

    async def _store(self, decided: DecidedBatch, token: Token) -> None:
        await self._handler.store(decided)
        self._on_written(token)

    async def flush(self) -> None:
        """Wait for the write in flight, if any."""
        if self._writing is not None:
            await asyncio.shield(self._writing)
            self._writing = None
            self._writing_token = None

    def in_flight(self) -> tuple[asyncio.Future[None], Token] | None:
        """The write in progress and its token, or None."""
        if self._writing is None or self._writing.done() or self._writing_token is None:
            return None
        return self._writing, self._writing_token
