"""Worker and API metrics in a real scrape, and the dashboard only queries metrics that exist."""

from __future__ import annotations

import asyncio
import json
import random
import re
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from cdrstream.core.outcome import OUTCOMES, Policy, decide
from cdrstream.core.record import CallRecord
from cdrstream.observability.scrape import exported_names, fetch, samples, total
from cdrstream.settings import Settings
from cdrstream.simulation.calls import generate_events
from cdrstream.stack.processes import free_port
from cdrstream.stack.roles import RoleProcess, settings_env
from tests.integration.pipeline_helpers import create_topics, now_ms, produce, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def predicted_outcomes(settings: Settings, items: list[tuple[str, bytes]]) -> Counter[str]:
    """The pure rules per event, with the store's duplicate rule applied in topic order."""
    policy = Policy(retention_ms=settings.retention_ms, default_region=settings.default_region)
    stored: dict[tuple[str, str], CallRecord] = {}
    outcomes: Counter[str] = Counter()
    for _, value in items:
        decision = decide(value, now_ms(), policy)
        outcome = decision.outcome
        if outcome == "stored" and decision.record is not None:
            key = (decision.record.tenant_id, decision.record.id)
            if stored.get(key) == decision.record:
                outcome = "duplicate"
            stored[key] = decision.record
        outcomes[outcome] += 1
    return outcomes


@pytest.fixture
def roles(
    stack_settings: Settings, tmp_path: Path
) -> Iterator[tuple[Settings, RoleProcess, RoleProcess]]:
    settings = create_topics(replace(stack_settings, worker_port=free_port(), api_port=free_port()))
    env = settings_env(settings)
    worker = RoleProcess(["worker"], env=env, log_file=tmp_path / "worker.log").start()
    api = RoleProcess(["api"], env=env, log_file=tmp_path / "api.log").start()
    try:
        worker.wait_http(f"http://127.0.0.1:{settings.worker_port}/healthz")
        api.wait_http(f"http://127.0.0.1:{settings.api_port}/healthz")
        yield settings, worker, api
    finally:
        worker.stop()
        api.stop()


async def test_outcome_counts_histograms_api_requests_and_dashboard_metrics(
    roles: tuple[Settings, RoleProcess, RoleProcess],
) -> None:
    settings, worker, _api = roles
    worker_url = f"http://127.0.0.1:{settings.worker_port}"
    api_url = f"http://127.0.0.1:{settings.api_port}"
    tenants = [f"m{random.randrange(10**9)}-{i}" for i in range(3)]
    items = list(
        generate_events(
            random.Random(31), tenants=tenants, now_ms=now_ms(), count=800, malformed_ratio=0.05
        )
    )
    expected = predicted_outcomes(settings, items)
    assert expected["invalid"] and expected["stored"] and expected["duplicate"]

    await produce(settings, items)

    async def counted() -> float:
        return total(fetch(f"{worker_url}/metrics"), "cdrstream_events_total")

    assert await wait_for(counted, lambda n: n >= len(items)) == len(items), worker.log_tail()
    worker_text = fetch(f"{worker_url}/metrics")
    by_outcome = {
        labels["outcome"]: value for labels, value in samples(worker_text, "cdrstream_events_total")
    }
    assert by_outcome == {name: float(expected.get(name, 0)) for name in by_outcome}
    assert set(by_outcome) == set(OUTCOMES)  # one series per outcome, even at zero
    assert total(worker_text, "cdrstream_dead_letters_total") == expected["invalid"]
    for histogram in (
        "cdrstream_produce_to_store_seconds_count",
        "cdrstream_end_to_end_latency_seconds_count",
        "cdrstream_processing_seconds_count",
        "cdrstream_batch_size_count",
        "cdrstream_redis_write_seconds_count",
    ):
        assert total(worker_text, histogram) > 0, histogram
    assert total(worker_text, "cdrstream_batch_size_sum") == len(items)

    async def lag() -> list[tuple[dict[str, str], float]]:
        return samples(fetch(f"{worker_url}/metrics"), "cdrstream_consumer_lag")

    # Every partition is sampled (every 5 s) and, all events written and committed, at 0.
    lags = await wait_for(
        lag, lambda s: len(s) == settings.topic_partitions and not any(v for _, v in s)
    )
    assert sorted(labels["partition"] for labels, _ in lags) == ["0", "1", "2"]
    assert [value for _, value in lags] == [0.0, 0.0, 0.0]

    assert await asyncio.to_thread(http_status, f"{worker_url}/readyz") == 200
    assert await asyncio.to_thread(http_status, f"{api_url}/readyz") == 200
    for _ in range(3):  # no token: 401, still counted, by route template
        status = await asyncio.to_thread(http_status, f"{api_url}/v1/tenants/{tenants[0]}/cdrs")
        assert status == 401
    api_text = fetch(f"{api_url}/metrics")
    requests = samples(api_text, "cdrstream_api_requests_total")
    unauthorized = [
        value
        for labels, value in requests
        if labels["route"] == "/v1/tenants/{tenant_id}/cdrs" and labels["status"] == "401"
    ]
    assert unauthorized == [3.0]
    assert all(tenants[0] not in str(labels) for labels, _ in requests)  # no tenant id label

    dashboard = json.loads((ROOT / "config/grafana/dashboards/cdrstream.json").read_text())
    assert dashboard["panels"] and dashboard["uid"] and dashboard["schemaVersion"]
    # A family counts as exported once declared (# TYPE), even before its first sample.
    exported = exported_names(worker_text) | exported_names(api_text)
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b(cdrstream_[a-z_]+)", target["expr"])
    }
    assert queried and queried <= exported, queried - exported
