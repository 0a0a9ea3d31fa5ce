"""The query endpoint for real: `cdrstream api` as a child process on the suite's Redis.

Records are written with `RecordWriter` straight into Redis; tokens are issued into the
access file the child reads. Tenant ids carry a per-module suffix, so other modules' data
on the same Redis never shows up here.
"""

from __future__ import annotations

import asyncio
import csv
import io
import random
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdrstream.access.access_store import issue_token, revoke_tokens
from cdrstream.api.csv_export import CSV_COLUMNS
from cdrstream.api.routes import ROUTES
from cdrstream.core.clock import DAY_MS, HOUR_MS, now_ms
from cdrstream.core.masking import MASK
from cdrstream.core.record import CallRecord, record_id
from cdrstream.core.timestamps import format_local, format_utc
from cdrstream.settings import Settings, load_settings
from cdrstream.stack.processes import free_port
from cdrstream.stack.redis_server import RedisNode
from cdrstream.stack.roles import RoleProcess, settings_env

pytestmark = pytest.mark.integration

SUFFIX = uuid.uuid4().hex[:6]
TENANT = f"acme-{SUFFIX}"  # has records; the good token holds a contract for it
OTHER = f"bolt-{SUFFIX}"  # has records; nobody's token here covers it except "other"
EMPTY = f"empty-{SUFFIX}"  # in the good token's contract, no records
UNKNOWN = f"nobody-{SUFFIX}"  # no records, no contract
PBX = f"pbx-{SUFFIX}"  # in the good token's contract; numbers in fields that are not numbers
NOW_MS = now_ms()


# ------------------------------------------------------------------------------- fixtures


@dataclass
class Server:
    base: str
    settings: Settings
    process: RoleProcess
    tokens: dict[str, str]


def _settings(redis_url: str, work: Path) -> Settings:
    return replace(
        load_settings({}),
        redis_url=redis_url,
        api_port=free_port(),
        api_bind="127.0.0.1",
        access_file=str(work / "access.json"),
        cursor_secret="integration-cursor-secret",
        log_level="INFO",
    )


def _issue_tokens(access_file: str) -> dict[str, str]:
    """The tokens of the access matrix, each also issued with masked numbers
    (``masked_<name>``)."""

    def issue(partner: str, tenants: list[str], reseller: bool, masked: bool) -> str:
        token, _ = issue_token(
            access_file,
            partner=partner,
            tenants=tenants,
            airtime_reseller=reseller,
            masked_numbers=masked,
        )
        return token

    grants = {
        "good": ("acme-partner", [TENANT, EMPTY, PBX], True),
        "non_reseller": ("resells-nothing", [TENANT], False),
        "no_contract": ("other-partner", [OTHER], True),
        "revoked": ("gone-partner", [TENANT], True),
    }
    tokens = {}
    for name, (partner, tenants, reseller) in grants.items():
        tokens[name] = issue(partner, tenants, reseller, False)
        tokens[f"masked_{name}"] = issue(f"{partner}-noc", tenants, reseller, True)
    revoke_tokens(access_file, partner="gone-partner")
    revoke_tokens(access_file, partner="gone-partner-noc")
    return tokens


def _start(settings_: Settings, work: Path) -> RoleProcess:
    process = RoleProcess(["api"], env=settings_env(settings_), log_file=work / "api.log")
    process.start().wait_http(f"http://127.0.0.1:{settings_.api_port}/healthz", timeout_s=60)
    return process


def _stop(process: RoleProcess) -> None:
    code = process.stop(timeout_s=30)
    assert code == 0, f"api exited {code} on SIGTERM:\n{process.log_tail()}"


@pytest.fixture(scope="module")
def server(redis_node: RedisNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("api")
    settings_ = _settings(redis_node.url, work)
    tokens = _issue_tokens(settings_.access_file)
    process = _start(settings_, work)
    yield Server(f"http://127.0.0.1:{settings_.api_port}", settings_, process, tokens)
    _stop(process)


@pytest.fixture(scope="module")
def dead_redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """An API whose Redis is not there: shows what is decided before any Redis read."""
    work = tmp_path_factory.mktemp("api-dead")
    settings_ = _settings(f"redis://127.0.0.1:{free_port()}/0", work)
    tokens = _issue_tokens(settings_.access_file)
    process = _start(settings_, work)
    yield Server(f"http://127.0.0.1:{settings_.api_port}", settings_, process, tokens)
    _stop(process)


def make_record(
    tenant: str,
    n: int,
    started_at_ms: int,
    *,
    direction: str = "outbound",
    extension: str = "201",
    number: str = "+31201234567",
    answered: bool = True,
) -> CallRecord:
    other = "+31612345678"
    source, destination = (number, other) if direction == "inbound" else (other, number)
    duration = 30 + n % 300
    return CallRecord(
        id=record_id(tenant, f"call-{n}"),
        tenant_id=tenant,
        call_id=f"call-{n}",
        started_at_ms=started_at_ms,
        answered_at_ms=started_at_ms + 4_000 if answered else None,
        ended_at_ms=started_at_ms + 4_000 + duration * 1000,
        duration=duration if answered else 0,
        source=source,
        source_raw="0" + source[3:],
        destination=destination,
        destination_raw="0" + destination[3:],
        extension=extension if direction == "outbound" or n % 5 else "0",
        direction=direction,  # type: ignore[arg-type]
        disposition="answered" if answered else "no_answer",
    )


def _dataset() -> list[CallRecord]:
    rng = random.Random(7)
    records = []
    numbers = ["+31201234567", "+31207654321", "+31301112233", "+3224567890", "+4420794600"]
    for n in range(2_600):  # more than one CSV chunk (2,000)
        records.append(
            make_record(
                TENANT,
                n,
                NOW_MS - rng.randrange(1, 5 * DAY_MS),
                direction=rng.choice(["inbound", "outbound"]),
                extension=rng.choice(["201", "202", "310"]),
                number=rng.choice(numbers),
                answered=rng.random() < 0.8,
            )
        )
    return records


DATA = _dataset()
OTHER_DATA = [make_record(OTHER, n, NOW_MS - (n + 1) * HOUR_MS) for n in range(5)]


async def _write(settings_: Settings, records: list[CallRecord]) -> None:
    from cdrstream.store.connection import connect
    from cdrstream.store.writer import RecordWriter

    redis = connect(settings_)
    try:
        writer = RecordWriter(redis, retention_ms=settings_.retention_ms)
        for i in range(0, len(records), 500):
            outcomes = await writer.write_batch(records[i : i + 500], now_ms())
            assert set(outcomes) <= {"stored", "duplicate"}
    finally:
        await redis.aclose()


@pytest.fixture(scope="module")
async def loaded(server: Server) -> AsyncIterator[Server]:
    await _write(server.settings, DATA + OTHER_DATA)
    yield server


# ------------------------------------------------------------------------------- helpers


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


def get(base: str, path: str, token: str | None = None, **headers: str) -> Answer:
    return call("GET", base, path, token, **headers)


def call(method: str, base: str, path: str, token: str | None = None, **headers: str) -> Answer:
    request = urllib.request.Request(base + path, method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    for name, value in headers.items():
        request.add_header(name.replace("_", "-"), value)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            live = response.headers.get("Content-Type", "").startswith("text/event-stream")
            body = read_until_ready(response) if live and method != "HEAD" else response.read()
            return Answer(response.status, dict(response.headers.items()), body)
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, dict(exc.headers.items()), exc.read())


def read_until_ready(response: Any) -> bytes:
    """A live stream never ends: its body up to the end of its ``ready`` event (the
    replay of a Last-Event-ID comes before it)."""
    lines: list[bytes] = []
    ready = False
    while True:
        line = response.readline()
        if not line:
            break
        lines.append(line)
        if line.rstrip(b"\r\n") == b"event: ready":
            ready = True
        elif ready and line in (b"\n", b"\r\n"):
            break
    return b"".join(lines)


def sse_events(body: bytes) -> list[tuple[str, str | None, str]]:
    """(event, id, data) of each event of an event-stream body."""
    events = []
    for block in body.decode("utf-8").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            fields[name] = fields[name] + "\n" + value if name in fields else value
        if "data" in fields:
            events.append((fields.get("event", "message"), fields.get("id"), fields["data"]))
    return events


def cdrs_path(tenant: str, **params: str) -> str:
    query = urllib.parse.urlencode(params)
    return f"/v1/tenants/{tenant}/cdrs" + (f"?{query}" if query else "")


def all_pages(
    server: Server, tenant: str, limit: int = 1000, token: str | None = None, **params: str
) -> list[dict]:
    records: list[dict] = []
    cursor = None
    while True:
        extra = {"cursor": cursor} if cursor else {}
        answer = get(
            server.base,
            cdrs_path(tenant, limit=str(limit), **params, **extra),
            token or server.tokens["good"],
        )
        assert answer.status == 200, answer.body
        page = answer.json()
        records.extend(page["records"])
        cursor = page["next_cursor"]
        if cursor is None:
            return records


def expected_ids(records: list[CallRecord]) -> list[str]:
    return [r.id for r in sorted(records, key=lambda r: (r.started_at_ms, r.id), reverse=True)]


def assert_problem(answer: Answer, status: int) -> dict:
    assert answer.status == status, (answer.status, answer.body)
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    body = answer.json()
    assert body["status"] == status
    assert body["type"].startswith("https://") and body["title"] and body["detail"]
    return body


# ------------------------------------------------------------------------------- access

# Every way of reading a tenant's records. The access matrix and the masked-number tests run
# on each; a new secured route (a live tail, a summary) fails
# `test_every_secured_route_is_in_the_route_table` until it has its rows here.

MASKED_NUMBER = re.compile(rf"anonymous|{MASK}|\+[0-9]{{1,3}} {MASK}( [0-9]{{1,4}})?")


def json_rows(answer: Answer) -> list[dict[str, Any]]:
    return list(answer.json()["records"])


def csv_rows(answer: Answer) -> list[dict[str, Any]]:
    rows = list(csv.reader(io.StringIO(answer.body.decode("utf-8"), newline="")))
    assert tuple(rows[0]) == CSV_COLUMNS
    return [
        {
            name: value[1:] if value.startswith("'") else value
            for name, value in zip(rows[0], row, strict=True)
        }
        for row in rows[1:]
    ]


def live_rows(answer: Answer) -> list[dict[str, Any]]:
    """The records of a live stream's replay (its ``record`` events, in stream order)."""
    return [orjson.loads(data) for name, _, data in sse_events(answer.body) if name == "record"]


def summary_rows(answer: Answer) -> list[dict[str, Any]]:
    """A summary holds no records: nothing of a record may be in it (checked on its text)."""
    return []


def summary_calls(answer: Answer) -> int:
    """Every call a summary answer counts (JSON: the totals; CSV: the rows)."""
    if answer.headers["Content-Type"].startswith("text/csv"):
        rows = list(csv.DictReader(io.StringIO(answer.body.decode("utf-8"), newline="")))
        return sum(int(row["calls"]) for row in rows)
    totals = answer.json()["totals"]
    return int(totals["inbound"]["calls"]) + int(totals["outbound"]["calls"])


@dataclass(frozen=True)
class TenantRoute:
    template: str  # the path in ROUTES
    # "page": one JSON page; "export": every record; "live": the live stream's replay
    # (Last-Event-ID 0-0: every record stored); "summary": the daily summary (counts)
    kind: str
    records: Callable[[Answer], list[dict[str, Any]]]  # the served records, field by field
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def path(self, tenant: str, **params: str) -> str:
        query = urllib.parse.urlencode({**self.params, **params})
        return self.template.replace("{tenant_id}", tenant) + (f"?{query}" if query else "")


CDRS = "/v1/tenants/{tenant_id}/cdrs"
LIVE = "/v1/tenants/{tenant_id}/cdrs/live"
SUMMARY = "/v1/tenants/{tenant_id}/summary"
TENANT_ROUTES: dict[str, TenantRoute] = {
    "json": TenantRoute(CDRS, "page", json_rows),
    "format=csv": TenantRoute(CDRS, "export", csv_rows, params={"format": "csv"}),
    "Accept: text/csv": TenantRoute(CDRS, "export", csv_rows, headers={"Accept": "text/csv"}),
    "live": TenantRoute(LIVE, "live", live_rows, headers={"Last-Event-ID": "0-0"}),
    "live, filtered": TenantRoute(
        LIVE,
        "live",
        live_rows,
        params={"direction": "inbound"},
        headers={"Last-Event-ID": "0-0"},
    ),
    "summary": TenantRoute(SUMMARY, "summary", summary_rows),
    "summary csv": TenantRoute(SUMMARY, "summary", summary_rows, params={"format": "csv"}),
}


def test_every_secured_route_is_in_the_route_table() -> None:
    secured = {route.path for route in ROUTES if route.secured}
    assert secured == {route.template for route in TENANT_ROUTES.values()}


@pytest.mark.parametrize("masked", [False, True], ids=["full", "masked"])
@pytest.mark.parametrize("variant", list(TENANT_ROUTES))
def test_authorization_matrix(loaded: Server, variant: str, masked: bool) -> None:
    route = TENANT_ROUTES[variant]
    t = {name.removeprefix("masked_"): token for name, token in loaded.tokens.items()
         if name.startswith("masked_") == masked}  # fmt: skip

    def call(token: str | None, tenant: str = TENANT, raw_header: str | None = None) -> Answer:
        h = dict(route.headers)
        if raw_header is not None:
            h["Authorization"] = raw_header
        return get(loaded.base, route.path(tenant), token, **h)

    unauthenticated = [
        call(None),
        call("not-a-token"),
        call("cdrs_0123456789ab_" + "A" * 43),  # well formed, unknown
        call(t["good"][:-2] + ("AA" if not t["good"].endswith("AA") else "BB")),  # forged
        call(t["revoked"]),
        call(None, raw_header=f"Basic {t['good']}"),
    ]
    bodies = set()
    for answer in unauthenticated:
        assert_problem(answer, 401)
        assert answer.headers["WWW-Authenticate"] == 'Bearer realm="cdrstream"'
        bodies.add(answer.body)
    assert len(bodies) == 1  # the reasons are not told apart
    assert bodies == {get(loaded.base, route.path(TENANT)).body}  # nor the kind of token

    forbidden = [
        call(t["non_reseller"]),
        call(t["no_contract"]),
        call(t["good"], OTHER),
        call(t["good"], UNKNOWN),
        call(t["no_contract"], UNKNOWN),
    ]
    for answer in forbidden:
        assert_problem(answer, 403)
    assert len({a.body for a in forbidden}) == 1  # existing or not: the same answer
    assert (
        forbidden[0].body
        == get(loaded.base, route.path(OTHER), loaded.tokens["good"], **route.headers).body
    )

    allowed = call(t["good"])
    assert allowed.status == 200
    records = route.records(allowed)
    if route.kind == "page":
        assert allowed.headers["Content-Type"].startswith("application/json")
        assert len(records) == 100
    elif route.kind == "live":
        assert allowed.headers["Content-Type"].startswith("text/event-stream")
        wanted = [r for r in DATA if route.params.get("direction") in (None, r.direction)]
        assert {r["id"] for r in records} >= {r.id for r in wanted}
        assert all(r["direction"] == route.params["direction"] for r in records
                   if "direction" in route.params)  # fmt: skip
    elif route.kind == "summary":
        assert summary_calls(allowed) == len(DATA)  # every stored record, counted once
    else:
        assert allowed.headers["Content-Type"].startswith("text/csv")
        assert len(records) == len(DATA)
    shown = {r["source"] for r in records} | {r["destination"] for r in records}
    if masked:
        assert all(MASKED_NUMBER.fullmatch(n) for n in shown), shown
    else:
        assert shown <= {r.source for r in DATA} | {r.destination for r in DATA}

    empty = call(t["good"], EMPTY)  # contract, no calls yet: an empty answer, not an error
    assert empty.status == 200
    if route.kind == "page":
        assert empty.json() == {"records": [], "next_cursor": None}
    elif route.kind == "live":
        assert route.records(empty) == []
        assert [name for name, _, _ in sse_events(empty.body)] == ["ready"]
    elif route.kind == "summary":
        assert summary_calls(empty) == 0
    else:
        assert empty.body.decode() == ",".join(CSV_COLUMNS) + "\r\n"


# ------------------------------------------------------------------------------- masked numbers


def number_forms(number: str) -> list[str]:
    """Ways the full number, or its raw form, could show up in an answer."""
    national = number[3:]  # the data's country codes are all two digits
    return [number, number[1:], "0" + national, national, "0" + national[:2] + " " + national[2:]]


FULL_FORMS = sorted({f for r in DATA for n in (r.source, r.destination) for f in number_forms(n)})
RAW_FORMS = sorted({r.source_raw for r in DATA} | {r.destination_raw for r in DATA})


@pytest.mark.parametrize("variant", list(TENANT_ROUTES))
def test_a_masked_token_is_served_masked_numbers_and_no_raw_ones(
    loaded: Server, variant: str
) -> None:
    route = TENANT_ROUTES[variant]
    path = route.path(TENANT)
    masked = get(loaded.base, path, loaded.tokens["masked_good"], **route.headers)
    full = get(loaded.base, path, loaded.tokens["good"], **route.headers)
    assert masked.status == full.status == 200
    masked_records, full_records = route.records(masked), route.records(full)
    # The same records in the same order, the same fields; only the numbers differ.
    assert [r["id"] for r in masked_records] == [r["id"] for r in full_records]
    for shown, stored in zip(masked_records, full_records, strict=True):
        assert list(shown) == list(stored)
        for name in ("source", "destination"):
            assert MASKED_NUMBER.fullmatch(shown[name]), shown[name]
            assert shown[name][:3] == stored[name][:3]  # the country code (two digits here)
            tail = shown[name].rsplit(" ", 1)[-1]  # the last digits, or the mask
            assert tail == MASK or stored[name].endswith(tail)
        for name in ("source_raw", "destination_raw"):
            assert shown[name] in (None, ""), shown[name]
        assert shown["call_id"] in (None, "")  # withheld
        rest = {
            k: v for k, v in shown.items() if not k.startswith(("source", "destination", "call_id"))
        }
        assert rest == {k: v for k, v in stored.items() if k in rest}
    text = masked.body.decode()
    leaked = [form for form in FULL_FORMS + RAW_FORMS if form in text]
    assert leaked == [], leaked
    head = call("HEAD", loaded.base, path, loaded.tokens["masked_good"], **route.headers)
    assert head.status == 200 and head.body == b""


#: What the issue found served to a masked token: numbers a PBX put into other fields.
PBX_TEXTS = {
    "extension": "+31612345678",
    "call_id": "+31687654321@pbx",
    "disposition": "0612345699",
}
PBX_DIGITS = ["1234567", "2345678", "8765432", "7654321", "2345699", "612345699"]


@pytest.mark.parametrize("variant", list(TENANT_ROUTES))
async def test_a_masked_token_is_served_no_number_a_pbx_put_in_other_fields(
    loaded: Server, variant: str
) -> None:
    """JSON, CSV, the live tail and the summary: no run of seven digits of those texts."""
    route = TENANT_ROUTES[variant]
    records = [
        replace(make_record(PBX, n, NOW_MS - (n + 1) * HOUR_MS, direction=d), **PBX_TEXTS)
        for n, d in enumerate(["outbound", "inbound", "outbound"])
    ]
    await _write(loaded.settings, records)
    path = route.path(PBX)
    full = get(loaded.base, path, loaded.tokens["good"], **route.headers)
    masked = get(loaded.base, path, loaded.tokens["masked_good"], **route.headers)
    assert full.status == masked.status == 200
    if route.kind != "summary":  # the data is really there, served in full to a full token
        assert all(digits in full.body.decode() for digits in ("612345678", "687654321"))
    text = masked.body.decode()
    assert [d for d in PBX_DIGITS if d in text] == []
    for shown in route.records(masked):
        assert shown["call_id"] in (None, "")
        assert MASKED_NUMBER.fullmatch(shown["extension"]), shown["extension"]
        assert shown["disposition"] == MASK
    # ... and the extension filter cannot confirm a guessed number either.
    for typed in (PBX_TEXTS["extension"], "0612345678", "+31 6 1234 5678"):
        probe = get(loaded.base, route.path(PBX, extension=typed), loaded.tokens["masked_good"])
        if route.kind == "summary":  # no extension filter there: unknown either way
            assert_problem(probe, 400)
            continue
        body = assert_problem(probe, 400)
        assert [p["name"] for p in body["invalid_params"]] == ["extension"]
        assert "masked" in body["invalid_params"][0]["reason"]
    if route.kind == "page":  # a full token may filter by it (and finds the records)
        found = get(loaded.base, route.path(PBX, extension=PBX_TEXTS["extension"]),
                    loaded.tokens["good"])  # fmt: skip
        assert len(json_rows(found)) == len(records)


@pytest.mark.parametrize(
    "days",
    [("2030-01-01", "2031-01-01"), ("1999-01-01", "2000-01-01"), ("2030-01-01", "")],
    ids=["after", "before", "after, to left out"],
)
def test_a_summary_range_wholly_outside_the_window_is_answered_empty(
    loaded: Server, days: tuple[str, str]
) -> None:
    low, high = days
    path = f"/v1/tenants/{TENANT}/summary?from={low}&to={high}"
    answer = get(loaded.base, path, loaded.tokens["good"])
    assert answer.status == 200, answer.body
    body = answer.json()
    assert body["days"] == [] and body["from"] is None and body["to"] is None
    assert summary_calls(answer) == 0
    for figures in body["totals"].values():
        assert figures["calls"] == figures["answered"] == figures["talk_seconds"] == 0
    csv_answer = get(loaded.base, path + "&format=csv", loaded.tokens["good"])
    assert csv_answer.status == 200 and summary_calls(csv_answer) == 0


PRESENT = "+31207654321"  # in DATA
ABSENT = "+31209999999"  # not in DATA
assert any(PRESENT in (r.source, r.destination) for r in DATA)
assert not any(ABSENT in (r.source, r.destination) for r in DATA)

#: A number written into a query string the ways a prober might: each gives the raw query.
PROBES: dict[str, Callable[[str], str]] = {
    "E.164": lambda n: "number=" + urllib.parse.quote(n),
    "unencoded + (a space)": lambda n: "number=" + n,
    "digits": lambda n: "number=" + n[1:],
    "00 prefix": lambda n: "number=00" + n[1:],
    "national": lambda n: "number=" + urllib.parse.quote("0" + n[3:5] + " " + n[5:]),
    "national, dashes": lambda n: "number=0" + n[3:5] + "-" + n[5:],
    "(0)": lambda n: "number=" + urllib.parse.quote(n[:3] + " (0)" + n[3:]),
    "tel URI": lambda n: "number=" + urllib.parse.quote("tel:" + n),
    "sip URI": lambda n: "number=" + urllib.parse.quote(f"sip:{n}@pbx.example"),
    "name-addr": lambda n: "number=" + urllib.parse.quote(f'"x" <sip:{n}@pbx.example>'),
    "extension suffix": lambda n: "number=" + urllib.parse.quote(n + " ext. 12"),
    "fullwidth": lambda n: "number=" + urllib.parse.quote("".join(chr(ord(c) + 0xFEE0) for c in n)),
    "zero-width": lambda n: "number=" + urllib.parse.quote("\u200b".join(n)),
    "double-encoded": lambda n: "number=" + urllib.parse.quote(urllib.parse.quote(n)),
    "prefix of 9": lambda n: "number=" + urllib.parse.quote(n[:9]),
    "prefix of 5": lambda n: "number=" + urllib.parse.quote(n[:5]),
    "prefix of 4": lambda n: "number=" + urllib.parse.quote(n[:4]),
    "twice, then +31": lambda n: "number=" + urllib.parse.quote(n) + "&number=%2B31",
    "with other filters": lambda n: "direction=inbound&number=" + urllib.parse.quote(n),
    "CSV": lambda n: "format=csv&number=" + urllib.parse.quote(n),
    "long": lambda n: "number=" + urllib.parse.quote(n * 6),
}


@pytest.mark.parametrize("probe", list(PROBES))
def test_a_masked_token_cannot_probe_for_a_number(loaded: Server, probe: str) -> None:
    """Whatever form a number takes, a masked token gets a 400 naming `number`, and the very
    same answer whether the tenant called that number or not."""
    token = loaded.tokens["masked_good"]
    base_path = cdrs_path(TENANT)
    present = get(loaded.base, f"{base_path}?{PROBES[probe](PRESENT)}", token)
    absent = get(loaded.base, f"{base_path}?{PROBES[probe](ABSENT)}", token)
    body = assert_problem(present, 400)
    assert {p["name"] for p in body["invalid_params"]} == {"number"}
    assert present.body == absent.body
    assert PRESENT[3:] not in present.body.decode()
    # The same query works for a full token (or is refused for a reason of its own).
    assert get(
        loaded.base, f"{base_path}?{PROBES[probe](PRESENT)}", loaded.tokens["good"]
    ).status in (200, 400)


def test_a_masked_token_growing_a_prefix_learns_nothing_past_the_country_code(
    loaded: Server,
) -> None:
    token = loaded.tokens["masked_good"]
    refused = get(loaded.base, cdrs_path(TENANT, number=ABSENT), token)
    assert_problem(refused, 400)
    statuses = {}
    for end in range(2, len(PRESENT) + 1):
        prefix = PRESENT[:end]
        answer = get(loaded.base, cdrs_path(TENANT, number=prefix, limit="1000"), token)
        statuses[prefix] = answer.status
        if answer.status != 200:
            assert answer.body == refused.body, prefix  # one answer for every refused prefix
    assert [p for p, status in statuses.items() if status == 200] == ["+31"]


def test_a_masked_token_may_filter_by_country_code(loaded: Server) -> None:
    for typed in ("+31", "0031", "31", "0"):
        masked = all_pages(loaded, TENANT, number=typed, token=loaded.tokens["masked_good"])
        full = all_pages(loaded, TENANT, number="+31")
        assert [r["id"] for r in masked] == [r["id"] for r in full], typed
        assert all(MASKED_NUMBER.fullmatch(r["source"]) for r in masked)
    belgian = all_pages(loaded, TENANT, number="+32", token=loaded.tokens["masked_good"])
    assert belgian and all("+32 " in (r["source"][:4], r["destination"][:4]) for r in belgian)


def test_a_full_tokens_cursor_is_no_key_for_a_masked_token(loaded: Server) -> None:
    """A cursor is bound to its query: one made for a number filter cannot be replayed by a
    masked token without that filter (it would have to name the number, which it may not)."""
    page = get(loaded.base, cdrs_path(TENANT, number=PRESENT, limit="2"), loaded.tokens["good"])
    cursor = page.json()["next_cursor"]
    assert cursor
    token = loaded.tokens["masked_good"]
    replayed = assert_problem(get(loaded.base, cdrs_path(TENANT, cursor=cursor), token), 400)
    assert [p["name"] for p in replayed["invalid_params"]] == ["cursor"]
    with_number = get(loaded.base, cdrs_path(TENANT, cursor=cursor, number=PRESENT), token)
    assert "number" in [p["name"] for p in assert_problem(with_number, 400)["invalid_params"]]


def test_access_changes_apply_without_restart(loaded: Server) -> None:
    token, entry = issue_token(
        loaded.settings.access_file, partner="late-partner", tenants=[TENANT], airtime_reseller=True
    )
    deadline = time.monotonic() + 10
    while get(loaded.base, cdrs_path(TENANT), token).status != 200:
        assert time.monotonic() < deadline, "new token not accepted within 10 s"
        time.sleep(0.2)
    revoke_tokens(loaded.settings.access_file, token_id=entry.token_id)
    while get(loaded.base, cdrs_path(TENANT), token).status != 401:
        assert time.monotonic() < deadline, "revoked token still accepted after 10 s"
        time.sleep(0.2)


def test_no_redis_read_before_access_is_decided(dead_redis_server: Server) -> None:
    s = dead_redis_server
    assert_problem(get(s.base, cdrs_path(TENANT)), 401)
    assert_problem(get(s.base, cdrs_path(TENANT), s.tokens["non_reseller"]), 403)
    assert_problem(get(s.base, cdrs_path(TENANT, format="csv"), s.tokens["no_contract"]), 403)
    bad = assert_problem(get(s.base, cdrs_path(TENANT, limit="0"), s.tokens["good"]), 400)
    assert bad["invalid_params"][0]["name"] == "limit"
    # Only a request that is allowed and valid reads Redis: it is down, so 503, never 500.
    for params in ({}, {"format": "csv"}):
        down = assert_problem(get(s.base, cdrs_path(TENANT, **params), s.tokens["good"]), 503)
        assert down["title"] == "Storage unavailable"
    assert get(s.base, "/healthz").status == 200
    not_ready = get(s.base, "/readyz")
    assert not_ready.status == 503
    assert not_ready.json()["status"] == "not ready"
    assert not_ready.json()["checks"]["redis"].startswith("redis unreachable")


# ------------------------------------------------------------------------------- records


def test_json_page_shape_and_headers(loaded: Server) -> None:
    answer = get(loaded.base, cdrs_path(TENANT, limit="3"), loaded.tokens["good"])
    assert answer.status == 200
    assert answer.headers["Cache-Control"] == "no-store"
    page = answer.json()
    assert page["next_cursor"]
    newest = sorted(DATA, key=lambda r: (r.started_at_ms, r.id), reverse=True)[0]
    first = page["records"][0]
    assert list(first) == [
        "id", "call_id", "started_at", "started_at_local", "answered_at", "ended_at",
        "duration", "source", "source_raw", "destination", "destination_raw", "extension",
        "direction", "disposition",
    ]  # fmt: skip
    assert first["id"] == newest.id
    assert first["started_at"] == format_utc(newest.started_at_ms)
    assert first["started_at_local"] == format_local(
        newest.started_at_ms, ZoneInfo("Europe/Amsterdam")
    )


def test_paging_covers_every_record_once_newest_first(loaded: Server) -> None:
    records = all_pages(loaded, TENANT, limit=97)
    assert [r["id"] for r in records] == expected_ids(DATA)


async def test_paging_while_records_arrive_neither_skips_nor_repeats(loaded: Server) -> None:
    tenant = f"busy-{SUFFIX}"
    token, _ = issue_token(
        loaded.settings.access_file, partner="busy-partner", tenants=[tenant], airtime_reseller=True
    )
    start = now_ms()
    initial = [make_record(tenant, n, start - (n + 1) * 60_000) for n in range(300)]
    await _write(loaded.settings, initial)
    deadline = time.monotonic() + 10
    while get(loaded.base, cdrs_path(tenant), token).status != 200:  # the token is picked up
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)

    seen: list[str] = []
    cursor = None
    n = 1_000
    for _ in range(100):
        extra = {"cursor": cursor} if cursor else {}
        answer = get(loaded.base, cdrs_path(tenant, limit="25", **extra), token)
        assert answer.status == 200, answer.body
        page = answer.json()
        seen.extend(r["id"] for r in page["records"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        # New calls arrive between pages: newer than all, and late ones inside the window.
        arriving = [
            make_record(tenant, n, now_ms() - 10),
            make_record(tenant, n + 1, start - random.randrange(1, 300) * 60_000 - 30_000),
        ]
        n += 2
        await _write(loaded.settings, arriving)
    assert cursor is None
    assert len(seen) == len(set(seen)), "a record was repeated"
    assert {r.id for r in initial} <= set(seen), "a record present from the start was skipped"


FILTERS: dict[str, tuple[dict[str, str], Any]] = {
    "direction": ({"direction": "inbound"}, lambda r: r.direction == "inbound"),
    "extension": ({"extension": "310"}, lambda r: r.extension == "310"),
    "extension 0": ({"extension": "0"}, lambda r: r.extension == "0"),
    "number e164": (
        {"number": "+31201234567"},
        lambda r: "+31201234567" in (r.source, r.destination),
    ),
    "number national": (
        {"number": "020 123 4567"},
        lambda r: "+31201234567" in (r.source, r.destination),
    ),
    "number prefix": (
        {"number": "+3120"},
        lambda r: r.source.startswith("+3120") or r.destination.startswith("+3120"),
    ),
    "from/to": (
        {
            "from": format_utc(NOW_MS - 3 * DAY_MS),
            "to": format_local(NOW_MS - 2 * DAY_MS, ZoneInfo("Asia/Tokyo")),
        },
        lambda r: NOW_MS - 3 * DAY_MS <= r.started_at_ms <= NOW_MS - 2 * DAY_MS,
    ),
    "combined": (
        {"direction": "outbound", "extension": "202", "number": "+31"},
        lambda r: (
            r.direction == "outbound"
            and r.extension == "202"
            and (r.source.startswith("+31") or r.destination.startswith("+31"))
        ),
    ),
}


@pytest.mark.parametrize("name", list(FILTERS))
def test_each_filter(loaded: Server, name: str) -> None:
    params, keep = FILTERS[name]
    expected = expected_ids([r for r in DATA if keep(r)])
    assert expected, "the data set should exercise the filter"
    assert [r["id"] for r in all_pages(loaded, TENANT, limit=300, **params)] == expected


def test_times_far_outside_the_window_are_clamped_by_the_store(loaded: Server) -> None:
    """The API passes any RFC 3339 instant on; the store clamps it (the one place)."""
    ages = {"from": "0001-01-01T00:00:00Z", "to": "9999-12-31T23:59:59.999-23:59"}
    assert [r["id"] for r in all_pages(loaded, TENANT, **ages)] == expected_ids(DATA)
    before_1970 = {"from": "0001-01-01T00:00:00Z", "to": "1969-12-31T23:59:59.999Z"}
    assert all_pages(loaded, TENANT, **before_1970) == []
    assert all_pages(loaded, TENANT, **{"from": "9999-12-31T00:00:00Z"}) == []
    answer = get(loaded.base, cdrs_path(TENANT, format="csv", **ages), loaded.tokens["good"])
    assert answer.status == 200 and answer.body.count(b"\r\n") == len(DATA) + 1


# ------------------------------------------------------------------------------- CSV


def read_csv(answer: Answer) -> list[list[str]]:
    return list(csv.reader(io.StringIO(answer.body.decode("utf-8"), newline="")))


def test_csv_export_streams_every_record_with_a_header(loaded: Server) -> None:
    amsterdam = ZoneInfo("Europe/Amsterdam")
    days = {datetime.now(amsterdam).date().isoformat()}
    answer = get(loaded.base, cdrs_path(TENANT, format="csv", limit="5"), loaded.tokens["good"])
    days.add(datetime.now(amsterdam).date().isoformat())  # the request may straddle midnight
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/csv")
    assert answer.headers["Transfer-Encoding"] == "chunked"
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["Content-Disposition"] in {
        f'attachment; filename="cdrs-{TENANT}-{day}.csv"' for day in days
    }
    rows = read_csv(answer)
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == len(DATA) + 1  # no page limit
    by_id = {r.id: r for r in DATA}
    assert [row[0].lstrip("'") for row in rows[1:]] == expected_ids(DATA)
    row = dict(zip(CSV_COLUMNS, rows[1], strict=True))
    record = by_id[row["id"].lstrip("'")]
    assert row["started_at_utc"] == format_utc(record.started_at_ms)
    assert row["started_at_local"] == format_local(record.started_at_ms, amsterdam)
    assert row["ended_at_local"] == format_local(record.ended_at_ms, amsterdam)
    assert row["source"] == "'" + record.source  # text, not a number, in a spreadsheet
    assert row["duration"] == str(record.duration)


def test_csv_applies_filters(loaded: Server) -> None:
    answer = get(
        loaded.base,
        cdrs_path(TENANT, direction="inbound", number="+3120"),
        loaded.tokens["good"],
        Accept="text/csv",
    )
    rows = read_csv(answer)
    expected = [
        r for r in DATA if r.direction == "inbound" and "+3120" in (r.source[:5], r.destination[:5])
    ]
    assert len(rows) - 1 == len(expected)


# ------------------------------------------------------------------------------- problems


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-11-25T10:00:00"}, "to"),
        ({"from": "2026-11-25T10:00:00Z", "to": "2026-11-25T09:00:00Z"}, "from"),
        ({"direction": "sideways"}, "direction"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"number": "call me"}, "number"),
        ({"format": "xlsx"}, "format"),
        ({"colour": "blue"}, "colour"),
        ({"cursor": "forged-cursor"}, "cursor"),
    ],
)
def test_bad_parameters_are_400_problems_naming_the_parameter(
    loaded: Server, params: dict[str, str], name: str
) -> None:
    body = assert_problem(get(loaded.base, cdrs_path(TENANT, **params), loaded.tokens["good"]), 400)
    assert name in [p["name"] for p in body["invalid_params"]]


def test_tampered_cursor_is_a_400(loaded: Server) -> None:
    page = get(loaded.base, cdrs_path(TENANT, limit="5"), loaded.tokens["good"]).json()
    cursor = page["next_cursor"]
    flipped = cursor[:-3] + ("A" if cursor[-3] != "A" else "B") + cursor[-2:]
    body = assert_problem(
        get(loaded.base, cdrs_path(TENANT, limit="5", cursor=flipped), loaded.tokens["good"]), 400
    )
    assert [p["name"] for p in body["invalid_params"]] == ["cursor"]
    # and a genuine cursor still works
    assert (
        get(loaded.base, cdrs_path(TENANT, limit="5", cursor=cursor), loaded.tokens["good"]).status
        == 200
    )


@pytest.mark.parametrize(
    "path",
    [
        "/nope",
        "/v1/tenants/acme/cdrs/extra",
        "/v1/tenants/" + "x" * 65 + "/cdrs",
        "/v1/tenants/a%20b/cdrs",
        "/v1/tenants//cdrs",
        "/static/../openapi.json.bak",
        "/static/other.js",
    ],
)
def test_unknown_paths_are_404_problems(loaded: Server, path: str) -> None:
    assert_problem(get(loaded.base, path, loaded.tokens["good"]), 404)


def test_other_methods_are_405_problems(loaded: Server) -> None:
    request = urllib.request.Request(loaded.base + cdrs_path(TENANT), method="DELETE")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    answer = Answer(caught.value.code, dict(caught.value.headers.items()), caught.value.read())
    assert_problem(answer, 405)
    assert answer.headers["Allow"] == "GET, HEAD"


_QUERY_CHARS = st.characters(codec="utf-8", exclude_categories=("Cs",))
_QUERY_VALUES = st.one_of(
    st.text(_QUERY_CHARS, max_size=40),
    st.sampled_from(["", "0", "-1", "1001", "inbound", "csv", "+3120", "2026-11-25T08:00:00Z"]),
)
_QUERY_NAMES = st.one_of(
    st.sampled_from(
        ["from", "to", "direction", "extension", "number", "limit", "cursor", "format"]
    ),
    st.text(_QUERY_CHARS, max_size=12),
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    pairs=st.lists(st.tuples(_QUERY_NAMES, _QUERY_VALUES), max_size=6),
    raw=st.binary(max_size=30),
    accept=st.sampled_from([None, "text/csv", "*/*", "text/csv;q=x", "application/json;q=0.1"]),
)
def test_fuzzed_query_strings_never_answer_500(
    loaded: Server, pairs: list[tuple[str, str]], raw: bytes, accept: str | None
) -> None:
    query = urllib.parse.urlencode(pairs)
    raw_part = urllib.parse.quote_from_bytes(raw, safe="=&")
    path = f"/v1/tenants/{TENANT}/cdrs?{query}&{raw_part}"
    headers = {"Accept": accept} if accept else {}
    answer = get(loaded.base, path, loaded.tokens["good"], **headers)
    assert answer.status in (200, 400), (path, answer.status, answer.body[:300])


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(segments=st.lists(st.binary(min_size=1, max_size=20), min_size=1, max_size=5))
def test_fuzzed_paths_never_answer_500(loaded: Server, segments: list[bytes]) -> None:
    path = "/" + "/".join(urllib.parse.quote_from_bytes(s, safe="") for s in segments)
    answer = get(loaded.base, path, loaded.tokens["good"])
    assert answer.status < 500, (path, answer.status, answer.body[:300])


# ------------------------------------------------------------------------------- the rest


def test_page_and_security_headers(loaded: Server) -> None:
    for path in ("/", f"/tenants/{TENANT}"):
        answer = get(loaded.base, path)
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/html")
        assert b'<table id="cdrs">' in answer.body
        csp = answer.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["Referrer-Policy"] == "no-referrer"
    for path, kind in (("/static/app.js", "text/javascript"), ("/static/app.css", "text/css")):
        answer = get(loaded.base, path)
        assert answer.status == 200 and answer.headers["Content-Type"].startswith(kind)


def test_config(loaded: Server) -> None:
    config = get(loaded.base, "/v1/config").json()
    assert config["display_tz"] == "Europe/Amsterdam"
    assert config["display_tz_label"] == "CET/CEST"
    assert config["max_limit"] == 1000


def test_health_readiness_metrics(loaded: Server) -> None:
    assert get(loaded.base, "/healthz").json() == {"status": "ok"}
    ready = get(loaded.base, "/readyz")
    assert ready.status == 200 and ready.json()["status"] == "ready"
    get(loaded.base, cdrs_path(TENANT))  # at least one 401 to count
    metrics = get(loaded.base, "/metrics")
    assert metrics.status == 200
    assert metrics.headers["Content-Type"].startswith("text/plain")
    text = metrics.body.decode()
    assert (
        'cdrstream_api_requests_total{method="GET",route="/v1/tenants/{tenant_id}/cdrs",status="401"}'
        in text
    )


def _same_but_body(get_: Answer, head: Answer, what: str) -> None:
    assert head.status == get_.status, (what, head.status, get_.status)
    assert head.body == b"", what
    for name in ("Content-Type", "Content-Disposition", "Cache-Control", "WWW-Authenticate"):
        assert head.headers.get(name) == get_.headers.get(name), (what, name)
    assert head.headers["X-Content-Type-Options"] == "nosniff", what
    assert "default-src 'none'" in head.headers["Content-Security-Policy"], what


def test_head_answers_on_every_get_route_like_get_without_a_body(loaded: Server) -> None:
    """Monitoring probes use HEAD: every GET route answers it, with GET's status and
    headers (a 405 before), the tenant route after the same checks as GET."""
    from cdrstream.api.routes import ROUTES

    token = loaded.tokens["good"]
    cases = [(route.path.replace("{tenant_id}", TENANT), token) for route in ROUTES]
    cases += [
        (cdrs_path(TENANT, format="csv"), token),
        (cdrs_path(TENANT, limit="5", direction="inbound"), token),
        (cdrs_path(TENANT), None),  # 401
        (cdrs_path(OTHER), token),  # 403
        (cdrs_path(TENANT, limit="0"), token),  # 400
        (cdrs_path(TENANT, format="csv", limit="x"), token),  # 400
        ("/nope", token),  # 404
    ]
    assert {"/healthz", "/readyz", "/metrics"} <= {path for path, _ in cases}
    for path, tok in cases:
        _same_but_body(get(loaded.base, path, tok), call("HEAD", loaded.base, path, tok), path)
    # A HEAD of an export streams nothing and is no export: the partner's share is intact.
    for _ in range(10):
        assert call("HEAD", loaded.base, cdrs_path(TENANT, format="csv"), token).status == 200
    metrics = get(loaded.base, "/metrics").body.decode()
    assert "\ncdrstream_api_csv_exports 0.0\n" in metrics
    assert 'method="HEAD",route="/healthz",status="200"' in metrics


def test_head_on_readyz_says_not_ready_when_redis_is_down(dead_redis_server: Server) -> None:
    s = dead_redis_server
    _same_but_body(get(s.base, "/readyz"), call("HEAD", s.base, "/readyz"), "/readyz")
    assert call("HEAD", s.base, "/readyz").status == 503
    assert call("HEAD", s.base, "/healthz").status == 200


def test_openapi_matches_what_the_server_accepts(loaded: Server) -> None:
    document = get(loaded.base, "/openapi.json").json()
    assert document["openapi"].startswith("3.2")
    documented = document["paths"]
    # Every documented route answers (nothing documented is a 404) ...
    for path, item in documented.items():
        assert list(item) == ["get", "head"]
        concrete = path.replace("{tenant_id}", TENANT)
        answer = get(loaded.base, concrete, loaded.tokens["good"])
        assert answer.status == 200, (path, answer.status, answer.body[:200])
        assert call("HEAD", loaded.base, concrete, loaded.tokens["good"]).status == 200
        # ... and every documented query parameter is accepted with its example.
        for param in item["get"].get("parameters", []):
            if param["in"] == "query" and "example" in param:
                query = urllib.parse.urlencode({param["name"]: param["example"]})
                answer = get(loaded.base, f"{concrete}?{query}", loaded.tokens["good"])
                assert answer.status == 200, (path, param["name"], answer.body[:300])
    # An undocumented query parameter is refused.
    answer = get(loaded.base, cdrs_path(TENANT, undocumented="1"), loaded.tokens["good"])
    assert_problem(answer, 400)


def test_token_command_prints_the_token_once(loaded: Server, tmp_path: Path) -> None:
    env = settings_env(replace(loaded.settings, access_file=str(tmp_path / "access.json")))
    issued = subprocess.run(
        [sys.executable, "-m", "cdrstream", "token", "issue", "--partner", "cli-partner",
         "--tenants", f"{TENANT},{EMPTY}", "--airtime-reseller"],
        env=env, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    token = issued.stdout.strip()
    assert token.startswith("cdrs_") and "\n" not in token
    assert "only time" in issued.stderr
    assert token not in (tmp_path / "access.json").read_text()
    listed = subprocess.run(
        [sys.executable, "-m", "cdrstream", "token", "list"],
        env=env, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert "cli-partner" in listed.stdout and token not in listed.stdout
    masked = subprocess.run(
        [sys.executable, "-m", "cdrstream", "token", "issue", "--partner", "cli-noc",
         "--tenants", TENANT, "--airtime-reseller", "--mask"],
        env=env, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert "numbers masked" in masked.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "cdrstream", "token", "list"],
        env=env, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    rows = {line.split()[1]: line.split() for line in listed.stdout.splitlines()}
    assert "masked-numbers" in rows["cli-noc"] and "full-numbers" in rows["cli-partner"]
    revoked = subprocess.run(
        [sys.executable, "-m", "cdrstream", "token", "revoke", "--partner", "cli-partner"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert revoked.returncode == 0 and "revoked" in revoked.stdout


async def test_csv_cut_off_by_redis_is_an_incomplete_download_and_recovers(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Redis stops mid-export: the client must see a broken transfer, never a short file
    that looks complete; once Redis is back the API answers again without a restart."""
    import aiohttp

    work = tmp_path_factory.mktemp("api-cut")
    node = RedisNode(base_dir=work / "redis", port=free_port(), extra_args=("--appendonly", "no"))
    node.up()
    settings_ = _settings(node.url, work)
    tokens = _issue_tokens(settings_.access_file)
    records = [make_record(TENANT, n, NOW_MS - (n + 1) * 1_000) for n in range(60_000)]
    process: RoleProcess | None = None
    try:
        await _write(settings_, records)
        process = _start(settings_, work)
        base = f"http://127.0.0.1:{settings_.api_port}"
        headers = {"Authorization": f"Bearer {tokens['good']}"}
        received = 0
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{base}{cdrs_path(TENANT, format='csv')}", headers=headers) as answer,
        ):
            assert answer.status == 200
            first = await answer.content.read(1 << 16)
            received += first.count(b"\n")
            # ~16 MB of CSV: the server is now held up by the unread socket buffers.
            await asyncio.to_thread(node.down)
            with pytest.raises(aiohttp.ClientPayloadError):
                async for chunk in answer.content.iter_chunked(1 << 16):
                    received += chunk.count(b"\n")
        assert 0 < received < len(records) + 1
        down = await asyncio.to_thread(get, base, cdrs_path(TENANT), tokens["good"])
        assert_problem(down, 503)

        await asyncio.to_thread(node.up)
        await _write(settings_, records[:10])
        deadline = time.monotonic() + 30
        while (await asyncio.to_thread(get, base, "/readyz")).status != 200:
            assert time.monotonic() < deadline, "not ready again 30 s after Redis came back"
            await asyncio.sleep(0.2)
        again = await asyncio.to_thread(get, base, cdrs_path(TENANT, limit="10"), tokens["good"])
        assert again.status == 200 and len(again.json()["records"]) == 10
    finally:
        if process is not None:
            _stop(process)
        node.down()
