"""CSV exports whose clients never read: memory stays bounded, a partner cannot hold more
than its share of exports (429 with Retry-After), a stalled client is disconnected after
the write timeout, a client that goes away is an INFO line, not an ERROR, and SIGTERM
ends the process within its promised bound whatever the clients do.

A stalled client is a raw socket with a 4 KiB receive buffer that sends its request and
never reads. The tenant has ~20 MB of CSV, far more than the kernel buffers of a socket
pair hold, so every such export really stalls in the API.
"""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from cdrstream.access.access_store import issue_token
from cdrstream.access.tokens import parse_token
from cdrstream.api.exports import DEFAULT_EXPORTS_PER_PARTNER
from cdrstream.api.server import SHUTDOWN_TIMEOUT_S
from cdrstream.settings import Settings
from cdrstream.stack.redis_server import RedisNode
from cdrstream.stack.roles import RoleProcess, settings_env
from cdrstream.store.live import live_key
from tests.integration.test_api import (
    NOW_MS,
    _settings,
    _stop,
    _write,
    assert_problem,
    cdrs_path,
    get,
    make_record,
)

pytestmark = [pytest.mark.integration, pytest.mark.fault]

SUFFIX = uuid.uuid4().hex[:6]
TENANT = f"slow-{SUFFIX}"
RECORDS = 60_000  # ~20 MB of CSV
PER_PARTNER = DEFAULT_EXPORTS_PER_PARTNER  # 8
PARTNERS = 8
STALLED = PER_PARTNER * PARTNERS  # 64
#: What the API may grow by with STALLED stalled exports: a stalled export holds at most two
#: read steps (the current one and the next day's, read ahead: 2 x 1,024 decoded rows) and
#: its write buffer; measured ~2.4 MB each with the tiered store (60 -> 213 MB for 64),
#: whatever the export's size (here ~20 MB each); it was ~4.7 MB each and growing with the
#: export before exports were bounded (116 -> 343 MB).
GROWTH_BOUND_MB = 3.0 * STALLED


@dataclass
class Api:
    base: str
    port: int
    process: RoleProcess
    settings: Settings
    tokens: list[str]  # one per partner
    spare: str  # a partner with no stalled export


def _issue(settings: Settings) -> tuple[list[str], str]:
    tokens = [
        issue_token(
            settings.access_file, partner=f"slow-p{n}", tenants=[TENANT], airtime_reseller=True
        )[0]
        for n in range(PARTNERS)
    ]
    spare, _ = issue_token(
        settings.access_file, partner="slow-spare", tenants=[TENANT], airtime_reseller=True
    )
    return tokens, spare


@pytest.fixture(scope="module")
def loaded_redis(redis_node: RedisNode) -> RedisNode:
    records = [make_record(TENANT, n, NOW_MS - (n + 1) * 1_000) for n in range(RECORDS)]
    asyncio.run(_write(_settings(redis_node.url, Path("/nonexistent")), records))
    return redis_node


def _api(redis: RedisNode, work: Path, *flags: str) -> Iterator[Api]:
    settings = _settings(redis.url, work)
    tokens, spare = _issue(settings)
    process = RoleProcess(["api", *flags], env=settings_env(settings), log_file=work / "api.log")
    process.start().wait_http(f"http://127.0.0.1:{settings.api_port}/healthz", timeout_s=60)
    try:
        yield Api(
            f"http://127.0.0.1:{settings.api_port}",
            settings.api_port,
            process,
            settings,
            tokens,
            spare,
        )
    finally:
        _stop(process)


@pytest.fixture
def patient_api(loaded_redis: RedisNode, tmp_path: Path) -> Iterator[Api]:
    """Stalled clients are waited for long enough to measure them."""
    yield from _api(loaded_redis, tmp_path, "--csv-write-timeout", "600")


@pytest.fixture
def impatient_api(loaded_redis: RedisNode, tmp_path: Path) -> Iterator[Api]:
    """Stalled clients are disconnected after 2 s."""
    yield from _api(loaded_redis, tmp_path, "--csv-write-timeout", "2")


def stalled_request(port: int, target: str, token: str, extra_headers: str = "") -> socket.socket:
    """A GET of ``target`` from a client that never reads (a 4 KiB receive buffer)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    request = (
        f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {token}\r\n{extra_headers}\r\n"
    )
    sock.sendall(request.encode())
    return sock


def stalled_export(port: int, token: str) -> socket.socket:
    return stalled_request(port, cdrs_path(TENANT, format="csv"), token)


def rss_mb(process: RoleProcess) -> float:
    assert process.proc is not None
    status = Path(f"/proc/{process.proc.pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    assert match
    return int(match.group(1)) / 1024


def gauge(base: str, name: str) -> float:
    with urllib.request.urlopen(f"{base}/metrics", timeout=30) as answer:
        text = answer.read().decode()
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} is missing"
    return float(match.group(1))


def exports_in_progress(base: str) -> float:
    return gauge(base, "cdrstream_api_csv_exports")


def wait_for(what: str, check, timeout_s: float = 90.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout_s:.0f} s: {what}"
        time.sleep(0.2)


def full_export(api: Api, token: str) -> int:
    answer = get(api.base, cdrs_path(TENANT, format="csv"), token)
    assert answer.status == 200, answer.body[:300]
    return answer.body.count(b"\r\n") - 1


def test_stalled_exports_hold_bounded_memory_and_a_partner_its_share(patient_api: Api) -> None:
    api = patient_api
    assert full_export(api, api.spare) == RECORDS  # warm: caches, allocator, pool
    baseline = rss_mb(api.process)

    sockets = [stalled_export(api.port, token) for token in api.tokens for _ in range(PER_PARTNER)]
    try:
        wait_for(f"{STALLED} exports running", lambda: exports_in_progress(api.base) == STALLED)
        peak = 0.0
        for _ in range(10):  # while every export runs into its full buffers
            time.sleep(0.3)
            peak = max(peak, rss_mb(api.process))
        assert peak - baseline < GROWTH_BOUND_MB, (baseline, peak)

        # One more export of a partner that runs its share: 429, a problem, Retry-After.
        refused = get(api.base, cdrs_path(TENANT, format="csv"), api.tokens[0])
        body = assert_problem(refused, 429)
        assert body["type"].endswith("/too-many-exports")
        assert int(refused.headers["Retry-After"]) > 0
        # ... also when asked for with Accept: text/csv.
        assert_problem(get(api.base, cdrs_path(TENANT), api.tokens[0], Accept="text/csv"), 429)
        # Its JSON pages are not limited, and another partner exports in full meanwhile.
        assert get(api.base, cdrs_path(TENANT, limit="5"), api.tokens[0]).status == 200
        assert full_export(api, api.spare) == RECORDS

        # The partner's stalled clients go away: its share is free again.
        for sock in sockets[:PER_PARTNER]:
            sock.close()
        wait_for(
            "a freed share accepting an export",
            lambda: get(api.base, cdrs_path(TENANT, format="csv"), api.tokens[0]).status == 200,
        )
    finally:
        for sock in sockets:
            sock.close()
    wait_for("every export ended", lambda: exports_in_progress(api.base) == 0)

    log = api.process.log_file.read_text()
    assert log.count("client went away") >= STALLED
    assert '"level":"error"' not in log, api.process.log_tail(20)
    # The 429s, the exports and the clients that went away left no token and no number.
    for token in [*api.tokens, api.spare]:
        assert parse_token(token)[1] not in log
    numbers = ("+31201234567", "+31612345678")  # every record's numbers (make_record)
    forms = {f for n in numbers for f in (n, n[1:], "0" + n[3:], "%2B" + n[1:])}
    assert sorted(f for f in forms if f in log) == []


def test_a_stalled_client_is_disconnected_after_the_write_timeout(impatient_api: Api) -> None:
    api = impatient_api
    sockets = [stalled_export(api.port, token) for token in api.tokens[:3] for _ in range(2)]
    try:
        wait_for(
            "every stalled export closed by the API",
            lambda: api.process.log_file.read_text().count("client read nothing for") == 6,
        )
        # the API logs the line, then counts the export out
        wait_for("every closed export counted out", lambda: exports_in_progress(api.base) == 0)
        for sock in sockets:
            # The API closed the connection: reading ends (EOF or reset), it never blocks,
            # and what arrived is not a complete chunked answer.
            sock.settimeout(30)
            received = b""
            try:
                while chunk := sock.recv(1 << 16):
                    received += chunk
            except ConnectionResetError:
                pass
            assert not received.endswith(b"\r\n0\r\n\r\n")
    finally:
        for sock in sockets:
            sock.close()
    # The partners can export again, and in full.
    assert full_export(api, api.tokens[0]) == RECORDS
    log = api.process.log_file.read_text()
    assert '"level":"error"' not in log, api.process.log_tail(20)


def test_sigterm_exits_within_the_promised_bound_whatever_the_clients_do(
    patient_api: Api,
) -> None:
    """docs/api.md promises an exit within SHUTDOWN_TIMEOUT_S of SIGTERM; with one stalled
    export it took 23.4 s. The deadline below is that promise with half again as slack for
    a loaded machine: the bound measured is the product's promise, not its speed."""
    api = patient_api
    first = redis.Redis(port=int(api.settings.redis_url.rsplit(":", 1)[1].split("/")[0]))
    try:
        [(first_id, _)] = first.xrange(live_key(TENANT), count=1)
    finally:
        first.close()
    sockets = [stalled_export(api.port, token) for token in api.tokens[:2]]
    live = f"/v1/tenants/{TENANT}/cdrs/live"  # replaying the whole backlog
    sockets.append(
        stalled_request(api.port, live, api.spare, f"Last-Event-ID: {first_id.decode()}\r\n")
    )
    slow = socket.create_connection(("127.0.0.1", api.port))
    slow.sendall(b"GET /healthz HTTP/1.1\r\nX-Slow: ")  # headers never completed
    sockets.append(slow)
    try:
        wait_for("2 exports running", lambda: exports_in_progress(api.base) == 2)
        wait_for("the live stream open", lambda: gauge(api.base, "cdrstream_api_live_streams") == 1)
        assert api.process.proc is not None
        api.process.proc.send_signal(signal.SIGTERM)
        try:
            code = api.process.proc.wait(timeout=SHUTDOWN_TIMEOUT_S * 1.5)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {SHUTDOWN_TIMEOUT_S * 1.5:.0f} s after SIGTERM")
        assert code == 0, api.process.log_tail(20)
    finally:
        for sock in sockets:
            sock.close()
    assert '"level":"error"' not in api.process.log_file.read_text(), api.process.log_tail(20)
