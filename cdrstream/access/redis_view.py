"""What an API replica holds of the access data in Redis: the tokens (and the shared
cursor secret), kept current by polling a version key, so deciding a request costs no
Redis round trip.

**Invalidation signal: a version key, polled.** Every change (issue, revoke, import,
cursor secret rotation) increments ``access:{cdrstream}:version`` in the script that makes
it. Each replica GETs that key every :data:`POLL_S` and reloads everything when it moved.
Chosen over pub/sub and keyspace notifications because a poll cannot miss a change: a
message published while a replica is reconnecting is lost, keyspace notifications need
``notify-keyspace-events`` configured on every node and arrive per node on Cluster; the
poll works unchanged on a single Redis and on Cluster, and costs one GET per replica per
``POLL_S`` whatever the request rate. A change is therefore seen within ``POLL_S`` plus
one reload.

**Never an open door.** The copy is trusted for :data:`STALE_AFTER_S` after the poll that
last confirmed it (timed from before that poll was sent). Past that (Redis unreachable),
``current`` raises ``AccessUnavailable``: a 503, never an answer from a copy that may miss
a revocation. Before a tenant route decides, ``ensure_fresh`` polls at once if the copy is
older than :data:`REFRESH_AFTER_S` (the poller was held up, say by a busy event loop), so
a slow loop costs a round trip, not a 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisClusterException, RedisError

from cdrstream.access.access_store import AccessData, AccessUnavailable
from cdrstream.access.cursor_keys import SharedCursorKeys, load_cursor_secrets
from cdrstream.access.redis_access import VERSION, load_tokens

log = logging.getLogger(__name__)

POLL_S = 0.25
REFRESH_AFTER_S = 0.5
STALE_AFTER_S = 1.0
_FAILURES = (RedisError, RedisClusterException, OSError, TimeoutError)


class RedisAccessView:
    """The access data of one API process (``access_store.TokenSource``), and the shared
    cursor keys when given. ``tokens=False``: the tokens come from an access file, only
    the cursor keys are kept here."""

    def __init__(
        self,
        redis: Any,
        *,
        tokens: bool = True,
        cursor_keys: SharedCursorKeys | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self._tokens = tokens
        self._cursor_keys = cursor_keys
        self._clock = clock
        self._data = AccessData()
        self._version: bytes | None = None
        self._confirmed_at: float | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def _age(self) -> float:
        return float("inf") if self._confirmed_at is None else self._clock() - self._confirmed_at

    def current(self) -> AccessData:
        if self._age() > STALE_AFTER_S:
            raise AccessUnavailable("access data not confirmed by Redis recently enough")
        return self._data

    async def ensure_fresh(self) -> None:
        if self._age() > REFRESH_AFTER_S:
            await self.refresh(if_older_than_s=REFRESH_AFTER_S)

    async def refresh(self, if_older_than_s: float = 0.0) -> None:
        """Poll the version key; reload when it moved (or nothing is loaded yet)."""
        async with self._lock:  # one poll at a time; a waiter finds it done
            if self._age() <= if_older_than_s:
                return
            sent_at = self._clock()
            version = await self._redis.get(VERSION)
            if self._confirmed_at is None or version != self._version:
                data = await load_tokens(self._redis) if self._tokens else AccessData()
                if self._cursor_keys is not None:
                    self._cursor_keys.update(await load_cursor_secrets(self._redis))
                self._data, self._version = data, version
                log.info("access data loaded from redis: %d tokens", len(data.tokens))
            self._confirmed_at = sent_at

    async def _poll(self) -> None:
        failing = False
        while not self._stopping:
            try:
                await self.refresh()
                if failing:
                    log.info("access data: redis reachable again")
                failing = False
            except _FAILURES as exc:
                if not failing:  # once per outage, not every POLL_S
                    log.warning("access data: redis unreachable: %s: %s", type(exc).__name__, exc)
                failing = True
            await asyncio.sleep(POLL_S)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._poll())

    async def stop(self) -> None:
        """End the poll loop. redis-py can swallow a cancel that lands inside a command (see
        `cdrstream.api.live`), so the loop also stops on a flag: it ends within one poll even
        then, and a shutdown never waits on it forever."""
        if self._task is not None:
            self._stopping = True
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
