"""A local Redis from Debian's `redis-server`, with AOF persistence (fsync every second)."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis

from cdrstream.stack.processes import (
    StackError,
    ensure_port_free,
    read_pid,
    start_detached,
    stop,
    wait_ready,
)


@dataclass
class RedisNode:
    base_dir: Path
    port: int
    extra_args: Sequence[str] = field(default_factory=tuple)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid_file(self) -> Path:
        return self.base_dir / "redis.pid"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "redis.log"

    def up(self, timeout_s: float = 20.0) -> None:
        if read_pid(self.pid_file) is not None and self.ready():
            return
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            raise StackError("redis-server not found: apt-get install -y redis-server")
        ensure_port_free("redis", self.port, "CDRSTREAM_REDIS_PORT")
        data = self.base_dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        argv = [
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
        pid = start_detached(argv, log_file=self.log_file, pid_file=self.pid_file)
        wait_ready("redis", pid, self.ready, log_file=self.log_file, timeout_s=timeout_s)

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

    def down(self) -> bool:
        return stop(self.pid_file)

    def status(self) -> str:
        if read_pid(self.pid_file) is None:
            return "stopped"
        return "ready" if self.ready() else "starting"
