"""Integration fixtures of the store tests: a private single Redis and a real 3-master
Redis Cluster.

``redis_cluster_url`` starts three ``redis-server --cluster-enabled yes`` masters on free
ports (each with its cluster bus port, +10000, free too), joins them with
``redis-cli --cluster create``, waits for ``cluster_state:ok`` on every node, and stops
them at the end of the session.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis as redis_sync

from cdrstream.settings import load_settings
from cdrstream.stack.processes import free_port
from cdrstream.stack.redis_server import RedisNode
from cdrstream.store.connection import connect
from cdrstream.store.writer import RecordWriter
from tests.integration.store_helpers import RETENTION


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _cluster_ports(count: int) -> list[int]:
    """Ports P with P and P + 10000 (the cluster bus) free, away from the ephemeral range."""
    rng = random.Random()
    chosen: list[int] = []
    while len(chosen) < count:
        port = rng.randrange(20_000, 30_000)
        if port not in chosen and _port_free(port) and _port_free(port + 10_000):
            chosen.append(port)
    return chosen


def _cluster_ok(port: int, masters: int) -> bool:
    client = redis_sync.Redis(port=port, socket_timeout=2, socket_connect_timeout=2)
    try:
        info = client.execute_command("CLUSTER", "INFO")
        text = info.decode() if isinstance(info, bytes) else str(info)
        fields = dict(
            line.split(":", 1) for line in text.splitlines() if ":" in line and line.strip()
        )
        return (
            fields.get("cluster_state") == "ok"
            and fields.get("cluster_slots_ok") == "16384"
            and int(fields.get("cluster_known_nodes", "0")) == masters
        )
    except redis_sync.RedisError:
        return False
    finally:
        client.close()


@pytest.fixture(scope="session")
def store_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A single Redis of the store tests' own: the sweeper works on every tenant it finds,
    so its tests must not share a Redis with other suites' data."""
    node = RedisNode(base_dir=tmp_path_factory.mktemp("store-redis"), port=free_port())
    node.up()
    yield node.url
    node.down()


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    cli = shutil.which("redis-cli") or "/usr/bin/redis-cli"
    if not Path(cli).exists():
        pytest.fail("redis-cli not found: apt-get install -y redis-tools")
    base = tmp_path_factory.mktemp("redis-cluster")
    nodes: list[RedisNode] = []
    try:
        for port in _cluster_ports(3):
            node_dir = base / str(port)
            node_dir.mkdir()
            node = RedisNode(
                base_dir=node_dir,
                port=port,
                extra_args=[
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", str(node_dir / "nodes.conf"),
                    "--cluster-node-timeout", "5000",
                ],
            )  # fmt: skip
            node.up()
            nodes.append(node)
        subprocess.run(
            [
                cli, "--cluster", "create",
                *(f"127.0.0.1:{n.port}" for n in nodes),
                "--cluster-replicas", "0", "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not all(_cluster_ok(n.port, len(nodes)) for n in nodes):
            if time.monotonic() > deadline:
                pytest.fail("Redis Cluster did not reach cluster_state:ok in 60s")
            time.sleep(0.2)
        yield f"redis://127.0.0.1:{nodes[0].port}/0"
    finally:
        for node in nodes:
            node.down()


@pytest.fixture(params=["single", "cluster"])
async def redis(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """A store client of the store tests, on their single Redis and on the real cluster."""
    if request.param == "cluster":
        url = request.getfixturevalue("redis_cluster_url")
        settings = replace(load_settings({}), redis_url=url, redis_cluster=True)
    else:
        settings = replace(load_settings({}), redis_url=request.getfixturevalue("store_redis_url"))
    client = connect(settings)
    yield client
    await client.aclose()


@pytest.fixture
def writer(redis: Any) -> RecordWriter:
    return RecordWriter(redis, retention_ms=RETENTION)
