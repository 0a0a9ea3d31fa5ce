"""The write script's live announcements and daily summaries, on a real Redis and on a real
3-master Redis Cluster: a record is announced exactly when it is stored or replaced, and
the summary equals the aggregate of the stored records after any sequence of new records,
replacements (also of sealed records), duplicates, replays and records leaving the window.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cdrstream.core.clock import DAY_MS, HOUR_MS, now_ms
from cdrstream.core.record import CallRecord, record_id
from cdrstream.core.sse import StreamState
from cdrstream.core.summary import aggregate, first_day, local_day
from cdrstream.settings import Settings, load_settings
from cdrstream.stack.redis_server import RedisNode
from cdrstream.store.connection import connect
from cdrstream.store.live import fetch_records, live_key, read_after, stream_state, wait_after
from cdrstream.store.reader import RecordQuery, RecordReader
from cdrstream.store.sealer import seal_tenant
from cdrstream.store.summary import read_summary, summary_key, sweep_summaries
from cdrstream.store.writer import RecordWriter

pytestmark = pytest.mark.integration

RETENTION_MS = 30 * DAY_MS
AMSTERDAM = ZoneInfo("Europe/Amsterdam")


def tenant() -> str:
    return f"ls-{uuid.uuid4().hex[:10]}"


def make(tenant_id: str, n: int, started: int, rng: random.Random | None = None) -> CallRecord:
    rng = rng or random.Random(n)
    answered = rng.random() < 0.7
    duration = rng.randrange(1, 900) if answered else 0
    inbound = rng.random() < 0.5
    return CallRecord(
        id=record_id(tenant_id, f"call-{n}"),
        tenant_id=tenant_id,
        call_id=f"call-{n}",
        started_at_ms=started,
        answered_at_ms=started + 3_000 if answered else None,
        ended_at_ms=started + 3_000 + duration * 1000,
        duration=duration,
        source="+31201234567" if inbound else "+31851234567",
        source_raw="020 123 4567",
        destination="+31851234567" if inbound else f"+316{n:08d}",
        destination_raw="085 123 4567",
        extension=rng.choice(["201", "202", "0"]),
        direction="inbound" if inbound else "outbound",
        disposition=rng.choice(["answered", "no_answer", "busy", "weird", None])
        if not answered
        else "answered",
    )


@pytest.fixture(params=["single", "cluster"])
async def redis(
    request: pytest.FixtureRequest, redis_node: RedisNode
) -> AsyncIterator[tuple[Any, Settings]]:
    url = redis_node.url
    cluster = request.param == "cluster"
    if cluster:
        url = request.getfixturevalue("redis_cluster_url")
    settings = replace(load_settings({}), redis_url=url, redis_cluster=cluster)
    client = connect(settings)
    try:
        yield client, settings
    finally:
        await client.aclose()


async def stored(client: Any, tenant_id: str, now: int) -> list[CallRecord]:
    reader = RecordReader(client, retention_ms=RETENTION_MS, cursor_secret=b"s")
    out: list[CallRecord] = []
    async for chunk in reader.stream(tenant_id, RecordQuery(), now_ms=now):
        out.extend(chunk)
    return out


async def assert_summary_exact(client: Any, tenant_id: str, now: int) -> dict[str, int]:
    floor = first_day(now, RETENTION_MS, AMSTERDAM)
    want = aggregate(await stored(client, tenant_id, now), AMSTERDAM, floor)
    got = await read_summary(client, tenant_id)
    assert got == want
    return got


async def announced(client: Any, tenant_id: str) -> list[str]:
    return [rid for _, rid in await read_after(client, tenant_id, (0, 0), 100_000)]


async def test_a_record_is_announced_when_stored_or_replaced_never_when_a_duplicate(
    redis: tuple[Any, Settings],
) -> None:
    client, _ = redis
    t = tenant()
    writer = RecordWriter(client, retention_ms=RETENTION_MS)
    now = now_ms()
    first = [make(t, n, now - n * 60_000) for n in range(5)]
    assert await writer.write_batch(first, now) == ["stored"] * 5
    assert await announced(client, t) == [r.id for r in first]
    # A replay: nothing new is stored, so nothing is announced.
    assert await writer.write_batch(first, now) == ["duplicate"] * 5
    assert await announced(client, t) == [r.id for r in first]
    # A replacement is announced again; a record out of the window is not stored, and the
    # removal of a stored version (it left the window by an update) is not announced.
    changed = replace(first[1], duration=first[1].duration + 7)
    gone = replace(first[2], started_at_ms=now - RETENTION_MS - HOUR_MS)
    expired = make(t, 99, now - RETENTION_MS - HOUR_MS)
    assert await writer.write_batch([changed, gone, expired], now) == ["stored"] + ["duplicate"] * 2
    assert await announced(client, t) == [r.id for r in first] + [changed.id]
    state = await stream_state(client, t)
    assert state.exists and state.max_deleted == (0, 0)
    assert 0 < await client.pttl(live_key(t)) <= RETENTION_MS + DAY_MS
    await assert_summary_exact(client, t, now)


async def test_summaries_stay_exact_through_replacements_replays_and_seals(
    redis: tuple[Any, Settings],
) -> None:
    client, settings = redis
    t = tenant()
    rng = random.Random(11 if settings.redis_cluster else 7)
    writer = RecordWriter(client, retention_ms=RETENTION_MS)
    now = now_ms()
    versions: dict[int, CallRecord] = {}
    rounds = 6 if settings.redis_cluster else 12
    for round_ in range(rounds):
        batch = []
        for _ in range(rng.randrange(20, 120)):
            n = rng.randrange(150)
            if n in versions and rng.random() < 0.4:
                batch.append(versions[n])  # a replay of the current version
                continue
            # Days back 0..33: some fall before the first whole day, some out of the window.
            started = now - rng.randrange(0, 33 * DAY_MS)
            version = make(t, n, started, rng)
            batch.append(version)
            versions[n] = version
        await writer.write_batch(batch, now)
        if round_ % 3 == 1:  # some records move to sealed day segments
            await seal_tenant(client, t, now_ms=now, retention_ms=RETENTION_MS, everything=True)
        await writer.write_batch(batch[: len(batch) // 2], now)  # redelivery
        fields = await assert_summary_exact(client, t, now)
    assert sum(v for k, v in fields.items() if k.endswith(":c")) > 50


async def test_the_sweep_drops_days_that_left_the_window(redis: tuple[Any, Settings]) -> None:
    client, _ = redis
    t = tenant()
    writer = RecordWriter(client, retention_ms=RETENTION_MS)
    now = now_ms()
    records = [make(t, n, now - (40 + n) * DAY_MS // 2) for n in range(19)]  # 20-29 days
    await writer.write_batch(records, now)
    later = now + 5 * DAY_MS  # five days on: the oldest days left the window
    floor = first_day(later, RETENTION_MS, AMSTERDAM)
    assert await sweep_summaries(client, [t], floor) > 0
    fields = await read_summary(client, t)
    assert fields and min(int(k.split(":")[0]) for k in fields) >= floor
    assert fields == {
        k: v for k, v in aggregate(records, AMSTERDAM).items() if int(k.split(":")[0]) >= floor
    }
    assert int(await client.hget(summary_key(t), "floor")) == floor
    # A write that still thinks an older day is in the window adds nothing to it.
    old = make(t, 500, now - 29 * DAY_MS)
    assert local_day(old.started_at_ms, AMSTERDAM) < floor
    await writer.write_batch([old], now)
    assert await read_summary(client, t) == fields
    assert await sweep_summaries(client, [tenant()], floor) == 0  # no summary: nothing made


async def test_the_api_reads_the_stream_the_same_way_on_a_cluster(
    redis: tuple[Any, Settings],
) -> None:
    """The API's stream reads (XINFO, XRANGE, XREAD BLOCK) on the tenant's key, any node."""
    client, _ = redis
    t = tenant()
    assert await stream_state(client, t) == StreamState(exists=False)
    assert await wait_after(client, t, (0, 0), 10, 50) == []
    writer = RecordWriter(client, retention_ms=RETENTION_MS)
    now = now_ms()
    records = [make(t, n, now - n * 1000) for n in range(3)]
    await writer.write_batch(records, now)
    state = await stream_state(client, t)
    entries = await wait_after(client, t, (0, 0), 10, 50)
    assert [rid for _, rid in entries] == [r.id for r in records]
    assert state.last == entries[-1][0] and state.first == entries[0][0] and not state.trimmed
    assert await wait_after(client, t, state.last, 10, 50) == []
    reader = RecordReader(client, retention_ms=RETENTION_MS, cursor_secret=b"s")
    assert await fetch_records(client, reader, t, [r.id for r in records] + ["nope"]) == [
        *records,
        None,
    ]
