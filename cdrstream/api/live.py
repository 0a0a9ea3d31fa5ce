"""The live tail: ``GET /v1/tenants/{tenant_id}/cdrs/live`` as server-sent events.

Each tenant's records are announced on a Redis Stream by the write script that stores them
(``store/live.py``); this module turns that stream into ``text/event-stream`` answers.

**One reader per tenant, not per client** (:class:`LiveHub`): the first live client of a
tenant starts a *feed*, one task that waits on the tenant's stream (``XREAD BLOCK``) and
reads each batch's records once (one ``HMGET``), then hands the batch to every client of
that tenant; the last client to leave stops it. A feed is stopped by a flag it checks
after every Redis call, not only by cancelling its task: redis-py (8.2, Python 3.11)
sometimes swallows the cancellation of a task waiting in a command (a quarter of the
cancels that land in a feed's first few milliseconds, measured; the command then runs to
its end and returns), and a
cancelled feed went on reading for ever, unseen by the gauges (20 open/close cycles left
~11 readers blocked in Redis). So a feed ends at most one ``XREAD`` block
(:data:`BLOCK_MS`) after its last client left, and ``cdrstream_api_live_feeds`` counts the
feed tasks actually running, not the feeds registered. So an API process holds one blocking
Redis connection per tenant being watched, however many people watch it, and a record is
read from Redis once however many clients show it; the other commands (catching up,
``XINFO``) are short and share the pool.

**A client** (:meth:`LiveTail.serve`):

1. is authorized like the list (401/403 before anything else), its ``direction``,
   ``extension`` and ``number`` filters are checked like the list's (400), and it takes
   one of its partner's live slots (429 beyond :attr:`LiveLimits.per_partner`);
2. registers with the tenant's feed, then: with ``Last-Event-ID``, is replayed every entry
   after it if the stream still holds them all (``core.sse.resume_plan``), else gets a
   ``reload`` event; without it, starts at the stream's end;
3. gets a ``ready`` event (caught up; live from here), then one ``record`` event per
   record stored or replaced that matches its filters, the record as its token may see it
   (``RecordView``: masked numbers for a masked token), newest as they come; every event
   has an ``id:`` (the stream entry's id);
4. every :attr:`LiveLimits.heartbeat_s` a heartbeat comment carrying the stream position
   as ``id:`` (so a reconnect resumes from there, even when the filters matched nothing);
5. its token is checked again before every write and every :data:`exports.ACCESS_CHECK_S`
   (``exports.AccessWatch``): a revoked token's stream ends within ~1.5 s of the revocation
   reaching the access store, and nothing is written after it is seen.

A client that goes away is noticed at once under ``cdrstream api`` (its server calls
``exports.when_gone`` callbacks when a connection is lost), else within
:data:`GONE_CHECK_S`.

**Bounded**: a client's queue holds at most :attr:`LiveLimits.queue_entries` entries (the
feed's batches, shared by all its clients); one that falls further behind drops its queue
and catches up from Redis itself (and is told to reload if it fell more than the stream
holds behind). Every write waits for the connection's buffer to drain below 64 KiB: a
client that reads nothing for :attr:`LiveLimits.write_timeout_s` is disconnected; and a
stream ends after :attr:`LiveLimits.max_lifetime_s` (the client reconnects with its
``Last-Event-ID`` and misses nothing), so an idle connection is not held forever. The
process's memory therefore depends on the number of clients, never on the number of
records announced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import Gauge
from redis.exceptions import RedisClusterException, RedisError

from cdrstream.api.exports import (
    WRITE_BUFFER_HIGH,
    AccessWatch,
    ExportSlots,
    watching_access,
    when_gone,
)
from cdrstream.core.record import CallRecord
from cdrstream.core.record_view import RecordView
from cdrstream.core.sse import (
    LiveFilter,
    StreamId,
    event,
    format_id,
    heartbeat,
    parse_id,
    resume_plan,
    retry,
)
from cdrstream.store import live as store_live

log = logging.getLogger(__name__)

DEFAULT_LIVE_PER_PARTNER = 8
DEFAULT_HEARTBEAT_S = 15.0
DEFAULT_LIVE_WRITE_TIMEOUT_S = 30.0
DEFAULT_MAX_LIFETIME_S = 3600.0
#: How long one XREAD waits (below the Redis client's 5 s socket timeout); also the longest
#: a stopped feed may go on waiting in Redis (see the module docstring).
BLOCK_MS = 800
#: Entries read per XREAD or XRANGE.
READ_COUNT = 500
#: How often a stream without events checks that its client is still connected, seconds.
GONE_CHECK_S = 1.0
#: What a client is told to wait before reconnecting, ms.
RETRY_MS = 2_000
#: Pause of a feed after a Redis error, growing to the maximum.
FEED_BACKOFF_S = (0.2, 5.0)
#: How long closing the hub (shutdown) waits for its feeds to end.
CLOSE_WAIT_S = 2.0

LIVE_STREAMS = Gauge("cdrstream_api_live_streams", "Live streams (server-sent events) open.")
LIVE_FEEDS = Gauge(
    "cdrstream_api_live_feeds",
    "Reader tasks running (one per tenant with live clients, while it stops perhaps two).",
)

#: What a failing Redis raises (as ``routes.STORAGE_ERRORS``).
_STORAGE_ERRORS: tuple[type[Exception], ...] = (RedisError, RedisClusterException, OSError)

Entry = tuple[StreamId, CallRecord | None]
Fetch = Callable[[str, list[str]], Awaitable[list[CallRecord | None]]]


@dataclass(frozen=True, slots=True)
class LiveLimits:
    per_partner: int = DEFAULT_LIVE_PER_PARTNER
    heartbeat_s: float = DEFAULT_HEARTBEAT_S
    write_timeout_s: float = DEFAULT_LIVE_WRITE_TIMEOUT_S
    max_lifetime_s: float = DEFAULT_MAX_LIFETIME_S
    queue_entries: int = 2_000

    def __post_init__(self) -> None:
        if self.per_partner < 1:
            raise ValueError("at least one live stream per partner")
        if not (self.heartbeat_s > 0 and self.write_timeout_s > 0 and self.max_lifetime_s > 0):
            raise ValueError("live stream times must be positive")
        if self.queue_entries < 1:
            raise ValueError("a live client's queue must hold at least one entry")


class _Subscriber:
    """One client's queue of the feed's batches (bounded; see the module docstring)."""

    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._batches: deque[list[Entry]] = deque()
        self._size = 0
        self.overflowed = False
        self.wake = asyncio.Event()

    def offer(self, batch: list[Entry]) -> None:
        if self._size + len(batch) > self._max:
            # Too far behind: forget the queue; the client catches up from Redis.
            self._batches.clear()
            self._size = 0
            self.overflowed = True
        else:
            self._batches.append(batch)
            self._size += len(batch)
        self.wake.set()

    def take(self) -> list[list[Entry]]:
        batches = list(self._batches)
        self._batches.clear()
        self._size = 0
        self.wake.clear()
        return batches

    def reset(self) -> None:
        self.take()
        self.overflowed = False


@dataclass
class _Feed:
    tenant_id: str
    subscribers: set[_Subscriber] = field(default_factory=set)
    task: asyncio.Task[None] | None = None
    stopped: bool = False

    def stop(self) -> None:
        self.stopped = True
        if self.task is not None:
            self.task.cancel()


class LiveHub:
    """The feeds of one API process, one per tenant with live clients."""

    def __init__(self, redis: Any, fetch: Fetch) -> None:
        self._redis = redis
        self._fetch = fetch
        self._feeds: dict[str, _Feed] = {}
        self._stopping: set[asyncio.Task[None]] = set()  # cancelled, not yet finished
        self.closing = asyncio.Event()

    def subscribe(self, tenant_id: str, max_entries: int) -> _Subscriber:
        feed = self._feeds.get(tenant_id)
        if feed is None:
            feed = self._feeds[tenant_id] = _Feed(tenant_id)
            feed.task = asyncio.create_task(self._run(feed), name=f"live-feed-{tenant_id}")
        subscriber = _Subscriber(max_entries)
        feed.subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, tenant_id: str, subscriber: _Subscriber) -> None:
        feed = self._feeds.get(tenant_id)
        if feed is None:
            return
        feed.subscribers.discard(subscriber)
        if not feed.subscribers:
            del self._feeds[tenant_id]
            feed.stop()
            if feed.task is not None:
                self._stopping.add(feed.task)
                feed.task.add_done_callback(self._stopping.discard)

    @property
    def feeds(self) -> int:
        return len(self._feeds)

    async def close(self) -> None:
        """Stop every feed; clients see ``closing`` and end their streams."""
        self.closing.set()
        tasks = [f.task for f in self._feeds.values() if f.task is not None]
        tasks += self._stopping
        for feed in self._feeds.values():
            for subscriber in feed.subscribers:
                subscriber.wake.set()
            feed.stop()
        if tasks:
            await asyncio.wait(tasks, timeout=CLOSE_WAIT_S)
        self._feeds.clear()

    async def _run(self, feed: _Feed) -> None:
        LIVE_FEEDS.inc()
        try:
            await self._read(feed)
        finally:
            LIVE_FEEDS.dec()

    async def _read(self, feed: _Feed) -> None:
        tenant = feed.tenant_id
        position: StreamId | None = None
        pause = FEED_BACKOFF_S[0]
        while not feed.stopped:
            try:
                if position is None:
                    position = (await store_live.stream_state(self._redis, tenant)).last
                    continue  # stopped meanwhile?
                entries = await store_live.wait_after(
                    self._redis, tenant, position, READ_COUNT, BLOCK_MS
                )
                if not entries or feed.stopped:
                    continue
                position = entries[-1][0]
                try:
                    records = await self._fetch(tenant, [rid for _, rid in entries])
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    # The entries were read but not their records: every client catches
                    # up from Redis by itself.
                    log.warning(
                        "live feed: reading records failed: %s",
                        type(exc).__name__,
                        extra={"tenant_id": tenant},
                    )
                    for subscriber in feed.subscribers:
                        subscriber.overflowed = True
                        subscriber.wake.set()
                    continue
                batch = [(sid, r) for (sid, _), r in zip(entries, records, strict=True)]
                for subscriber in feed.subscribers:
                    subscriber.offer(batch)
                pause = FEED_BACKOFF_S[0]
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if feed.stopped:
                    return
                log.warning(
                    "live feed: redis failed: %s; again in %.1f s",
                    type(exc).__name__,
                    pause,
                    extra={"tenant_id": tenant},
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, FEED_BACKOFF_S[1])


class _ClientGone(Exception):
    """The client closed the connection, read nothing for the write timeout, or its token
    may no longer read the tenant."""


class LiveTail:
    """Serves live streams (one ``serve`` per client) from a :class:`LiveHub`."""

    def __init__(self, hub: LiveHub, redis: Any, fetch: Fetch, limits: LiveLimits) -> None:
        self.hub = hub
        self._redis = redis
        self._fetch = fetch
        self.limits = limits
        self.slots = ExportSlots(limits.per_partner)

    async def serve(
        self,
        request: web.Request,
        *,
        tenant_id: str,
        view: RecordView,
        live_filter: LiveFilter,
        still_allowed: Callable[[], bool],
    ) -> web.StreamResponse:
        """The stream of one client (authorized, filters checked, slot taken by the caller)."""
        response = web.StreamResponse(
            status=200,
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",  # a proxy in front must not buffer the stream
            },
        )
        subscriber = self.hub.subscribe(tenant_id, self.limits.queue_entries)
        when_gone(request, subscriber.wake.set)  # a client that leaves is noticed at once
        extra = {"tenant_id": tenant_id}
        try:
            async with watching_access(request, still_allowed) as access:
                stream = _Stream(self, request, response, tenant_id, view, live_filter, access)
                with contextlib.suppress(_ClientGone):
                    await stream.run(subscriber, request.headers.get("Last-Event-ID"))
                if access.revoked:
                    log.info("live stream ended: token no longer allowed", extra=extra)
        except _STORAGE_ERRORS as exc:
            if not response.prepared:
                raise  # answered 503 by the problem middleware
            # Too late for a status: end the stream; the client reconnects and resumes.
            log.warning("live stream ended: redis failed: %s", type(exc).__name__, extra=extra)
        finally:
            self.hub.unsubscribe(tenant_id, subscriber)
        return response


class _Stream:
    """One client's stream: position, filters, writes."""

    def __init__(
        self,
        tail: LiveTail,
        request: web.Request,
        response: web.StreamResponse,
        tenant_id: str,
        view: RecordView,
        live_filter: LiveFilter,
        access: AccessWatch,
    ) -> None:
        self._tail = tail
        self._access = access
        self._request = request
        self._response = response
        self._tenant = tenant_id
        self._view = view
        self._filter = live_filter
        self.position: StreamId = (0, 0)
        self.sent = 0

    async def run(self, subscriber: _Subscriber, last_event_id: str | None) -> None:
        limits = self._tail.limits
        redis = self._tail._redis
        # The stream state is read after registering with the feed: nothing the feed reads
        # from now on is missed, and what it hands over twice is skipped by position.
        state = await store_live.stream_state(redis, self._tenant)
        if self._request.transport is not None:
            self._request.transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH)
        await self._write(self._response.prepare(self._request))
        await self._write(self._response.write(retry(RETRY_MS)))
        resumed = False
        if last_event_id is not None:
            seen = parse_id(last_event_id)
            if seen is not None and resume_plan(seen, state) == "replay":
                self.position = seen
                resumed = True
                await self._catch_up()
            else:
                await self._reload(state.last)
        else:
            self.position = state.last
        await self._send(
            event(
                orjson.dumps({"resumed": resumed}).decode(),
                name="ready",
                event_id=format_id(self.position),
            )
        )
        loop = asyncio.get_running_loop()
        ends_at = loop.time() + limits.max_lifetime_s
        next_beat = loop.time() + limits.heartbeat_s
        hub = self._tail.hub
        while not hub.closing.is_set():
            now = loop.time()
            if now >= ends_at:
                return  # the client reconnects with its Last-Event-ID
            if now >= next_beat:
                await self._send(heartbeat(format_id(self.position)))
                next_beat = now + limits.heartbeat_s
            transport = self._request.transport
            if transport is None or transport.is_closing():
                return  # the client went away (noticed within a second, not at a write)
            with contextlib.suppress(TimeoutError):
                wake_at = min(next_beat, ends_at, now + GONE_CHECK_S)
                async with asyncio.timeout(max(0.0, wake_at - now)):
                    await subscriber.wake.wait()
            if subscriber.overflowed:
                subscriber.reset()
                await self._catch_up()
                continue
            for batch in subscriber.take():
                await self._emit(batch)

    def extra(self) -> dict[str, str]:
        return {"tenant_id": self._tenant}

    async def _catch_up(self) -> None:
        """Every entry after the position, read from Redis (a replay, or a client that fell
        behind its queue), or a ``reload`` when the stream no longer holds them all."""
        redis = self._tail._redis
        state = await store_live.stream_state(redis, self._tenant)
        if resume_plan(self.position, state) == "reload":
            await self._reload(state.last)
            return
        while True:
            entries = await store_live.read_after(redis, self._tenant, self.position, READ_COUNT)
            if not entries:
                return
            records = await self._tail._fetch(self._tenant, [rid for _, rid in entries])
            await self._emit([(sid, r) for (sid, _), r in zip(entries, records, strict=True)])
            if len(entries) < READ_COUNT:
                return

    async def _reload(self, last: StreamId) -> None:
        self.position = last
        data = orjson.dumps({"reason": "events missed; reload the list"}).decode()
        await self._send(event(data, name="reload", event_id=format_id(last)))

    async def _emit(self, batch: list[Entry]) -> None:
        frames: list[bytes] = []
        for sid, record in batch:
            if sid <= self.position:
                continue
            self.position = sid
            if record is None or not self._filter.matches(record):
                continue
            data = orjson.dumps(self._view.to_dict(record)).decode()
            frames.append(event(data, name="record", event_id=format_id(sid)))
        if frames:
            self.sent += len(frames)
            await self._send(b"".join(frames))

    async def _send(self, data: bytes) -> None:
        if not self._access.allowed():  # revoked: nothing more is written
            raise _ClientGone
        await self._write(self._response.write(data))

    async def _write(self, write: Awaitable[Any]) -> None:
        try:
            async with asyncio.timeout(self._tail.limits.write_timeout_s):
                await write
        except TimeoutError as exc:
            log.info(
                "live stream: client read nothing for %.0f s; connection closed",
                self._tail.limits.write_timeout_s,
                extra=self.extra(),
            )
            if self._request.transport is not None:
                self._request.transport.abort()
            raise _ClientGone from exc
        except ConnectionError as exc:
            raise _ClientGone from exc
