"""The later version of a call wins in the store (``core/versions.py``), whatever order its
events are written in, on a real Redis and on a real 3-master cluster: an older version
changes nothing (not the record, not its summary, not the live tail), also once the record
is sealed; the same record from a later event is a duplicate that remembers the later
version; on a tie the last written wins."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdrstream.core.record import CallRecord
from cdrstream.core.versions import replaces, version_of
from cdrstream.store.live import live_key
from cdrstream.store.summary import read_summary
from cdrstream.store.writer import RecordWriter
from tests.integration.store_helpers import NOW, make_record, new_tenant, seal_all, stored_records

pytestmark = pytest.mark.integration


def versions_of_one_call(tenant: str) -> tuple[CallRecord, CallRecord]:
    """A first CDR of a call, and its correction: a later end, another disposition."""
    first = make_record(tenant, 5, disposition="no_answer", answered_at_ms=None, duration=0)
    second = replace(
        first,
        answered_at_ms=first.started_at_ms + 3_000,
        ended_at_ms=first.ended_at_ms + 30_000,
        duration=90,
        disposition="answered",
    )
    return first, second


async def the_record(redis: Any, record: CallRecord) -> CallRecord:
    return (await stored_records(redis, record.tenant_id))[record.id]


async def test_an_older_version_written_later_changes_nothing(
    redis: Any, writer: RecordWriter
) -> None:
    tenant = new_tenant()
    first, second = versions_of_one_call(tenant)
    assert await writer.write_batch([second], NOW, [NOW - 1_000]) == ["stored"]
    summary = await read_summary(redis, tenant)
    announced = await redis.xlen(live_key(tenant))

    # A rebuild replays the first CDR (an earlier end, an earlier Kafka timestamp).
    assert await writer.write_batch([first], NOW, [NOW - 60_000]) == ["duplicate"]
    # ... even with a later Kafka timestamp: the end decides first.
    assert await writer.write_batch([first], NOW, [NOW]) == ["duplicate"]

    assert await the_record(redis, second) == second
    assert await read_summary(redis, tenant) == summary
    assert await redis.xlen(live_key(tenant)) == announced


async def test_the_later_version_replaces_the_earlier(redis: Any, writer: RecordWriter) -> None:
    tenant = new_tenant()
    first, second = versions_of_one_call(tenant)
    assert await writer.write_batch([first], NOW, [NOW - 60_000]) == ["stored"]
    assert await writer.write_batch([second], NOW, [NOW - 1_000]) == ["stored"]
    assert await the_record(redis, first) == second
    assert await redis.xlen(live_key(tenant)) == 2


async def test_same_end_the_later_event_wins(redis: Any, writer: RecordWriter) -> None:
    """A re-rated CDR: the same end, another disposition, produced later."""
    tenant = new_tenant()
    first = make_record(tenant, 1, disposition="failed")
    rerated = replace(first, disposition="answered")
    assert await writer.write_batch([rerated, first], NOW, [NOW - 10, NOW - 20]) == [
        "stored",
        "duplicate",
    ]
    assert await the_record(redis, first) == rerated


async def test_a_tie_goes_to_the_last_written(redis: Any, writer: RecordWriter) -> None:
    tenant = new_tenant()
    first = make_record(tenant, 2, disposition="failed")
    other = replace(first, disposition="busy")
    assert await writer.write_batch([first], NOW, [NOW - 10]) == ["stored"]
    assert await writer.write_batch([other], NOW, [NOW - 10]) == ["stored"]
    assert await the_record(redis, first) == other
    # Without event times (every version at event time 0) the last written wins too ...
    untimed = make_record(tenant, 3, disposition="failed")
    assert await writer.write_batch([untimed, replace(untimed, disposition="busy")], NOW) == [
        "stored",
        "stored",
    ]
    assert await writer.write_batch([untimed], NOW) == ["stored"]
    assert await the_record(redis, untimed) == untimed
    # ... and a timed version is later than every untimed one.
    assert await writer.write_batch([first], NOW) == ["duplicate"]
    assert await the_record(redis, first) == other


async def test_a_resent_record_keeps_its_later_version(redis: Any, writer: RecordWriter) -> None:
    """v1 at t=1, v2 at t=2, v1 sent again at t=3 (a later event of the same content): a
    duplicate, but v2 replayed at t=2 (a rebuild) must not win over it."""
    tenant = new_tenant()
    v1 = make_record(tenant, 3, disposition="failed")
    v2 = replace(v1, disposition="busy")
    assert await writer.write_batch([v1, v2, v1], NOW, [NOW - 3, NOW - 2, NOW - 1]) == [
        "stored",
        "stored",
        "stored",
    ]
    assert await writer.write_batch([v1], NOW, [NOW]) == ["duplicate"]
    assert await writer.write_batch([v2], NOW, [NOW - 2]) == ["duplicate"]
    assert await the_record(redis, v1) == v1


async def test_an_older_version_does_not_replace_a_sealed_record(
    redis: Any, writer: RecordWriter
) -> None:
    tenant = new_tenant()
    first, second = versions_of_one_call(tenant)
    await writer.write_batch([second], NOW, [NOW - 1_000])
    assert await seal_all(redis, tenant) == 1
    assert await writer.write_batch([first], NOW, [NOW - 60_000]) == ["duplicate"]
    assert await the_record(redis, second) == second


_VERSIONS = st.lists(
    st.tuples(
        st.integers(0, 3),  # which of 4 contents
        st.integers(0, 2),  # end: +0, +1 or +2 s
        st.integers(0, 2),  # event time
    ),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(writes=_VERSIONS, seed=st.integers(0, 2**32))
async def test_any_order_of_writes_keeps_what_the_rule_says(
    redis: Any, writer: RecordWriter, writes: list[tuple[int, int, int]], seed: int
) -> None:
    """Versions of one call written in any order and batching: the stored record is the
    one ``core.versions.replaces`` keeps, folding over the writes in their order."""
    tenant = new_tenant()
    base = make_record(tenant, 7)
    contents = ["answered", "busy", "failed", "no_answer"]
    records = [
        (
            replace(base, disposition=contents[c], ended_at_ms=base.ended_at_ms + end * 1_000),
            NOW - 10_000 + event,
        )
        for c, end, event in writes
    ]
    rng = random.Random(seed)
    kept = records[0]
    position = 0
    while position < len(records):
        size = rng.randint(1, 4)
        batch = records[position : position + size]
        await writer.write_batch([r for r, _ in batch], NOW, [e for _, e in batch])
        for record, event in batch:
            if replaces(version_of(record, event), version_of(*kept)):
                kept = (record, event)
        position += size
    assert await the_record(redis, base) == kept[0]
