"""`cdrstream ingest freeswitch` as a process: who may post without credentials, what its
/readyz says while the broker is away and after it returns, and what its batches look like
on the broker's disk (compressed, from an idempotent producer).

The outage test stops a Kafka broker of this module's own (the suite's shared broker keeps
serving the other tests), so the module starts one real broker for itself.
"""

from __future__ import annotations

import base64
import re
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import orjson
import pytest

from cdrstream.commands.demo import receiver_environment
from cdrstream.settings import Settings, load_settings
from cdrstream.stack.kafka import KafkaNode
from cdrstream.stack.processes import free_port
from cdrstream.stack.roles import RoleProcess, settings_env
from tests.conftest import running_kafka
from tests.integration.pipeline_helpers import create_topics
from tests.unit.test_ingest_freeswitch import leg

pytestmark = pytest.mark.integration

CREDENTIALS = "freeswitch:cdr-S3cret"
AUTH = "Basic " + base64.b64encode(CREDENTIALS.encode()).decode()
#: Record batch attributes, bits 0-2 (Kafka's protocol guide, "Record Batch").
CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


@pytest.fixture(scope="module")
def own_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaNode]:
    yield from running_kafka(tmp_path_factory.mktemp("kafka-outage"))


@pytest.fixture
def own_settings(stack_settings: Settings, own_kafka: KafkaNode) -> Settings:
    return create_topics(
        replace(
            stack_settings,
            kafka_bootstrap=own_kafka.bootstrap,
            ingest_port=free_port(),
            ingest_bind="127.0.0.1",
            ingest_credentials=CREDENTIALS,
        )
    )


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _post(url: str, document: dict) -> int:
    request = urllib.request.Request(url, data=orjson.dumps(document), method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", AUTH)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _seconds_until(url: str, status: int, *, deadline_s: float = 90.0) -> float:
    """Seconds until ``url`` answers ``status`` (fails after a generous deadline)."""
    began = time.monotonic()
    while time.monotonic() - began < deadline_s:
        if _status(url) == status:
            return time.monotonic() - began
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer {status} within {deadline_s} s")


@pytest.fixture
def receiver(own_settings: Settings, tmp_path: Path) -> Iterator[RoleProcess]:
    process = RoleProcess(
        ["ingest", "freeswitch"], env=settings_env(own_settings), log_file=tmp_path / "ingest.log"
    ).start()
    try:
        process.wait_http(f"http://127.0.0.1:{own_settings.ingest_port}/readyz")
        yield process
    finally:
        assert process.stop() == 0, process.log_tail()


def test_readyz_follows_the_broker_through_an_outage(
    own_settings: Settings, own_kafka: KafkaNode, receiver: RoleProcess, tmp_path: Path
) -> None:
    base = f"http://127.0.0.1:{own_settings.ingest_port}"
    tenant = f"acme-{uuid.uuid4().hex[:8]}"
    assert _post(f"{base}/freeswitch", leg(cdrstream_tenant=tenant)) == 200
    own_kafka.down()
    try:
        went_away = _seconds_until(f"{base}/readyz", 503)
        assert _post(f"{base}/freeswitch", leg(cdrstream_tenant=tenant)) == 503
    finally:
        own_kafka.up()
    came_back = _seconds_until(f"{base}/readyz", 200)
    assert _post(f"{base}/freeswitch", leg(cdrstream_tenant=tenant)) == 200
    print(f"\nreadyz: 503 {went_away:.1f} s after the broker stopped, 200 {came_back:.1f} s after")
    assert receiver.running
    repeats = _repeated_within(tmp_path / "ingest.log", seconds=9.0)
    assert repeats == [], repeats[:3]


_HELD_BACK = re.compile(r" \(\d+ more like it held back since the last one\)$")


def _repeated_within(log_file: Path, *, seconds: float) -> list[str]:
    """Warnings and errors logged again less than ``seconds`` after the same line."""
    last: dict[tuple[str, ...], datetime] = {}
    repeated = []
    for line in log_file.read_text().splitlines():
        if not line.startswith("{"):
            continue
        entry = orjson.loads(line)
        if entry["level"] not in {"warning", "error", "critical"}:
            continue
        message = _HELD_BACK.sub("", entry["msg"])
        key = (entry["logger"], entry["level"], message, str(entry.get("event_id")))
        at = datetime.fromisoformat(entry["ts"])
        if key in last and (at - last[key]).total_seconds() < seconds:
            repeated.append(line)
        last[key] = at
    return repeated


def _batch_headers(settings: Settings, node: KafkaNode) -> list[tuple[int, int]]:
    """``(attributes, producer id)`` of every record batch of the topic, read from the
    broker's log segments (Kafka's on-disk format is the wire format)."""
    headers = []
    for segment in sorted((node.base_dir / "data").glob(f"{settings.topic}-*/*.log")):
        data = segment.read_bytes()
        at = 0
        while at + 61 <= len(data):
            (length,) = struct.unpack_from(">i", data, at + 8)
            (attributes,) = struct.unpack_from(">h", data, at + 21)
            (producer_id,) = struct.unpack_from(">q", data, at + 43)
            headers.append((attributes, producer_id))
            at += 12 + length
    return headers


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
def test_the_receiver_sends_compressed_batches_from_an_idempotent_producer(
    own_settings: Settings, own_kafka: KafkaNode, tmp_path: Path, codec: str
) -> None:
    settings = create_topics(
        replace(own_settings, topic=f"{own_settings.topic}-{codec}", ingest_compression=codec)
    )
    env = settings_env(settings)
    if codec == "zstd":
        del env["CDRSTREAM_INGEST_COMPRESSION"]  # the default
    process = RoleProcess(["ingest", "freeswitch"], env=env, log_file=tmp_path / "i.log").start()
    base = f"http://127.0.0.1:{settings.ingest_port}"
    try:
        process.wait_http(f"{base}/readyz")
        for _ in range(3):
            assert _post(f"{base}/freeswitch", leg(cdrstream_tenant="acme")) == 200
    finally:
        assert process.stop() == 0, process.log_tail()
    headers = _batch_headers(settings, own_kafka)
    assert len(headers) == 3
    assert {attributes & 0x07 for attributes, _ in headers} == {CODEC_IDS[codec]}
    assert all(producer_id >= 0 for _, producer_id in headers)  # idempotent: has an id


# -- secure by default ------------------------------------------------------------------


def _settings(**changes: object) -> Settings:
    base = replace(
        load_settings({}),
        kafka_bootstrap=f"127.0.0.1:{free_port()}",  # nothing there: these need no Kafka
        ingest_port=free_port(),
        ingest_credentials="",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize("bind", ["0.0.0.0", "::", "192.0.2.10", "pbx-gateway.example"])
def test_without_credentials_a_public_bind_is_refused_at_once(bind: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cdrstream", "ingest", "freeswitch"],
        env=settings_env(_settings(ingest_bind=bind)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "CDRSTREAM_INGEST_CREDENTIALS" in done.stderr
    assert "--allow-anonymous" in done.stderr


def test_a_compression_kafka_does_not_offer_is_refused() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cdrstream", "ingest", "asterisk-csv", "Master.csv"],
        env=settings_env(_settings(ingest_compression="brotli")),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, "CDRSTREAM_INGEST_COMPRESSION" in done.stderr) == (2, True)


def _starts(argv: list[str], env: dict[str, str], port: int, log_file: Path) -> str:
    """Start the receiver, wait for /healthz, stop it; its log."""
    process = RoleProcess(argv, env=env, log_file=log_file).start()
    try:
        process.wait_http(f"http://127.0.0.1:{port}/healthz")
    finally:
        assert process.stop() == 0, process.log_tail()
    return log_file.read_text()


def test_without_credentials_loopback_and_the_demo_start(tmp_path: Path) -> None:
    loopback = _settings(ingest_bind="127.0.0.1")
    log = _starts(
        ["ingest", "freeswitch"], settings_env(loopback), loopback.ingest_port, tmp_path / "a.log"
    )
    assert "CDRSTREAM_INGEST_CREDENTIALS is not set" in log  # still a warning
    demo = _settings(ingest_bind="0.0.0.0")  # the default, as `make demo` has it
    _starts(
        ["ingest", "freeswitch"],
        receiver_environment(settings_env(demo)),
        demo.ingest_port,
        tmp_path / "b.log",
    )


def test_allow_anonymous_starts_on_any_address_with_a_warning(tmp_path: Path) -> None:
    public = _settings(ingest_bind="0.0.0.0")
    log = _starts(
        ["ingest", "freeswitch", "--allow-anonymous"],
        settings_env(public),
        public.ingest_port,
        tmp_path / "c.log",
    )
    warnings = [
        orjson.loads(line)
        for line in log.splitlines()
        if line.startswith("{") and "CDRSTREAM_INGEST_CREDENTIALS" in line
    ]
    assert [w["level"] for w in warnings] == ["warning"], log
    assert "--allow-anonymous" in warnings[0]["msg"]
