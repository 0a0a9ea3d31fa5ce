"""A real Prometheus (Debian's package, as `cdrstream stack` runs it) scrapes the real worker
and query endpoint during traffic: both targets are up, every recording and alerting rule
evaluates without error, and every query of the Grafana dashboard returns data."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from cdrstream.access.access_store import issue_token
from cdrstream.settings import Settings
from cdrstream.simulation.calls import generate_events
from cdrstream.stack.processes import free_port
from cdrstream.stack.prometheus import PrometheusNode
from cdrstream.stack.roles import RoleProcess, settings_env
from tests.integration.pipeline_helpers import create_topics, now_ms, produce, start_worker

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
#: Bound of the wait for data (not a timing assertion): a few 1 s scrapes are enough.
WAIT_S = 60.0


@dataclass
class Observed:
    settings: Settings
    prometheus: PrometheusNode
    tenants: list[str]
    token: str

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.api_port}"


@pytest.fixture
def observed(stack_settings: Settings, tmp_path: Path) -> Iterator[Observed]:
    settings = create_topics(
        replace(
            stack_settings,
            worker_port=free_port(),
            api_port=free_port(),
            sweep_interval_s=1,  # the records-in-window gauge is sampled by the sweep
        )
    )
    tenants = [f"prom{random.randrange(10**9)}-{i}" for i in range(3)]
    token, _ = issue_token(
        settings.access_file, partner="ops-test", tenants=tenants, airtime_reseller=True
    )
    prometheus = PrometheusNode(
        base_dir=tmp_path / "prometheus",
        port=free_port(),
        worker_target=f"127.0.0.1:{settings.worker_port}",
        api_target=f"127.0.0.1:{settings.api_port}",
        interval="1s",
    )
    with contextlib.ExitStack() as stack:
        worker = start_worker(settings, tmp_path / "worker.log")
        stack.callback(worker.stop)
        api = RoleProcess(["api"], env=settings_env(settings), log_file=tmp_path / "api.log")
        api.start()
        stack.callback(api.stop)
        api.wait_http(f"http://127.0.0.1:{settings.api_port}/healthz")
        stack.callback(prometheus.down)
        prometheus.up()
        yield Observed(settings, prometheus, tenants, token)


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status), answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def prometheus_api(base: str, path: str, **params: str) -> Any:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    status, body = get(f"{base}/api/v1/{path}{query}")
    answer = json.loads(body)
    assert status == 200 and answer["status"] == "success", (path, params, answer)
    return answer["data"]


def has_data(base: str, expr: str) -> bool:
    """At least one series with a number (a quantile of no traffic would be NaN)."""
    result = prometheus_api(base, "query", query=expr)["result"]
    return any(math.isfinite(float(series["value"][1])) for series in result)


def api_traffic(observed: Observed) -> None:
    """Reads as a partner does (JSON and CSV), and a request without a token (401)."""
    auth = {"Authorization": f"Bearer {observed.token}"}
    for tenant in observed.tenants:
        status, _ = get(f"{observed.api_url}/v1/tenants/{tenant}/cdrs", auth)
        assert status == 200
    status, _ = get(f"{observed.api_url}/v1/tenants/{observed.tenants[0]}/cdrs?format=csv", auth)
    assert status == 200
    status, _ = get(f"{observed.api_url}/v1/tenants/{observed.tenants[0]}/cdrs")
    assert status == 401


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((ROOT / "config/grafana/dashboards/cdrstream.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


async def test_every_dashboard_query_returns_data_from_a_real_scrape(observed: Observed) -> None:
    base = observed.prometheus.url
    exprs = dashboard_exprs()
    assert exprs
    rng = random.Random(11)
    missing = exprs
    deadline = time.monotonic() + WAIT_S
    while missing and time.monotonic() < deadline:
        events = generate_events(
            rng, tenants=observed.tenants, now_ms=now_ms(), count=60, malformed_ratio=0.1
        )
        await produce(observed.settings, events)
        await asyncio.to_thread(api_traffic, observed)
        await asyncio.sleep(1)
        missing = [e for e in exprs if not await asyncio.to_thread(has_data, base, e)]
    assert missing == [], f"no data for {missing}:\n{observed.prometheus.log_tail()}"

    targets = prometheus_api(base, "targets")["activeTargets"]
    health = {target["labels"]["job"]: target["health"] for target in targets}
    assert health == {"cdrstream-worker": "up", "cdrstream-api": "up"}, targets

    groups = prometheus_api(base, "rules")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert [group["name"] for group in groups] == ["cdrstream"]
    failing = [(rule["name"], rule.get("lastError")) for rule in rules if rule["health"] != "ok"]
    assert failing == [], failing
    # healthy traffic: the API answered no 5xx, and the recorded ratio says 0, not nothing
    ratio = prometheus_api(base, "query", query=":cdrstream_api_requests_total:5xx_ratio_rate5m")
    assert [float(series["value"][1]) for series in ratio["result"]] == [0.0]
