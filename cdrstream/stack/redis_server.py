"""A local Redis from Debian's `redis-server`, with AOF persistence (fsync every second)."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import redis

from cdrstream.stack.processes import LocalServer, StackError


@dataclass
class RedisNode(LocalServer):
    name: ClassVar[str] = "redis"
    start_timeout_s: ClassVar[float] = 20.0

    base_dir: Path
    port: int
    extra_args: Sequence[str] = field(default_factory=tuple)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def listens_on(self) -> Sequence[tuple[str, int, str]]:
        return [("redis", self.port, "CDRSTREAM_REDIS_PORT")]

    def command(self) -> list[str]:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            raise StackError("redis-server not found: apt-get install -y redis-server")
        data = self.base_dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        return [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(data),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--daemonize",
            "no",
            "--protected-mode",
            "no",
            *self.extra_args,
        ]

    def ready(self) -> bool:
        try:
            client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
            try:
                # LOADING errors raise here until the AOF is replayed.
                return bool(client.ping())
            finally:
                client.close()
        except redis.RedisError:
            return False
