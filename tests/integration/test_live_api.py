"""The live tail and the daily summary over HTTP: `cdrstream api` as a child process on the
suite's Redis, records written with `RecordWriter` (the write script announces them).

No timed assertions: every wait has a generous bound that only turns a hang into a failure.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdrstream.access.access_store import issue_token, revoke_tokens
from cdrstream.access.tokens import parse_token
from cdrstream.core.clock import DAY_MS, now_ms
from cdrstream.core.masking import MASK
from cdrstream.core.record import CallRecord, record_id
from cdrstream.core.summary import aggregate, csv_text, first_day, local_day, summarize
from cdrstream.settings import Settings, load_settings
from cdrstream.stack.processes import free_port
from cdrstream.stack.redis_server import RedisNode
from cdrstream.stack.roles import RoleProcess, settings_env
from cdrstream.store.connection import connect
from cdrstream.store.live import live_key
from cdrstream.store.writer import RecordWriter

pytestmark = pytest.mark.integration

SUFFIX = uuid.uuid4().hex[:6]
AMSTERDAM = ZoneInfo("Europe/Amsterdam")
WAIT_S = 30.0  # a bound on waiting for something that should come, never a measurement


@dataclass
class Api:
    base: str
    settings: Settings
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def api(redis_node: RedisNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    work = tmp_path_factory.mktemp("live-api")
    settings = replace(
        load_settings({}),
        redis_url=redis_node.url,
        api_port=free_port(),
        api_bind="127.0.0.1",
        access_file=str(work / "access.json"),
        cursor_secret="live-cursor-secret",
    )
    tokens = {}
    for name, masked in (("full", False), ("masked", True), ("other", False), ("gone", False)):
        tokens[name], _ = issue_token(
            settings.access_file,
            partner=f"{name}-partner",
            tenants=[f"live-{SUFFIX}-{n}" for n in range(12)],
            airtime_reseller=True,
            masked_numbers=masked,
        )
    flags = ["--live-heartbeat", "0.3", "--live-streams-per-partner", "3"]
    process = RoleProcess(["api", *flags], env=settings_env(settings), log_file=work / "api.log")
    process.start().wait_http(f"http://127.0.0.1:{settings.api_port}/healthz", timeout_s=60)
    yield Api(f"http://127.0.0.1:{settings.api_port}", settings, tokens)
    assert process.stop() == 0, process.log_tail()
    log = (work / "api.log").read_text()
    assert '"level":"error"' not in log, log[-3000:]
    for token in tokens.values():  # no secret in any log line
        assert parse_token(token)[1] not in log
    assert not re.search(r"\+?31[0-9]{8}", log)  # nor a number someone called


_TENANTS = iter(range(12))


def tenant() -> str:
    return f"live-{SUFFIX}-{next(_TENANTS)}"


def make(t: str, n: int, *, direction: str = "outbound", started: int | None = None) -> CallRecord:
    started = now_ms() - 60_000 if started is None else started
    inbound = direction == "inbound"
    pstn = f"+3120{n:07d}"
    return CallRecord(
        id=record_id(t, f"c-{n}"),
        tenant_id=t,
        call_id=f"c-{n}",
        started_at_ms=started,
        answered_at_ms=started + 2_000 if n % 3 else None,
        ended_at_ms=started + 60_000,
        duration=58 if n % 3 else 0,
        source=pstn if inbound else "+31851112222",
        source_raw=pstn,
        destination="+31851112222" if inbound else pstn,
        destination_raw=pstn,
        extension="0" if inbound else "201",
        direction=direction,  # type: ignore[arg-type]
        disposition="answered" if n % 3 else "no_answer",
    )


async def write(settings: Settings, records: list[CallRecord]) -> list[str]:
    redis = connect(settings)
    try:
        return list(await RecordWriter(redis, retention_ms=settings.retention_ms).write_batch(
            records, now_ms()
        ))  # fmt: skip
    finally:
        await redis.aclose()


@dataclass
class Event:
    name: str  # "record", "ready", "reload", or "heartbeat" (a comment)
    id: str | None
    data: Any


class Stream:
    """One live stream, read event by event (comments included, as ``heartbeat``)."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def next(self) -> Event | None:
        fields: dict[str, str] = {}
        comment = False
        async with asyncio.timeout(WAIT_S):
            while True:
                raw = await self.response.content.readline()
                if not raw:
                    return None
                line = raw.decode("utf-8").rstrip("\n")
                if line == "":
                    if "data" in fields:
                        return Event(fields.get("event", "message"), fields.get("id"),
                                     orjson.loads(fields["data"]))  # fmt: skip
                    if comment:
                        return Event("heartbeat", fields.get("id"), None)
                    fields = {}
                    continue
                if line.startswith(":"):
                    comment = True
                    continue
                name, _, value = line.partition(":")
                fields[name] = value[1:] if value.startswith(" ") else value

    async def until(self, name: str) -> tuple[list[Event], Event]:
        """Events up to the first one named ``name`` (heartbeats left out)."""
        seen = []
        while True:
            event = await self.next()
            assert event is not None, f"stream ended before {name}: {seen}"
            if event.name == name:
                return seen, event
            if event.name != "heartbeat":
                seen.append(event)

    async def records(self, count: int) -> list[Event]:
        out = []
        while len(out) < count:
            event = await self.next()
            assert event is not None, f"stream ended after {len(out)} of {count} records"
            if event.name == "record":
                out.append(event)
            else:
                assert event.name == "heartbeat", event
        return out


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as s:
        yield s


async def open_stream(
    session: aiohttp.ClientSession,
    api: Api,
    t: str,
    token: str,
    params: dict[str, str] | None = None,
    last_event_id: str | None = None,
) -> Stream:
    headers = {"Authorization": f"Bearer {token}"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    async with asyncio.timeout(WAIT_S):
        while True:
            response = await session.get(
                f"{api.base}/v1/tenants/{t}/cdrs/live", params=params or {}, headers=headers
            )
            if response.status != 429:
                break
            # A stream the client closed frees its slot when the server notices (within
            # a second); the partner's limit is tested on its own.
            response.close()
            await asyncio.sleep(0.2)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-store"
    return Stream(response)


# ------------------------------------------------------------------------------- the live tail


async def test_records_arrive_as_stored_filtered_on_the_server_and_masked(
    api: Api, session: aiohttp.ClientSession
) -> None:
    t = tenant()
    everything = await open_stream(session, api, t, api.tokens["full"])
    inbound = await open_stream(session, api, t, api.tokens["full"], {"direction": "inbound"})
    masked = await open_stream(session, api, t, api.tokens["masked"], {"number": "+31"})
    for stream in (everything, inbound, masked):
        _, ready = await stream.until("ready")
        assert ready.data == {"resumed": False} and ready.id is not None
    records = [make(t, n, direction="inbound" if n % 2 else "outbound") for n in range(40)]
    assert await write(api.settings, records) == ["stored"] * 40

    got = await everything.records(40)
    assert [e.data["id"] for e in got] == [r.id for r in records]  # as they came
    assert [e.data["source"] for e in got] == [r.source for r in records]
    ids = [e.id for e in got]
    assert all(i is not None for i in ids) and ids == sorted(ids, key=lambda i: tuple(
        int(x) for x in i.split("-")))  # fmt: skip
    got_inbound = await inbound.records(20)
    assert [e.data["id"] for e in got_inbound] == [
        r.id for r in records if r.direction == "inbound"
    ]
    got_masked = await masked.records(40)
    for event in got_masked:
        assert MASK in event.data["source"] and MASK in event.data["destination"]
        assert event.data["source_raw"] is None and event.data["destination_raw"] is None

    # A replay announces nothing; a replacement is announced again; then a new record.
    assert await write(api.settings, records) == ["duplicate"] * 40
    changed = replace(records[0], duration=records[0].duration + 1)
    fresh = make(t, 100, direction="inbound")
    assert await write(api.settings, [changed]) == ["stored"]
    assert await write(api.settings, [fresh]) == ["stored"]
    assert [e.data["id"] for e in await everything.records(2)] == [changed.id, fresh.id]
    assert [e.data["id"] for e in await inbound.records(1)] == [fresh.id]
    for stream in (everything, inbound, masked):
        stream.response.close()


async def test_a_reconnect_with_last_event_id_gets_every_event_it_missed(
    api: Api, session: aiohttp.ClientSession
) -> None:
    t = tenant()
    first = await open_stream(session, api, t, api.tokens["full"])
    await first.until("ready")
    before = [make(t, n) for n in range(5)]
    await write(api.settings, before)
    seen = await first.records(5)
    first.response.close()
    missed = [make(t, n) for n in range(5, 25)]
    await write(api.settings, missed)

    again = await open_stream(session, api, t, api.tokens["full"], last_event_id=seen[-1].id)
    replayed, ready = await again.until("ready")
    assert [e.data["id"] for e in replayed] == [r.id for r in missed]
    assert ready.data == {"resumed": True} and ready.id == replayed[-1].id
    later = make(t, 99)
    await write(api.settings, [later])
    assert [e.data["id"] for e in await again.records(1)] == [later.id]
    again.response.close()

    # From the very start (0-0): everything the stream holds.
    whole = await open_stream(session, api, t, api.tokens["full"], last_event_id="0-0")
    replayed, _ = await whole.until("ready")
    assert [e.data["id"] for e in replayed] == [r.id for r in before + missed + [later]]
    whole.response.close()


async def test_a_client_that_missed_more_than_the_stream_holds_is_told_to_reload(
    api: Api, session: aiohttp.ClientSession
) -> None:
    t = tenant()
    await write(api.settings, [make(t, n) for n in range(3)])
    stream = await open_stream(session, api, t, api.tokens["full"], last_event_id="0-0")
    replayed, ready = await stream.until("ready")
    assert len(replayed) == 3
    stream.response.close()
    await write(api.settings, [make(t, n) for n in range(3, 6)])
    redis = connect(api.settings)
    try:  # what 16 minutes would do: entries after the client's last one are trimmed
        await redis.xtrim(live_key(t), maxlen=1, approximate=False)
        last = (await redis.xinfo_stream(live_key(t)))["last-generated-id"].decode()
    finally:
        await redis.aclose()
    for seen in (ready.id, "not-an-id", "99999999999999-0"):  # trimmed, malformed, future
        stream = await open_stream(session, api, t, api.tokens["full"], last_event_id=seen)
        before, ready_again = await stream.until("ready")
        assert [e.name for e in before] == ["reload"], seen
        assert before[0].id == last and ready_again.id == last
        assert ready_again.data == {"resumed": False}
        stream.response.close()


async def test_heartbeats_carry_the_position_even_when_nothing_matches(
    api: Api, session: aiohttp.ClientSession
) -> None:
    t = tenant()
    stream = await open_stream(session, api, t, api.tokens["full"], {"direction": "inbound"})
    await stream.until("ready")
    await write(api.settings, [make(t, n, direction="outbound") for n in range(3)])
    redis = connect(api.settings)
    try:
        last = (await redis.xinfo_stream(live_key(t)))["last-generated-id"].decode()
    finally:
        await redis.aclose()
    while True:  # heartbeats come every 0.3 s here; the one after the writes has their id
        event = await stream.next()
        assert event is not None and event.name == "heartbeat", event
        if event.id == last:
            break
    stream.response.close()


async def test_live_streams_per_partner_are_limited(
    api: Api, session: aiohttp.ClientSession
) -> None:
    t = tenant()
    streams = [await open_stream(session, api, t, api.tokens["other"]) for _ in range(3)]
    headers = {"Authorization": f"Bearer {api.tokens['other']}"}
    url = f"{api.base}/v1/tenants/{t}/cdrs/live"
    async with session.get(url, headers=headers) as refused:
        assert refused.status == 429
        assert refused.headers["Retry-After"]
        problem = await refused.json(content_type=None)
        assert problem["type"].endswith("/too-many-live-streams")
    # Another partner is not affected; a stream closed frees its slot.
    other = await open_stream(session, api, t, api.tokens["full"])
    other.response.close()
    streams[0].response.close()
    async with asyncio.timeout(WAIT_S):
        while True:
            async with session.get(url, headers=headers) as answer:
                if answer.status == 200:
                    break
                assert answer.status == 429
            await asyncio.sleep(0.2)
    for s in streams[1:]:
        s.response.close()


async def test_a_revoked_token_loses_its_stream(api: Api, session: aiohttp.ClientSession) -> None:
    t = tenant()
    stream = await open_stream(session, api, t, api.tokens["gone"])
    await stream.until("ready")
    revoke_tokens(api.settings.access_file, partner="gone-partner")
    while (event := await stream.next()) is not None:  # ends at a heartbeat's check
        assert event.name == "heartbeat"


async def test_parameters_are_the_lists_filters(api: Api, session: aiohttp.ClientSession) -> None:
    t = tenant()
    url = f"{api.base}/v1/tenants/{t}/cdrs/live"
    cases = [
        ("full", {"from": "2026-11-25T00:00:00Z"}, "from"),
        ("full", {"direction": "sideways"}, "direction"),
        ("masked", {"number": "+31201234567"}, "number"),  # masked: a country code only
    ]
    for who, params, name in cases:
        headers = {"Authorization": f"Bearer {api.tokens[who]}"}
        async with session.get(url, params=params, headers=headers) as answer:
            assert answer.status == 400
            body = await answer.json(content_type=None)
            assert [p["name"] for p in body["invalid_params"]] == [name]


# ------------------------------------------------------------------------------- the summary


async def test_the_summary_is_the_aggregate_of_the_stored_records(
    api: Api, session: aiohttp.ClientSession
) -> None:
    t = tenant()
    now = now_ms()
    records = [
        make(t, n, direction="inbound" if n % 4 else "outbound", started=now - n * DAY_MS // 5)
        for n in range(60)
    ]
    await write(api.settings, records)
    await write(api.settings, [replace(r, duration=r.duration + 5) for r in records[::7]])
    current = {r.id: r for r in records} | {
        r.id: replace(r, duration=r.duration + 5) for r in records[::7]
    }
    first = first_day(now, api.settings.retention_ms, AMSTERDAM)
    today = local_day(now, AMSTERDAM)
    want = summarize(aggregate(current.values(), AMSTERDAM, first), first, today)

    headers = {"Authorization": f"Bearer {api.tokens['masked']}"}
    url = f"{api.base}/v1/tenants/{t}/summary"
    async with session.get(url, headers=headers) as answer:
        assert answer.status == 200
        body = await answer.json()
    assert body["days"] == [d.to_json() for d in want]
    assert body["from"] == want[0].date and body["to"] == want[-1].date
    assert body["totals"]["inbound"]["calls"] + body["totals"]["outbound"]["calls"] == 60

    some = want[-5:-2]
    params = {"from": some[0].date, "to": some[-1].date, "format": "csv"}
    async with session.get(url, params=params, headers=headers) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/csv")
        text = await answer.text()
    assert text == csv_text(some)
    assert len(list(csv.DictReader(io.StringIO(text)))) == 2 * len(some)

    far = {"from": "1999-01-01", "to": "2999-12-31"}  # clamped to the window
    async with session.get(url, params=far, headers=headers) as answer:
        assert (await answer.json())["days"] == body["days"]
    for params, name in (
        ({"from": "2026-13-01"}, "from"),
        ({"to": "yesterday"}, "to"),
        ({"from": "2026-11-20", "to": "2026-11-10"}, "from"),
        ({"direction": "inbound"}, "direction"),
    ):
        async with session.get(url, params=params, headers=headers) as answer:
            assert answer.status == 400, params
            body = await answer.json(content_type=None)
            assert [p["name"] for p in body["invalid_params"]] == [name]


_NAMES = st.sampled_from(["direction", "extension", "number", "from", "to", "format", "x"])
_VALUES = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    route=st.sampled_from(["cdrs/live", "summary"]),
    pairs=st.lists(st.tuples(_NAMES, _VALUES), max_size=4),
    raw=st.binary(max_size=20),
    last_event_id=st.one_of(st.none(), st.text(st.characters(codec="ascii"), max_size=30)),
)
def test_fuzzed_requests_never_answer_500(
    api: Api, route: str, pairs: list[tuple[str, str]], raw: bytes, last_event_id: str | None
) -> None:
    import http.client

    query = urllib.parse.urlencode(pairs) + "&" + urllib.parse.quote_from_bytes(raw, safe="=&")
    headers = {"Authorization": f"Bearer {api.tokens['masked']}"}
    if last_event_id is not None and last_event_id.isprintable():
        headers["Last-Event-ID"] = last_event_id
    host = api.base.removeprefix("http://")
    connection = http.client.HTTPConnection(host, timeout=WAIT_S)
    try:
        connection.request("GET", f"/v1/tenants/live-{SUFFIX}-11/{route}?{query}", headers=headers)
        answer = connection.getresponse()  # the status line and headers only
        assert answer.status in (200, 400, 429), (route, query, answer.status)
    finally:
        connection.close()
