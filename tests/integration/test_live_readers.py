"""The live tail's per-tenant readers stop when their last client leaves, however it leaves.

`cdrstream api` as a child process on a Redis of this module's own (it is restarted during
the test). A few hundred randomized open/close cycles, several at once over a few tenants,
while records are written: a client leaves before its answer started, after its headers,
after `ready`, in the middle of the records or of a `Last-Event-ID` replay, by a close, a
reset (RST) or a half-close (its write side first, the rest a moment later), and Redis is
restarted in the middle of it all. Then:

- Redis's own count of blocked clients (`INFO clients`: the readers' `XREAD BLOCK`) and the
  API's gauges (`cdrstream_api_live_streams`, `cdrstream_api_live_feeds`, the latter the
  number of reader tasks still running) all return to zero;
- with a known set of streams held open, the gauges and Redis agree with it.

Before the readers were stopped reliably, 20 open/close cycles left ~11 blocked clients
and the gauges read 0. No timed assertions: every wait has a generous bound that only
turns a hang into a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import socket
import struct
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from cdrstream.access.access_store import issue_token
from cdrstream.api.live import BLOCK_MS, FEED_BACKOFF_S
from cdrstream.core.clock import now_ms
from cdrstream.stack.processes import free_port
from cdrstream.stack.redis_server import RedisNode
from cdrstream.stack.roles import RoleProcess, settings_env
from cdrstream.store.live import live_key
from cdrstream.store.writer import RecordWriter
from tests.integration.redis_cluster import redis_cli
from tests.integration.test_api import _settings, _stop, make_record

pytestmark = [pytest.mark.integration, pytest.mark.fault]

SUFFIX = uuid.uuid4().hex[:6]
TENANTS = [f"readers-{n}-{SUFFIX}" for n in range(12)]  # mostly a reader of its own per cycle
CYCLES = 300
LANES = 6  # cycles running at once
WAIT_S = 60.0  # a bound on waiting for something that should come, never a measurement
DOWN_S = 3.0  # how long Redis stays down in the middle of the cycles
BACKLOG = 1_000  # records per tenant before the cycles: a replay from the first takes a while


@dataclass
class Api:
    base: str
    port: int
    redis: RedisNode
    process: RoleProcess
    token: str


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    node = RedisNode(base_dir=tmp_path / "redis", port=free_port())
    node.up()
    try:
        settings = _settings(node.url, tmp_path)
        token, _ = issue_token(
            settings.access_file, partner="readers", tenants=TENANTS, airtime_reseller=True
        )
        flags = ["--live-streams-per-partner", "64", "--live-heartbeat", "0.5"]
        process = RoleProcess(
            ["api", *flags], env=settings_env(settings), log_file=tmp_path / "api.log"
        )
        process.start().wait_http(f"http://127.0.0.1:{settings.api_port}/healthz", timeout_s=60)
        try:
            yield Api(
                f"http://127.0.0.1:{settings.api_port}", settings.api_port, node, process, token
            )
        finally:
            _stop(process)
        log = process.log_file.read_text()
        assert '"level":"error"' not in log, process.log_tail(30)
    finally:
        node.down()


def restart(node: RedisNode) -> None:
    """``redis-cli shutdown`` (Redis writes its AOF and exits), a while down (the clients go
    on meanwhile), then the same node again."""
    subprocess.run([redis_cli(), "-p", str(node.port), "shutdown"], capture_output=True, timeout=30)
    deadline = time.monotonic() + 30
    while node.ready():
        assert time.monotonic() < deadline, "redis did not stop"
        time.sleep(0.05)
    time.sleep(DOWN_S)
    node.up()


# --------------------------------------------------------------------------- what is running


async def gauges(session: aiohttp.ClientSession, base: str) -> dict[str, float]:
    async with session.get(f"{base}/metrics") as answer:
        text = await answer.text()
    found = dict(re.findall(r"^(cdrstream_api_live_\w+) (\S+)$", text, re.MULTILINE))
    return {name: float(value) for name, value in found.items()}


async def blocked_clients(redis: Redis) -> int:
    return int((await redis.info("clients"))["blocked_clients"])


async def wait_until(what: str, check) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + WAIT_S
    last = None
    while True:
        last = await check()
        if last is True:
            return
        assert time.monotonic() < deadline, f"not within {WAIT_S:.0f} s: {what} ({last})"
        await asyncio.sleep(0.2)


async def observed(api: Api, redis: Redis, session: aiohttp.ClientSession) -> tuple[int, ...]:
    g = await gauges(session, api.base)
    return (
        await blocked_clients(redis),
        int(g["cdrstream_api_live_streams"]),
        int(g["cdrstream_api_live_feeds"]),
    )


# ------------------------------------------------------------------------------- the clients


class Client:
    """One live stream over a raw socket, so that it can leave in every way a TCP peer can."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.received = b""

    @classmethod
    async def open(cls, api: Api, tenant: str, last_event_id: str | None = None) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
        request = (
            f"GET /v1/tenants/{tenant}/cdrs/live HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {api.token}\r\n"
        )
        if last_event_id is not None:
            request += f"Last-Event-ID: {last_event_id}\r\n"
        writer.write((request + "\r\n").encode())
        await writer.drain()
        return cls(reader, writer)

    async def read_until(self, marker: bytes, count: int = 1) -> bool:
        """Read until ``marker`` was received ``count`` times; False if the answer ended
        (a 503, or a stream the API ended when Redis failed: the last chunk, or EOF)."""
        try:
            async with asyncio.timeout(WAIT_S):
                while self.received.count(marker) < count:
                    chunk = await self.reader.read(1 << 16)
                    self.received += chunk
                    if not chunk or self.received.endswith(b"\r\n0\r\n\r\n"):  # ended
                        return False
                    if b"\r\n\r\n" in self.received and not self.received.startswith(
                        b"HTTP/1.1 200 "
                    ):
                        return False  # a 503 while Redis restarts
        except TimeoutError:
            tail = self.received[-600:]
            raise AssertionError(f"no {marker!r} x{count} in {WAIT_S:.0f} s: {tail!r}") from None
        return True

    async def leave(self, how: str, rng: random.Random) -> None:
        if how == "reset":  # RST instead of FIN
            sock = self.writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif how == "half-close":  # FIN on the write side, the rest a moment later
            with contextlib.suppress(OSError):
                self.writer.write_eof()
            await asyncio.sleep(rng.uniform(0, 0.5))
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


MOMENTS = ("sent", "headers", "ready", "records", "replay")
HOW = ("close", "reset", "half-close")


async def cycle(api: Api, rng: random.Random, first_ids: dict[str, str]) -> str:
    """Open a stream, leave at a random moment in a random way; returns what happened."""
    tenant = rng.choice(TENANTS)
    moment, how = rng.choice(MOMENTS), rng.choice(HOW)
    replay = moment == "replay" or rng.random() < 0.2
    client = await Client.open(api, tenant, first_ids[tenant] if replay else None)
    try:
        if moment == "headers":
            await client.read_until(b"\r\n\r\n")
        elif moment == "ready":
            await client.read_until(b"event: ready")
        elif moment == "records":
            await client.read_until(b"event: record", rng.randint(1, 5))
        elif moment == "replay":  # in the middle of the replay of the backlog
            await client.read_until(b"event: record", rng.randint(1, 200))
        status = client.received[9:12].decode() or "-"
    finally:
        await client.leave(how, rng)
    return f"{moment}/{how}/{status}"


async def keep_writing(api: Api, stop: asyncio.Event) -> int:
    """Records for every tenant, a few at a time, until ``stop`` (Redis may be restarting)."""
    redis = Redis.from_url(api.redis.url)
    writer = RecordWriter(redis, retention_ms=30 * 86_400_000)
    n = BACKLOG
    try:
        while not stop.is_set():
            batch = [make_record(t, n + k, now_ms() - 60_000) for t in TENANTS for k in range(3)]
            with contextlib.suppress(RedisError, OSError):
                await writer.write_batch(batch, now_ms())
                n += 3
            await asyncio.sleep(0.05)
    finally:
        await redis.aclose()
    return n


@pytest.fixture
async def redis(api: Api) -> AsyncIterator[Redis]:
    client = Redis.from_url(api.redis.url)
    yield client
    await client.aclose()


async def test_readers_stop_when_their_last_client_leaves_however_it_leaves(
    api: Api, redis: Redis
) -> None:
    backlog = [make_record(t, n, now_ms() - 3_600_000 + n) for t in TENANTS for n in range(BACKLOG)]
    writer = RecordWriter(redis, retention_ms=30 * 86_400_000)
    for i in range(0, len(backlog), 500):
        await writer.write_batch(backlog[i : i + 500], now_ms())
    first_ids = {}
    for t in TENANTS:
        [(entry_id, _)] = await redis.xrange(live_key(t), count=1)
        first_ids[t] = entry_id.decode()

    seed = random.randrange(1 << 32)
    outcomes: Counter[str] = Counter()
    queue = list(range(CYCLES))
    stop_writing = asyncio.Event()
    writing = asyncio.create_task(keep_writing(api, stop_writing))

    async def lane(number: int) -> None:
        rng = random.Random(seed * 100 + number)
        while queue:
            queue.pop()
            outcomes[await cycle(api, rng, first_ids)] += 1
            if sum(outcomes.values()) == CYCLES // 2:  # the other lanes go on meanwhile
                outcomes["redis restarted"] += 1
                await asyncio.to_thread(restart, api.redis)

    try:
        await asyncio.gather(*(lane(n) for n in range(LANES)))
    finally:
        stop_writing.set()
        await writing
    assert outcomes["redis restarted"] == 1, (seed, outcomes)
    assert sum(outcomes.values()) == CYCLES + 1

    async with aiohttp.ClientSession() as session:
        # Every client has gone: no reader blocks in Redis, no stream or reader is counted.
        async def all_gone() -> bool | tuple[int, ...]:
            return await observed(api, redis, session) == (0, 0, 0) or await observed(
                api, redis, session
            )

        await wait_until(f"readers stopped (seed {seed}, {dict(outcomes)})", all_gone)
        # ... and stay stopped: a reader that goes on is seen again within its longest
        # pause after a Redis error (when it is not blocked in Redis).
        watch_until = time.monotonic() + FEED_BACKOFF_S[1] + 2 * BLOCK_MS / 1000
        while time.monotonic() < watch_until:
            assert await observed(api, redis, session) == (0, 0, 0), (seed, dict(outcomes))
            await asyncio.sleep(0.2)

        # Streams held open: 3 on one tenant, 1 on another: 4 streams, 2 readers.
        held = [await Client.open(api, TENANTS[0]) for _ in range(3)]
        held.append(await Client.open(api, TENANTS[1]))
        try:
            for client in held:
                assert await client.read_until(b"event: ready"), client.received[:300]

            async def two_readers() -> bool | tuple[int, ...]:
                now = await observed(api, redis, session)
                return now == (2, 4, 2) or now

            await wait_until("2 readers for 4 streams", two_readers)
        finally:
            for client in held:
                await client.leave("close", random.Random(0))
        await wait_until("readers stopped after the held streams", all_gone)
