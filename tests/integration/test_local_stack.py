"""`cdrstream stack up|status|down` against the real engines (Kafka, Redis, Prometheus), on
ports of the test's own."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
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
        "CDRSTREAM_PROMETHEUS_PORT": str(free_port()),
    }
    up = _stack("up", env)
    try:
        assert up.returncode == 0, up.stderr
        status = _stack("status", env)
        assert status.returncode == 0
        lines = dict(line.split()[:2] for line in status.stdout.splitlines())
        assert lines == {"kafka": "ready", "redis": "ready", "prometheus": "ready"}
        prometheus_url = f"http://127.0.0.1:{env['CDRSTREAM_PROMETHEUS_PORT']}"
        assert prometheus_url in status.stdout
        # scrape targets from the worker and API port settings (applied a few seconds in)
        wanted = {"127.0.0.1:6067", "127.0.0.1:6066"}  # the defaults: not set in env
        deadline = time.monotonic() + 30
        targets: set[str] = set()
        while targets != wanted and time.monotonic() < deadline:
            time.sleep(0.5)
            with urllib.request.urlopen(f"{prometheus_url}/api/v1/targets", timeout=10) as answer:
                active = json.loads(answer.read())["data"]["activeTargets"]
            targets = {target["labels"]["instance"] for target in active}
        assert targets == wanted
        assert (tmp_path / "stack" / "prometheus" / "data").is_dir()  # its data: the stack's
        pids = [
            int((tmp_path / "stack" / name / f"{name}.pid").read_text())
            for name in ("kafka", "redis", "prometheus")
        ]
        assert all(is_alive(pid) for pid in pids)
    finally:
        down = _stack("down", env)
    assert down.returncode == 0, down.stderr
    assert not any(is_alive(pid) for pid in pids)
    after = _stack("status", env)
    assert after.returncode == 1
    assert "stopped" in after.stdout


# Its bounds (the records, Prometheus, the demo's exit, `stack down`) sum past the default 300 s.
@pytest.mark.timeout(600)
def test_demo_prints_a_url_that_answers_and_a_token_that_reads_records(tmp_path: Path) -> None:
    """README command 1, on ports of its own: the printed page answers and the token works."""
    env = {
        **os.environ,
        # A consumer group of its own: the worker keeps Faust's ``<group>-data`` folder in
        # its working directory, which the default group would share with a dev demo.
        "CDRSTREAM_CONSUMER_GROUP": f"cdrstream-demo-{uuid.uuid4().hex[:8]}",
        "CDRSTREAM_STACK_DIR": str(tmp_path / "stack"),
        "CDRSTREAM_ACCESS_FILE": str(tmp_path / "access.json"),
        "CDRSTREAM_KAFKA_PORT": str(free_port()),
        "CDRSTREAM_KAFKA_CONTROLLER_PORT": str(free_port()),
        "CDRSTREAM_REDIS_PORT": str(free_port()),
        "CDRSTREAM_API_PORT": str(free_port()),
        "CDRSTREAM_WORKER_PORT": str(free_port()),
        "CDRSTREAM_PROMETHEUS_PORT": str(free_port()),
    }
    env["CDRSTREAM_REDIS_URL"] = f"redis://127.0.0.1:{env['CDRSTREAM_REDIS_PORT']}/0"
    env["CDRSTREAM_KAFKA_BOOTSTRAP"] = f"127.0.0.1:{env['CDRSTREAM_KAFKA_PORT']}"
    demo = subprocess.Popen(
        [sys.executable, "-m", "cdrstream", "demo", "--backfill", "300", "--rate", "5"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        printed: dict[str, str] = {}
        assert demo.stdout is not None
        for line in demo.stdout:
            if ":" in line:
                name, _, value = line.partition(":")
                printed[name.strip()] = value.strip().split()[0] if value.strip() else ""
            if "logs" in printed:
                break
        page, api, token = printed["web page"], printed["API"], printed["token"]
        prometheus = printed["prometheus"]
        assert prometheus == f"http://127.0.0.1:{env['CDRSTREAM_PROMETHEUS_PORT']}"
        with urllib.request.urlopen(page, timeout=10) as answer:
            assert answer.status == 200
            assert b"<table" in answer.read()
        request = urllib.request.Request(api, headers={"Authorization": f"Bearer {token}"})
        deadline = time.monotonic() + 120
        records: list[object] = []
        while not records and time.monotonic() < deadline:
            with urllib.request.urlopen(request, timeout=10) as answer:
                records = json.loads(answer.read())["records"]
            time.sleep(1)
        assert records, "the demo's generator and worker produced no record"
        # the printed Prometheus scrapes the demo's worker and API, with the rules loaded
        query = urllib.parse.urlencode({"query": 'up{job=~"cdrstream-.*"}'})
        wanted = {
            f"127.0.0.1:{env['CDRSTREAM_WORKER_PORT']}": "1",
            f"127.0.0.1:{env['CDRSTREAM_API_PORT']}": "1",
        }
        deadline = time.monotonic() + 60
        up: dict[str, str] = {}
        while up != wanted and time.monotonic() < deadline:
            time.sleep(1)
            with urllib.request.urlopen(f"{prometheus}/api/v1/query?{query}", timeout=10) as answer:
                result = json.loads(answer.read())["data"]["result"]
            up = {series["metric"]["instance"]: series["value"][1] for series in result}
        assert up == wanted
        with urllib.request.urlopen(f"{prometheus}/api/v1/rules", timeout=10) as answer:
            groups = json.loads(answer.read())["data"]["groups"]
        assert [g["name"] for g in groups] == ["cdrstream"]
    finally:
        demo.terminate()
        demo.wait(timeout=120)
        _stack("down", env)
    assert demo.returncode == 0


def test_up_refuses_a_port_another_server_holds(tmp_path: Path) -> None:
    """Another Redis on the port would answer our readiness probe: refuse, and say why."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        env = {
            **os.environ,
            "CDRSTREAM_STACK_DIR": str(tmp_path / "stack"),
            "CDRSTREAM_REDIS_PORT": str(port),
            "CDRSTREAM_KAFKA_PORT": str(free_port()),
            "CDRSTREAM_KAFKA_CONTROLLER_PORT": str(free_port()),
            "CDRSTREAM_PROMETHEUS_PORT": str(free_port()),
        }
        up = _stack("up", env)
    assert up.returncode == 1
    assert f"port {port} is taken" in up.stderr
    assert "CDRSTREAM_REDIS_PORT" in up.stderr
    assert not (tmp_path / "stack" / "redis" / "redis.pid").exists()
