"""Integration fixtures of the store tests: a private single Redis and a real 3-master
Redis Cluster (``redis_cluster.py``), both for the whole session."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cdrstream.settings import load_settings
from cdrstream.stack.processes import free_port
from cdrstream.stack.redis_server import RedisNode
from cdrstream.store.connection import connect
from cdrstream.store.writer import RecordWriter
from tests.integration.redis_cluster import redis_cluster
from tests.integration.store_helpers import RETENTION


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
    with redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as nodes:
        yield f"redis://127.0.0.1:{nodes[0].port}/0"


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
def own_redis(tmp_path: Path) -> Iterator[RedisNode]:
    """A Redis of one test's own, which it may flush (to simulate losing the window)."""
    node = RedisNode(base_dir=tmp_path / "redis", port=free_port())
    node.up()
    yield node
    node.down()


@pytest.fixture
def writer(redis: Any) -> RecordWriter:
    return RecordWriter(redis, retention_ms=RETENTION)
