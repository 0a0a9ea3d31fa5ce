"""The live tail's bounds, without Redis: a client's queue never holds more than its limit
however many records are announced, one feed serves every client of a tenant, and a
client that reads nothing is disconnected."""

from __future__ import annotations

import asyncio
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cdrstream.api import live
from cdrstream.api.exports import AccessWatch
from cdrstream.core.record import CallRecord
from cdrstream.core.record_view import RecordView
from cdrstream.core.sse import LiveFilter, StreamId, StreamState


def record(n: int) -> CallRecord:
    return CallRecord(f"id-{n}", "t", f"c-{n}", n, None, n, 0, "+31201234567", "x",
                      "+31612345678", "y", "201", "inbound", None)  # fmt: skip


def test_a_clients_queue_is_bounded_and_overflow_means_catch_up() -> None:
    async def run() -> None:
        sub = live._Subscriber(max_entries=100)
        batch = [((n, 0), record(n)) for n in range(40)]
        sub.offer(batch)
        sub.offer(batch)
        assert not sub.overflowed and sub._size == 80
        sub.offer(batch)  # 120 > 100: the queue is dropped, the client catches up
        assert sub.overflowed and sub._size == 0 and sub.wake.is_set()
        sub.reset()
        assert not sub.overflowed and sub.take() == []

    asyncio.run(run())


def test_one_feed_per_tenant_and_memory_independent_of_records_announced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    announced = 0
    reads = 0

    async def state(redis: Any, tenant: str) -> StreamState:
        return StreamState(exists=True)

    async def wait_after(
        redis: Any, tenant: str, after: StreamId, count: int, block_ms: int
    ) -> list[tuple[StreamId, str]]:
        nonlocal announced, reads
        reads += 1
        await asyncio.sleep(0)
        start = after[0] + 1
        announced += count
        return [((start + i, 0), f"id-{start + i}") for i in range(count)]

    monkeypatch.setattr(live.store_live, "stream_state", state)
    monkeypatch.setattr(live.store_live, "wait_after", wait_after)

    async def fetch(tenant: str, ids: list[str]) -> list[CallRecord | None]:
        return [record(int(i.split("-")[1])) for i in ids]

    async def run() -> None:
        hub = live.LiveHub(object(), fetch)
        slow = hub.subscribe("t", max_entries=1_000)  # never reads
        other = hub.subscribe("t", max_entries=1_000)
        assert hub.feeds == 1
        while announced < 200_000:
            await asyncio.sleep(0)
            assert slow._size <= 1_000 and other._size <= 1_000
            other.take()
        assert slow.overflowed
        hub.unsubscribe("t", slow)
        hub.unsubscribe("t", other)
        assert hub.feeds == 0
        await hub.close()

    asyncio.run(run())
    assert reads >= 200_000 // live.READ_COUNT


class _Transport:
    aborted = False

    def is_closing(self) -> bool:
        return False

    def set_write_buffer_limits(self, high: int) -> None:
        pass

    def abort(self) -> None:
        self.aborted = True


class _Request:
    def __init__(self) -> None:
        self.transport = _Transport()


class _StalledResponse:
    async def write(self, data: bytes) -> None:
        await asyncio.Event().wait()  # the client reads nothing: the buffer never drains


def test_a_client_that_reads_nothing_is_disconnected() -> None:
    async def run() -> None:
        async def fetch(tenant: str, ids: list[str]) -> list[CallRecord | None]:
            return []

        hub = live.LiveHub(object(), fetch)
        limits = live.LiveLimits(write_timeout_s=0.05)
        tail = live.LiveTail(hub, object(), fetch, limits)
        request = _Request()
        stream = live._Stream(
            tail,
            request,  # type: ignore[arg-type]
            _StalledResponse(),  # type: ignore[arg-type]
            "t",
            RecordView(ZoneInfo("UTC"), masked_numbers=False),
            LiveFilter(),
            AccessWatch(request, lambda: True),  # type: ignore[arg-type]
        )
        with pytest.raises(live._ClientGone):
            await stream._emit([((1, 0), record(1))])
        assert request.transport.aborted

    asyncio.run(run())


def test_events_are_filtered_positioned_and_rendered_through_the_view() -> None:
    async def run() -> None:
        sent: list[bytes] = []

        class Response:
            async def write(self, data: bytes) -> None:
                sent.append(data)

        async def fetch(tenant: str, ids: list[str]) -> list[CallRecord | None]:
            return []

        tail = live.LiveTail(live.LiveHub(object(), fetch), object(), fetch, live.LiveLimits())
        request = _Request()
        stream = live._Stream(
            tail,
            request,  # type: ignore[arg-type]
            Response(),  # type: ignore[arg-type]
            "t",
            RecordView(ZoneInfo("UTC"), masked_numbers=True),
            LiveFilter(extension="201"),
            AccessWatch(request, lambda: True),  # type: ignore[arg-type]
        )
        stream.position = (2, 0)
        await stream._emit(
            [((1, 0), record(1)), ((3, 0), None), ((4, 0), record(4)), ((2, 5), record(2))]
        )
        assert stream.position == (4, 0)
        text = b"".join(sent).decode()
        assert text.count("event: record") == 1 and "id: 4-0" in text
        assert "+31 \u2022\u2022\u2022 4567" in text and "+31201234567" not in text

    asyncio.run(run())
