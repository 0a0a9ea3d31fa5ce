"""`cdrstream stack up|status|down` against the real engines, on ports of the test's own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cdrstream.stack.processes import free_port, is_alive

pytestmark = pytest.mark.integration


def _stack(action: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cdrstream", "stack", action],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_up_status_down_leaves_no_process(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CDRSTREAM_STACK_DIR": str(tmp_path / "stack"),
        "CDRSTREAM_KAFKA_PORT": str(free_port()),
        "CDRSTREAM_KAFKA_CONTROLLER_PORT": str(free_port()),
        "CDRSTREAM_REDIS_PORT": str(free_port()),
    }
    up = _stack("up", env)
    try:
        assert up.returncode == 0, up.stderr
        status = _stack("status", env)
        assert status.returncode == 0
        lines = dict(line.split()[:2] for line in status.stdout.splitlines())
        assert lines == {"kafka": "ready", "redis": "ready"}
        pids = [
            int((tmp_path / "stack" / name / f"{name}.pid").read_text())
            for name in ("kafka", "redis")
        ]
        assert all(is_alive(pid) for pid in pids)
    finally:
        down = _stack("down", env)
    assert down.returncode == 0, down.stderr
    assert not any(is_alive(pid) for pid in pids)
    after = _stack("status", env)
    assert after.returncode == 1
    assert "stopped" in after.stdout
