"""What a CSV export may cost the API: memory, time waiting for a client, concurrency.

A client that opens an export and never reads must not hold memory without bound (twenty
such clients once took the API from 116 to 209 MB, sixty to 343 MB, about 4.7 MB each:
a chunk of 2,000 records, its formatted text, its encoded bytes and a copy in the
transport buffer):

- **Memory**: records are read from Redis :data:`CHUNK_ROWS` at a time, and formatted
  and written :data:`PIECE_ROWS` at a time (about 80 KiB of CSV); every write waits
  until the connection's write buffer is below :data:`WRITE_BUFFER_HIGH`. One stalled
  export then holds one chunk of records and a piece or two: under 1 MB (sixty stalled
  exports took a fresh process from 54 to 112 MB; before, from 54 to 323 MB). Smaller
  chunks cost throughput (200 rows: -25 %); 500 rows stream as fast as 2,000 (~100,000
  rows/s from one process here).
- **Time**: a write that cannot be handed to the socket within ``write_timeout_s``
  (the client read nothing for that long) ends the export: the connection is closed and
  logged at INFO, like a client that went away. A slow reader is fine; one that stalls
  is not waited for.
- **Concurrency**: a partner may run ``per_partner`` exports at once per API process;
  one more answers 429 with ``Retry-After``.

``write_timeout_s`` and ``per_partner`` are options of `cdrstream api`
(``--csv-write-timeout``, ``--csv-exports-per-partner``); the defaults are here.

**Streamed answers** (CSV exports and live streams) share two more rules:

- **Revocation reaches them** (:class:`AccessWatch`): the token is checked again, through
  the same decision the request was authorized by, before every write and every
  :data:`ACCESS_CHECK_S` while the answer streams (a write may wait for a slow client).
  Once it no longer may read the tenant, the connection is aborted (what is still in its
  write buffer is dropped) and nothing more is written. The access store notices a
  revocation within a second (``AccessCache``), so a stream ends within ~1.5 s of it.
- **A client that goes away** is told to the answer at once by :func:`when_gone`
  callbacks, which the server of `cdrstream api` runs when it loses a connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp import web

#: Records read from Redis per round trip of an export.
CHUNK_ROWS = 500
#: Rows formatted and written at a time (~330 bytes a row: ~80 KiB).
PIECE_ROWS = 250
#: High-water mark of an export connection's transport write buffer, bytes.
WRITE_BUFFER_HIGH = 64 * 1024
DEFAULT_WRITE_TIMEOUT_S = 30.0
DEFAULT_EXPORTS_PER_PARTNER = 8
#: Retry-After of a 429, seconds.
RETRY_AFTER_S = 5
#: How often a streamed answer checks that its token may still read the tenant, seconds.
ACCESS_CHECK_S = 0.5
#: Request key of the callbacks to run when the client's connection is lost.
ON_GONE = "cdrstream.on_gone"


@dataclass(frozen=True, slots=True)
class ExportLimits:
    write_timeout_s: float = DEFAULT_WRITE_TIMEOUT_S
    per_partner: int = DEFAULT_EXPORTS_PER_PARTNER

    def __post_init__(self) -> None:
        if not self.write_timeout_s > 0:
            raise ValueError("the CSV write timeout must be positive")
        if self.per_partner < 1:
            raise ValueError("at least one CSV export per partner")


class ExportSlots:
    """Exports in progress per partner (one process; each replica counts its own)."""

    def __init__(self, per_partner: int) -> None:
        self.per_partner = per_partner
        self._running: Counter[str] = Counter()

    def try_acquire(self, partner: str) -> bool:
        if self._running[partner] >= self.per_partner:
            return False
        self._running[partner] += 1
        return True

    def release(self, partner: str) -> None:
        self._running[partner] -= 1
        if self._running[partner] <= 0:
            del self._running[partner]


def when_gone(request: web.BaseRequest, callback: Callable[[], None]) -> None:
    """Run ``callback`` when the connection of ``request`` is lost (by the server of
    `cdrstream api`; an application mounted elsewhere polls ``request.transport``)."""
    request.setdefault(ON_GONE, []).append(callback)


def client_gone(request: web.BaseRequest) -> None:
    """The connection of ``request`` was lost: run its :func:`when_gone` callbacks."""
    for callback in request.pop(ON_GONE, ()):
        callback()


class AccessWatch:
    """Whether a streamed answer's token may still read the tenant (module docstring)."""

    def __init__(self, request: web.BaseRequest, still_allowed: Callable[[], bool]) -> None:
        self._request = request
        self._still_allowed = still_allowed
        self.revoked = False

    def allowed(self) -> bool:
        """False once the token may no longer read the tenant; the connection is then
        aborted, so nothing more reaches the client."""
        if not self.revoked and not self._still_allowed():
            self.revoked = True
            if self._request.transport is not None:
                self._request.transport.abort()
        return not self.revoked

    async def _watch(self) -> None:
        # Polled: the access store has no change signal.
        while self.allowed():  # noqa: ASYNC110
            await asyncio.sleep(ACCESS_CHECK_S)


@contextlib.asynccontextmanager
async def watching_access(
    request: web.BaseRequest, still_allowed: Callable[[], bool]
) -> AsyncIterator[AccessWatch]:
    """An :class:`AccessWatch` of the request, checked every :data:`ACCESS_CHECK_S` while
    the block runs."""
    watch = AccessWatch(request, still_allowed)
    task = asyncio.create_task(watch._watch())
    try:
        yield watch
    finally:
        task.cancel()
