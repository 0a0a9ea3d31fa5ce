"""Detached server processes tracked by pid files: start, wait until ready, stop.

``LocalServer`` is the one skeleton of a local engine (pid file, log file, port check,
start, wait, status, stop, log tail); an engine only says which ports it binds, how it is
started and how to tell it is ready.
"""

from __future__ import annotations

import abc
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar


class StackError(RuntimeError):
    """A local engine could not be started or stopped; the message says why."""


def read_pid(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if is_alive(pid) else None


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); reap it if it is ours.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def start_detached(
    argv: Sequence[str], *, log_file: Path, pid_file: Path, env: dict[str, str] | None = None
) -> int:
    """Start ``argv`` in its own session, output to ``log_file``; returns the pid."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    pid_file.write_text(str(proc.pid))
    return proc.pid


def wait_ready(
    name: str, pid: int, probe: Callable[[], bool], *, log_file: Path, timeout_s: float
) -> None:
    """Poll ``probe`` until it answers True; fail fast with the log tail if the process died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not is_alive(pid):
            raise StackError(f"{name} exited during start-up:\n{log_tail(log_file)}")
        if probe():
            return
        time.sleep(0.2)
    raise StackError(f"{name} not ready after {timeout_s:.0f}s:\n{log_tail(log_file)}")


def stop(pid_file: Path, *, timeout_s: float = 20.0) -> bool:
    """SIGTERM the recorded pid, SIGKILL after ``timeout_s``; True if something was stopped."""
    pid = read_pid(pid_file)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if is_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while is_alive(pid):
            time.sleep(0.05)
    pid_file.unlink(missing_ok=True)
    return True


def kill_hard(pid_file: Path) -> None:
    """SIGKILL, for fault tests: no chance to flush or commit."""
    pid = read_pid(pid_file)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while is_alive(pid):
            time.sleep(0.05)
    pid_file.unlink(missing_ok=True)


def log_tail(log_file: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log_file.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def ensure_port_free(name: str, port: int, setting: str) -> None:
    """Refuse to start beside another server on ``port``: its answers would pass for ours."""
    with socket.socket() as sock:
        # SO_REUSEADDR: connections of our own last run in TIME_WAIT do not count, a listener does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise StackError(
                f"{name}: port {port} is taken by another process (choose another with {setting})"
            ) from None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalServer(abc.ABC):
    """A local engine run as a detached process, its pid and log files under ``base_dir``.

    Subclasses are dataclasses with a ``base_dir`` field; they name themselves (``name``:
    ``<name>.pid``, ``<name>.log``) and give the ports they bind, their command line and a
    readiness probe that asks the server itself (an open port is not enough).
    """

    name: ClassVar[str]
    start_timeout_s: ClassVar[float] = 30.0
    stop_timeout_s: ClassVar[float] = 20.0
    base_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.base_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.base_dir / f"{self.name}.log"

    @abc.abstractmethod
    def listens_on(self) -> Sequence[tuple[str, int, str]]:
        """``(what, port, setting that chooses it)`` for every port the server binds."""

    @abc.abstractmethod
    def command(self) -> list[str]:
        """Prepare the server's files under ``base_dir``; the command line that starts it."""

    @abc.abstractmethod
    def ready(self) -> bool:
        """Whether the server answers a real request."""

    def up(self, timeout_s: float | None = None) -> None:
        """Start unless already running and ready; return once ready (StackError if not)."""
        pid = self.launch()
        if pid is not None:
            self.wait_ready(pid, timeout_s)

    def launch(self) -> int | None:
        """Start the process without waiting for it; None when it already runs and answers.
        Members of a cluster are all launched before any is waited for: a KRaft node is ready
        only once a quorum of its peers runs."""
        if read_pid(self.pid_file) is not None and self.ready():
            return None
        for what, port, setting in self.listens_on():
            ensure_port_free(what, port, setting)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        argv = self.command()
        return start_detached(argv, log_file=self.log_file, pid_file=self.pid_file)

    def wait_ready(self, pid: int, timeout_s: float | None = None) -> None:
        wait_ready(
            self.name,
            pid,
            self.ready,
            log_file=self.log_file,
            timeout_s=self.start_timeout_s if timeout_s is None else timeout_s,
        )

    def down(self) -> bool:
        """Stop the recorded process; True if something was stopped."""
        return stop(self.pid_file, timeout_s=self.stop_timeout_s)

    def status(self) -> str:
        if read_pid(self.pid_file) is None:
            return "stopped"
        return "ready" if self.ready() else "starting"

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log_file, lines)
