"""Redis restarts under a running API (and a running writer): the first requests after the
restart must not fail on the pooled connections Redis closed.

Each test restarts a Redis of its own (AOF on, as in production): ``redis-cli shutdown``,
then the same node started again on the same port and data. Before the restart, 30
concurrent reads fill the client's pool with 30 connections, which the restart makes
stale; then 30 concurrent reads (pages, a number filter, CSV) must all answer 200.
Without a retry on a fresh connection most of them answered 503 "Connection closed by
server"; on the cluster, before every pooled connection was marked for reconnect after
the first error (``store/connection.py``), up to 6 of 30 did.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from cdrstream.access.access_store import issue_token
from cdrstream.core.clock import now_ms
from cdrstream.core.record import CallRecord
from cdrstream.settings import load_settings
from cdrstream.stack.processes import free_port
from cdrstream.stack.redis_server import RedisNode
from cdrstream.stack.roles import RoleProcess, settings_env
from cdrstream.store.connection import connect
from cdrstream.store.writer import RecordWriter
from tests.integration.redis_cluster import redis_cli, redis_cluster, wait_cluster_ok
from tests.integration.test_api import NOW_MS, _settings, _stop, _write, make_record

pytestmark = [pytest.mark.integration, pytest.mark.fault]

CONCURRENT = 30
SUFFIX = uuid.uuid4().hex[:6]
TENANTS = [f"restart-{n}-{SUFFIX}" for n in range(6)]  # spread over a cluster's masters


def _records() -> list[CallRecord]:
    return [
        make_record(tenant, n, NOW_MS - (n + 1) * 60_000, number=f"+312012{n % 50:05d}")
        for tenant in TENANTS
        for n in range(400)
    ]


def _restart(node: RedisNode) -> None:
    """``redis-cli shutdown`` (Redis writes its AOF and exits), then the same node again."""
    subprocess.run([redis_cli(), "-p", str(node.port), "shutdown"], capture_output=True, timeout=30)
    deadline = time.monotonic() + 30
    while node.ready():
        assert time.monotonic() < deadline, "redis did not stop"
        time.sleep(0.05)
    node.up()


@pytest.fixture
def single_redis(tmp_path: Path) -> Iterator[list[RedisNode]]:
    node = RedisNode(base_dir=tmp_path / "redis", port=free_port())  # AOF on (everysec)
    node.up()
    yield [node]
    node.down()


@pytest.fixture
def cluster_redis(tmp_path: Path) -> Iterator[list[RedisNode]]:
    """Three masters of a Redis Cluster of this test's own (the suite's is shared)."""
    with redis_cluster(tmp_path / "cluster") as nodes:
        yield nodes


async def _reads(base: str, token: str, rounds: int = 1) -> list[tuple[str, int, bytes]]:
    """CONCURRENT requests at once: JSON pages, a number filter (pipelined counts and a
    script), CSV exports, on every tenant."""
    variants = [
        {"limit": "50"},
        {"limit": "20", "number": "+312012"},
        {"format": "csv"},
        {"limit": "10", "direction": "outbound", "extension": "201"},
    ]
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=CONCURRENT, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(n: int) -> tuple[str, int, bytes]:
            tenant = TENANTS[n % len(TENANTS)]
            params = variants[n % len(variants)]
            url = f"{base}/v1/tenants/{tenant}/cdrs"
            async with session.get(url, params=params, headers=headers) as answer:
                return f"{tenant} {params}", answer.status, await answer.read()

        out: list[tuple[str, int, bytes]] = []
        for _ in range(rounds):
            out += await asyncio.gather(*(one(n) for n in range(CONCURRENT)))
        return out


@pytest.mark.parametrize("topology", ["single", "cluster"])
async def test_reads_right_after_a_redis_restart_all_answer_200(
    topology: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    nodes: list[RedisNode] = request.getfixturevalue(f"{topology}_redis")
    settings = replace(_settings(nodes[0].url, tmp_path), redis_cluster=topology == "cluster")
    token, _ = issue_token(
        settings.access_file, partner="restart-partner", tenants=TENANTS, airtime_reseller=True
    )
    records = _records()
    await _write(settings, records)
    # One partner runs every export here: lift its share of concurrent exports.
    process = RoleProcess(
        ["api", "--csv-exports-per-partner", str(CONCURRENT)],
        env=settings_env(settings),
        log_file=tmp_path / "api.log",
    ).start()
    await asyncio.to_thread(process.wait_http, f"http://127.0.0.1:{settings.api_port}/healthz")
    base = f"http://127.0.0.1:{settings.api_port}"
    try:
        warm = await _reads(base, token, rounds=2)  # the pool now holds ~30 connections
        assert {status for _, status, _ in warm} == {200}, warm[:3]

        for node in nodes:  # a rolling restart when there are several
            await asyncio.to_thread(_restart, node)
        if topology == "cluster":
            await asyncio.to_thread(wait_cluster_ok, nodes)

        after = await _reads(base, token)
        failed = [(what, status, body[:200]) for what, status, body in after if status != 200]
        assert failed == [], (failed, process.log_tail(10))
        # ... with the data the restart kept (AOF): every record of a tenant in its CSV.
        csv_bodies = [body for what, _, body in after if "csv" in what]
        assert csv_bodies and all(b.count(b"\r\n") == 400 + 1 for b in csv_bodies)
    finally:
        await asyncio.to_thread(_stop, process)


async def test_writes_right_after_a_redis_restart_all_succeed(
    single_redis: list[RedisNode],
) -> None:
    """The worker's client is the same `connect()`: its writes get the same retry."""
    (node,) = single_redis
    settings = replace(load_settings({}), redis_url=node.url)
    records = _records()
    redis = connect(settings)
    writer = RecordWriter(redis, retention_ms=settings.retention_ms)
    now = now_ms()
    halves = [records[i :: CONCURRENT * 2] for i in range(CONCURRENT * 2)]
    try:
        first = await asyncio.gather(*(writer.write_batch(b, now) for b in halves[:CONCURRENT]))
        assert all(set(outcomes) == {"stored"} for outcomes in first)
        await asyncio.to_thread(_restart, node)
        second = await asyncio.gather(
            *(writer.write_batch(b, now) for b in halves[CONCURRENT:]), return_exceptions=True
        )
        assert [r for r in second if isinstance(r, BaseException)] == []
        assert all(set(outcomes) == {"stored"} for outcomes in second)
    finally:
        await redis.aclose()
