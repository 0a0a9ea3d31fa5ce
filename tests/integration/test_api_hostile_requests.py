"""Requests built to make the API leak: an over-long bearer token header, an over-long URL
full of phone numbers, too many headers, bytes that are not HTTP, and every 4xx the API
gives, each carrying a real token and numbers. Every answer must be
``application/problem+json`` with the right status, and afterwards the API's log (at
DEBUG, the most it ever says) must hold neither the token, nor its secret, nor any of the
numbers, in any of the forms the requests used.

The requests aiohttp cannot parse are sent on raw sockets: a client library would refuse
to send some of them, or would change them on the way.
"""

from __future__ import annotations

import http.client
import random
import socket
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from cdrstream.access.access_store import issue_token, revoke_tokens
from cdrstream.access.tokens import parse_token
from cdrstream.stack.redis_server import RedisNode
from cdrstream.stack.roles import RoleProcess
from tests.integration.test_api import (
    NOW_MS,
    Answer,
    _settings,
    _start,
    _stop,
    _write,
    assert_problem,
    cdrs_path,
    get,
    make_record,
)

pytestmark = pytest.mark.integration

SUFFIX = uuid.uuid4().hex[:6]
TENANT = f"hostile-{SUFFIX}"
OTHER = f"hostile-other-{SUFFIX}"
_rng = random.Random()
#: Numbers made for this run (random, so that a hit in the log cannot be a coincidence).
NUMBERS = [f"+3120{_rng.randrange(10**6, 10**7)}" for _ in range(6)]


def forms(number: str) -> list[str]:
    """Every way the requests below write a number: E.164, digits, national, encoded."""
    digits = number[1:]
    return [number, digits, "0" + digits[2:], urllib.parse.quote(number), "%2B" + digits]


@dataclass
class Hostile:
    base: str
    port: int
    process: RoleProcess
    log_file: Path
    token: str
    revoked: str
    other_partner: str
    masked: str


@pytest.fixture(scope="module")
def hostile(redis_node: RedisNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    import asyncio

    work = tmp_path_factory.mktemp("api-hostile")
    settings = replace(_settings(redis_node.url, work), log_level="DEBUG")
    token, _ = issue_token(
        settings.access_file, partner="hostile-partner", tenants=[TENANT], airtime_reseller=True
    )
    revoked, _ = issue_token(
        settings.access_file, partner="hostile-gone", tenants=[TENANT], airtime_reseller=True
    )
    revoke_tokens(settings.access_file, partner="hostile-gone")
    other, _ = issue_token(
        settings.access_file, partner="hostile-other", tenants=[OTHER], airtime_reseller=True
    )
    masked, _ = issue_token(
        settings.access_file,
        partner="hostile-noc",
        tenants=[TENANT],
        airtime_reseller=True,
        masked_numbers=True,
    )
    records = [
        make_record(TENANT, n, NOW_MS - (n + 1) * 60_000, number=NUMBERS[n % len(NUMBERS)])
        for n in range(50)
    ]
    asyncio.run(_write(settings, records))
    process = _start(settings, work)
    yield Hostile(
        f"http://127.0.0.1:{settings.api_port}",
        settings.api_port,
        process,
        process.log_file,
        token,
        revoked,
        other,
        masked,
    )
    _stop(process)


def raw(port: int, request: bytes) -> Answer:
    """Send ``request`` bytes as they are; read the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return Answer(response.status, dict(response.getheaders()), response.read())


def request_bytes(target: str, headers: list[tuple[str, str]], method: str = "GET") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", *(f"{n}: {v}" for n, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def secret_of(token: str) -> str:
    """The whole secret of ``token`` (which may hold ``_``), by the product's own parser."""
    parsed = parse_token(token)
    assert parsed is not None, "not a token"
    return parsed[1]


def assert_hardened_problem(answer: Answer, status: int) -> dict:
    body = assert_problem(answer, status)
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
    return body


def test_hostile_requests_answer_problems_and_leave_no_trace_in_the_log(
    hostile: Hostile,
) -> None:
    h = hostile
    token, number = h.token, NUMBERS[0]
    bearer = f"Bearer {token}"
    path = cdrs_path(TENANT)
    answers: dict[str, tuple[Answer, int]] = {}

    # -- what aiohttp itself cannot parse ---------------------------------------------
    long_token_header = bearer + "A" * 9000  # one header line over the limit
    answers["431 long Authorization"] = (
        raw(h.port, request_bytes(path, [("Authorization", long_token_header)])),
        431,
    )
    answers["431 long other header"] = (
        raw(
            h.port,
            request_bytes(path, [("Authorization", bearer), ("X-Caller", number * 1000)]),
        ),
        431,
    )
    answers["431 too many headers"] = (
        raw(
            h.port,
            request_bytes(
                path,
                [("Authorization", bearer)]
                + [(f"X-N{i}", f"{token} {number}") for i in range(200)],
            ),
        ),
        431,
    )
    long_query = urllib.parse.urlencode([("number", n) for n in NUMBERS] * 300)
    answers["414 long URL"] = (
        raw(h.port, request_bytes(f"{path}?{long_query}", [("Authorization", bearer)])),
        414,
    )
    answers["414 long path"] = (
        raw(h.port, request_bytes("/" + (number + "/") * 800, [("Authorization", bearer)])),
        414,
    )
    answers["400 bad header name"] = (
        raw(
            h.port,
            request_bytes(
                f"{path}?number={number}", [("Authorization", bearer), ("Bad Name", number)]
            ),
        ),
        400,
    )
    answers["400 not HTTP"] = (raw(h.port, f"{bearer} {number}\r\n\r\n".encode()), 400)
    answers["400 control bytes in URL"] = (
        raw(
            h.port,
            f"GET {path}?number={number}\x01 HTTP/1.1\r\nAuthorization: {bearer}\r\n\r\n".encode(),
        ),
        400,
    )

    # -- every 4xx of the application, with the token and numbers in them -------------
    answers["400 parameters"] = (
        get(h.base, cdrs_path(TENANT, number=f"call {number} now", limit=number), token),
        400,
    )
    answers["400 cursor"] = (get(h.base, cdrs_path(TENANT, cursor=number * 3), token), 400)
    answers["401 forged"] = (get(h.base, path, token[:-4] + "AAAA"), 401)
    answers["401 revoked"] = (get(h.base, cdrs_path(TENANT, number=number), h.revoked), 401)
    answers["401 not bearer"] = (get(h.base, path, None, Authorization=f"Basic {token}"), 401)
    answers["403"] = (get(h.base, cdrs_path(TENANT, number=number), h.other_partner), 403)
    answers["404 number as tenant"] = (get(h.base, f"/v1/tenants/{number}/cdrs", token), 404)
    answers["404 number in path"] = (get(h.base, f"/nope/{number}?number={number}", token), 404)
    delete = request_bytes(f"{path}?number={number}", [("Authorization", bearer)], "DELETE")
    answers["405"] = (raw(h.port, delete), 405)
    # ... and what succeeds, with records full of the numbers, must not be logged either.
    answers["200 page"] = (get(h.base, cdrs_path(TENANT, number=number[:6]), token), 200)
    answers["200 csv"] = (get(h.base, cdrs_path(TENANT, format="csv"), token), 200)
    # A token with masked numbers probing for them: refused, and never in the log either.
    for n, form in enumerate(forms(number)):
        quoted = urllib.parse.quote(form, safe="%")
        probe = get(h.base, f"{path}?number={quoted}", h.masked)
        answers[f"400 masked probe {n}"] = (probe, 400)
        probe = get(h.base, f"{path}?extension={quoted}", h.masked)
        answers[f"400 masked extension probe {n}"] = (probe, 400)
    masked_answers = {
        "200 masked page": get(h.base, cdrs_path(TENANT, limit="1000"), h.masked),
        "200 masked csv": get(h.base, cdrs_path(TENANT, format="csv"), h.masked),
        "200 masked country code": get(h.base, cdrs_path(TENANT, number="+31"), h.masked),
    }
    for name, answer in masked_answers.items():
        assert answer.status == 200, (name, answer.body[:200])
        text = answer.body.decode()
        shown = sorted({f for n in NUMBERS for f in forms(n) if f in text})
        assert shown == [], (name, shown)
        assert "\u2022" in text, name

    for name, (answer, status) in answers.items():
        if status == 200:
            assert answer.status == 200, (name, answer.body[:200])
            assert number.encode() in answer.body or number[1:].encode() in answer.body
            continue
        body = assert_hardened_problem(answer, status)
        assert token not in answer.body.decode(), name  # never echoed either
        if status in (414, 431):
            assert body["type"].endswith(("uri-too-long", "header-fields-too-large")), name

    # The API is still fine.
    assert get(h.base, "/healthz").status == 200

    log = h.log_file.read_text(errors="replace")
    secret = secret_of(token)
    assert token not in log and secret not in log and h.revoked not in log
    assert secret_of(h.masked) not in log
    leaked = sorted({f for n in NUMBERS for f in forms(n) if f in log})
    assert leaked == [], leaked
    # The log is not silent: every refusal and every answer left a line (without data).
    for status in ("400", "401", "403", "404", "405", "414", "431"):
        assert f" {status} " in log, f"no log line for a {status}"


def test_a_token_in_any_log_line_is_redacted() -> None:
    """The formatter's last line of defence, for a code path that would log a header."""
    import logging

    from cdrstream.access.tokens import new_token
    from cdrstream.observability.json_logs import JsonFormatter

    token_id, token = new_token()
    secret = secret_of(token)
    try:
        raise ValueError(f"bad header: Bearer {token}xyz")
    except ValueError as exc:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "got %s", (f"Bearer {token}",), (ValueError, exc, None)
        )
    line = JsonFormatter().format(record)
    assert secret not in line and secret[:20] not in line
    assert f"cdrs_{token_id}_[redacted]" in line


def test_a_parameter_given_hundreds_of_times_gets_a_small_problem(hostile: Hostile) -> None:
    h = hostile
    repeated = "&".join(["limit=1"] * 400)
    unknown = "&".join(f"x{n}=1" for n in range(400))
    for query, names in ((repeated, ["limit"]), (unknown, [f"x{n}" for n in range(10)])):
        answer = get(h.base, f"{cdrs_path(TENANT)}?{query}", h.token)
        body = assert_hardened_problem(answer, 400)
        assert len(answer.body) < 2_000, len(answer.body)
        assert [p["name"] for p in body["invalid_params"]] == names
        omitted = body.get("invalid_params_omitted", 0)
        assert len(body["invalid_params"]) + omitted == (1 if query == repeated else 400)
