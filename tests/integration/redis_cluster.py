"""A real Redis Cluster of a test's own: ``redis-server --cluster-enabled yes`` masters on
free ports (each with its cluster bus port, +10000, free too), joined with ``redis-cli
--cluster create``, ready once every node reports ``cluster_state:ok``."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis as redis_sync

from cdrstream.stack.redis_server import RedisNode


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _cluster_ports(count: int) -> list[int]:
    """Ports P with P and P + 10000 (the cluster bus) free, both below Linux's ephemeral
    range (32768-60999 by default, ``/proc/sys/net/ipv4/ip_local_port_range``), where
    ``free_port()`` and every outgoing connection take theirs: P in 12000-21999, the bus in
    22000-31999."""
    rng = random.Random()
    chosen: list[int] = []
    while len(chosen) < count:
        port = rng.randrange(12_000, 22_000)
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


def redis_cli() -> str:
    cli = shutil.which("redis-cli") or "/usr/bin/redis-cli"
    if not Path(cli).exists():
        pytest.fail("redis-cli not found: apt-get install -y redis-tools")
    return cli


def wait_cluster_ok(nodes: list[RedisNode], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not all(_cluster_ok(n.port, len(nodes)) for n in nodes):
        if time.monotonic() > deadline:
            pytest.fail(f"Redis Cluster did not reach cluster_state:ok in {timeout_s:.0f} s")
        time.sleep(0.2)


@contextmanager
def redis_cluster(base: Path, masters: int = 3) -> Iterator[list[RedisNode]]:
    """``masters`` nodes under ``base`` (AOF on, as ``RedisNode`` runs them), stopped at exit."""
    nodes: list[RedisNode] = []
    try:
        for port in _cluster_ports(masters):
            node_dir = base / f"node-{port}"
            node_dir.mkdir(parents=True)
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
                redis_cli(), "--cluster", "create",
                *(f"127.0.0.1:{n.port}" for n in nodes),
                "--cluster-replicas", "0", "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )  # fmt: skip
        wait_cluster_ok(nodes)
        yield nodes
    finally:
        for node in nodes:
            node.down()
