"""The worker through a real broker outage: /readyz says so within 15-20 s and recovers when
the broker returns, the outage is a metric, the log does not flood, and nothing is lost."""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from cdrstream.observability.scrape import fetch, total
from cdrstream.settings import Settings
from cdrstream.simulation.calls import generate_events
from cdrstream.stack.kafka import KafkaNode
from cdrstream.stack.processes import free_port
from tests.integration.pipeline_helpers import (
    create_topics,
    expected_records,
    now_ms,
    produce,
    start_worker,
    wait_for,
    wait_for_records,
)

pytestmark = [pytest.mark.integration, pytest.mark.fault]

OUTAGE_S = 45.0


def _readyz(settings: Settings) -> tuple[int, dict[str, object]]:
    url = f"http://127.0.0.1:{settings.worker_port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return int(answer.status), json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
    except OSError:  # no answer (refused, timed out): neither ready nor unready, ask again
        return 0, {}


@pytest.fixture
def outage_settings(stack_settings: Settings) -> Settings:
    return create_topics(replace(stack_settings, worker_port=free_port()))


async def test_worker_readiness_metric_and_log_through_a_broker_outage(
    outage_settings: Settings, kafka_node: KafkaNode, tmp_path: Path
) -> None:
    settings = outage_settings
    tenants = [f"out{random.randrange(10**9)}-{i}" for i in range(3)]
    before, after = (
        list(generate_events(random.Random(seed), tenants=tenants, now_ms=now_ms(), count=300))
        for seed in (1, 2)
    )
    log_file = tmp_path / "worker.log"
    worker = start_worker(settings, log_file)
    try:
        ready = await wait_for(lambda: asyncio.to_thread(_readyz, settings), lambda r: r[0] == 200)
        assert ready[0] == 200, worker.log_tail()
        await produce(settings, before)

        await asyncio.to_thread(kafka_node.down)
        down_at = time.monotonic()
        try:
            status, body = await wait_for(
                lambda: asyncio.to_thread(_readyz, settings), lambda r: r[0] == 503, timeout_s=60
            )
            assert status == 503, worker.log_tail()
            checks = body["checks"]
            assert isinstance(checks, dict)
            assert str(checks["kafka"]).startswith("no kafka broker reached for ")
            metrics = fetch(f"http://127.0.0.1:{settings.worker_port}/metrics")
            assert total(metrics, "cdrstream_worker_kafka_contact_age_seconds") >= 15
            assert worker.running
            await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
            outage_log = log_file.read_text()
        finally:
            await asyncio.to_thread(kafka_node.up)

        back = await wait_for(lambda: asyncio.to_thread(_readyz, settings), lambda r: r[0] == 200)
        assert back[0] == 200, worker.log_tail()
        await produce(settings, after)
        expected = expected_records(settings, before + after, now_ms())
        found = await wait_for_records(settings, tenants, expected)
        assert found == {key: [record] for key, record in expected.items()}, worker.log_tail()
    finally:
        worker.stop()

    # During the outage: each distinct library warning or error at most once per 30 s
    # (OUTAGE_S = 45 s: twice, plus the lines of the broker's return), none at ERROR for
    # Faust's stream-idle check.
    lines = [json.loads(line) for line in outage_log.splitlines() if line.startswith("{")]
    library = Counter(
        (line["logger"], re.sub(r"\d+(?:\.\d+)?", "#", str(line["msg"])))
        for line in lines
        if line["level"] in {"warning", "error", "critical"}
        and not str(line["logger"]).startswith("cdrstream")
    )
    assert library, "the outage left no trace in the log"
    assert max(library.values()) <= 3, library.most_common(3)
    assert any("repeated" in line for line in lines)
    assert not [
        line
        for line in lines
        if line["level"] == "error" and "Stream has not started processing" in str(line["msg"])
    ]
