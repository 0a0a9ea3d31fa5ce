"""Revoking a token reaches the answers it has open: a live stream and a CSV export of the
revoked token end, and deliver nothing written after the API saw the revocation.

`cdrstream api` as a child process on the suite's Redis, with its default heartbeat (15 s):
before streams checked their token on their own, a live stream learnt of a revocation at
its next heartbeat (it delivered 8 records in 11 s after one), and an export never did.
"When the API saw it" is told from outside by a new request with the token answering 401:
requests and open answers read the same access store, so from then on no write may pass.
No timed assertions: every wait has a generous bound that only turns a hang into a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import aiohttp
import pytest

from cdrstream.access.access_store import issue_token, revoke_tokens
from cdrstream.core.clock import now_ms
from cdrstream.settings import Settings
from cdrstream.stack.redis_server import RedisNode
from cdrstream.stack.roles import RoleProcess, settings_env
from tests.integration.test_api import _settings, _stop, _write, make_record
from tests.integration.test_live_api import Stream, make, write

pytestmark = pytest.mark.integration

SUFFIX = uuid.uuid4().hex[:6]
LIVE_TENANT = f"revoke-live-{SUFFIX}"
CSV_TENANT = f"revoke-csv-{SUFFIX}"
CSV_RECORDS = 20_000  # ~7 MB of CSV: read slowly, an export lasts long enough to revoke
WAIT_S = 60.0


@dataclass
class Api:
    base: str
    settings: Settings
    process: RoleProcess


@pytest.fixture(scope="module")
def api(redis_node: RedisNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    work = tmp_path_factory.mktemp("revocation")
    settings = _settings(redis_node.url, work)
    records = [make_record(CSV_TENANT, n, now_ms() - (n + 1) * 1_000) for n in range(CSV_RECORDS)]
    asyncio.run(_write(settings, records))
    process = RoleProcess(["api"], env=settings_env(settings), log_file=work / "api.log")
    process.start().wait_http(f"http://127.0.0.1:{settings.api_port}/healthz", timeout_s=60)
    yield Api(f"http://127.0.0.1:{settings.api_port}", settings, process)
    _stop(process)
    log = (work / "api.log").read_text()
    assert '"level":"error"' not in log, process.log_tail(20)


def issue(api: Api, partner: str, tenant: str) -> str:
    token, _ = issue_token(
        api.settings.access_file, partner=partner, tenants=[tenant], airtime_reseller=True
    )
    return token


async def wait_for(
    status: int, session: aiohttp.ClientSession, api: Api, tenant: str, token: str
) -> None:
    """Until a new request with ``token`` answers ``status``: 200 once the API has seen the
    token issued, 401 once it has seen it revoked."""
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{api.base}/v1/tenants/{tenant}/cdrs?limit=1"
    async with asyncio.timeout(WAIT_S):
        while True:
            async with session.get(url, headers=headers) as answer:
                if answer.status == status:
                    return
            await asyncio.sleep(0.05)


async def test_a_revoked_tokens_live_stream_ends_and_delivers_nothing_after_the_revocation(
    api: Api,
) -> None:
    token = issue(api, f"live-{SUFFIX}", LIVE_TENANT)
    written: list[str] = []  # record ids, in the order their writes began
    seen_at: int | None = None  # len(written) when the API was seen refusing the token

    async def keep_writing(stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():
            record = make(LIVE_TENANT, n)
            # Listed before it is written: a record listed after ``seen_at`` was surely
            # written after the refusal was seen (listed once written, one stored just before
            # could be listed just after, and its legitimate delivery would fail the test).
            written.append(record.id)
            await write(api.settings, [record])
            n += 1
            await asyncio.sleep(0.05)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
        await wait_for(200, session, api, LIVE_TENANT, token)
        headers = {"Authorization": f"Bearer {token}"}
        response = await session.get(
            f"{api.base}/v1/tenants/{LIVE_TENANT}/cdrs/live", headers=headers
        )
        assert response.status == 200
        stream = Stream(response)
        await stream.until("ready")
        stop = asyncio.Event()
        writing = asyncio.create_task(keep_writing(stop))
        try:
            await stream.records(5)  # records flow
            revoke_tokens(api.settings.access_file, partner=f"live-{SUFFIX}")
            await wait_for(401, session, api, LIVE_TENANT, token)
            seen_at = len(written)
            received: list[str] = []
            with contextlib.suppress(aiohttp.ClientPayloadError):  # the API cut the stream
                while (event := await stream.next()) is not None:  # bounded by WAIT_S
                    if event.name == "record":
                        received.append(event.data["id"])
            async with asyncio.timeout(WAIT_S):  # records go on being written meanwhile
                while len(written) < seen_at + 10:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
        finally:
            stop.set()
            await writing
            response.close()
    after = set(written[seen_at:])
    assert after, "records were written after the revocation was seen"
    assert [rid for rid in received if rid in after] == []


async def test_a_revoked_tokens_csv_export_is_cut_off(api: Api) -> None:
    """The client (a raw socket with a 4 KiB receive buffer, so the API cannot push the
    export ahead into kernel buffers) reads a little, the token is revoked, and once the
    API refuses it the client reads on to the end: the export is cut (no last chunk)."""
    token = issue(api, f"csv-{SUFFIX}", CSV_TENANT)
    async with aiohttp.ClientSession() as session:
        await wait_for(200, session, api, CSV_TENANT, token)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(WAIT_S)
        try:
            sock.connect(("127.0.0.1", api.settings.api_port))
            sock.sendall(
                f"GET /v1/tenants/{CSV_TENANT}/cdrs?format=csv HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {token}\r\n\r\n".encode()
            )
            received = sock.recv(1 << 16)
            assert received.startswith(b"HTTP/1.1 200 "), received[:300]
            revoke_tokens(api.settings.access_file, partner=f"csv-{SUFFIX}")
            await wait_for(401, session, api, CSV_TENANT, token)
            with contextlib.suppress(ConnectionResetError):  # an abort may reset
                while chunk := await asyncio.to_thread(sock.recv, 1 << 16):
                    received += chunk
        finally:
            sock.close()
    assert not received.endswith(b"\r\n0\r\n\r\n"), (
        f"the export of a revoked token ran to its end ({len(received)} bytes)"
    )
