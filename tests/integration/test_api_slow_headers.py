"""Slow clients cannot hold connections: `cdrstream api` as a child process.

- A connection that sends its request headers a byte a second is closed once
  ``HEADER_TIMEOUT_S`` (10 s) have passed, long before its headers are complete
  (before the deadline, 19,982 such connections were held until the process ran out of
  file descriptors, and new clients got empty answers). So is one that sends nothing.
- A kept-alive connection left idle is closed after the keep-alive timeout
  (``--keepalive-timeout``, 2 s here).
- Meanwhile the API answers other clients.

No timed assertions: the slow client's request is far longer than the deadline allows
(``SLOW_BYTES`` bytes at one a second), so "closed before the headers were complete" is
what the test asserts, whatever the machine's speed.
"""

from __future__ import annotations

import contextlib
import select
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from cdrstream.api.server import HEADER_TIMEOUT_S
from cdrstream.stack.redis_server import RedisNode
from cdrstream.stack.roles import RoleProcess, settings_env
from tests.integration.test_api import _settings, _stop

pytestmark = pytest.mark.integration

#: Bytes of the slow client's request, sent one a second: 4 times the deadline (and
#: fewer than the keep-alive timeout's seconds, which aiohttp applies from connecting).
SLOW_BYTES = int(4 * HEADER_TIMEOUT_S)
WAIT_S = 60.0


def _api(redis: RedisNode, work: Path, *flags: str) -> Iterator[tuple[int, Path]]:
    settings = _settings(redis.url, work)
    log_file = work / "api.log"
    process = RoleProcess(["api", *flags], env=settings_env(settings), log_file=log_file)
    process.start().wait_http(f"http://127.0.0.1:{settings.api_port}/healthz", timeout_s=60)
    yield settings.api_port, log_file
    _stop(process)
    assert '"level":"error"' not in log_file.read_text(), process.log_tail(20)


@pytest.fixture
def api(redis_node: RedisNode, tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """The default limits (aiohttp 3.14 also closes a connection that has sent no complete
    request within the keep-alive timeout of connecting: 75 s)."""
    yield from _api(redis_node, tmp_path)


@pytest.fixture
def short_keepalive_api(redis_node: RedisNode, tmp_path: Path) -> Iterator[tuple[int, Path]]:
    yield from _api(redis_node, tmp_path, "--keepalive-timeout", "2")


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed ``sock`` (EOF or reset), without blocking."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(1 << 16) == b""
    except ConnectionResetError:
        return True


def healthz(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30) as answer:
        return int(answer.status)


def test_a_client_sending_its_headers_a_byte_a_second_is_cut_off(
    api: tuple[int, Path],
) -> None:
    port, log_file = api
    start = b"GET /healthz HTTP/1.1\r\nX-Slow: "
    request = start + b"a" * (SLOW_BYTES - len(start))  # and never the blank line
    slow, silent = connect(port), connect(port)  # one trickles its headers, one sends nothing
    try:
        sent = 0
        for byte in request:
            try:
                slow.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 1
            if closed_by_server(slow):
                break
            assert healthz(port) == 200  # the API serves others meanwhile
            time.sleep(1.0)
        else:
            pytest.fail(f"the connection was still open after {sent} bytes in {sent} s")
        assert sent < len(request)
        # The silent one has had as long: closed too (EOF within the bound, never an answer).
        silent.settimeout(WAIT_S)
        with contextlib.suppress(ConnectionResetError):
            assert silent.recv(1 << 16) == b""
    finally:
        slow.close()
        silent.close()
    assert log_file.read_text().count("no complete request headers within 10 s") == 2


def test_an_idle_kept_alive_connection_is_closed(short_keepalive_api: tuple[int, Path]) -> None:
    sock = connect(short_keepalive_api[0])
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
            chunk = sock.recv(1 << 16)
            assert chunk, answer
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert b"Connection: close" not in answer  # kept alive
        sock.settimeout(WAIT_S)  # then idle: closed after --keepalive-timeout (2 s)
        assert sock.recv(1 << 16) == b""
    finally:
        sock.close()
