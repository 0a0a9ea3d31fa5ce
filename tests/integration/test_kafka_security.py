"""A secured Kafka: a local KRaft broker with a `SASL_SSL` listener (a CA and a broker
certificate made here, SCRAM users created at format time), and every role on it through
the settings alone: `cdrstream topics`, `cdrstream generate`, a real `cdrstream worker`
consuming into Redis. Wrong credentials or an untrusted certificate are refused at once,
naming the setting to fix and never the password; the worker then stays up unready."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cdrstream.kafka_connection import client_options
from cdrstream.settings import Settings, load_settings
from cdrstream.stack.kafka import KafkaNode, SaslSslListener
from cdrstream.stack.processes import free_port
from cdrstream.stack.roles import RoleProcess, settings_env
from tests.integration.pipeline_helpers import (
    cdrstream_command,
    expected_records,
    now_ms,
    wait_for_records,
)

pytestmark = pytest.mark.integration

USER = "cdrstream-worker"
PASSWORD = "s3cret-" + uuid.uuid4().hex  # unique: a log line holding it is unmistakable


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_certificates(folder: Path) -> tuple[Path, Path]:
    """(CA certificate PEM, broker keystore PEM: PKCS#8 key + certificate chain) for a
    broker reached as 127.0.0.1 or localhost."""
    now = datetime.datetime.now(datetime.UTC)
    valid = (now - datetime.timedelta(hours=1), now + datetime.timedelta(days=1))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("cdrstream test CA"))
        .issuer_name(_name("cdrstream test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    broker = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = folder / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    keystore = folder / "broker-keystore.pem"
    keystore.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        + broker.public_bytes(serialization.Encoding.PEM)
        + ca.public_bytes(serialization.Encoding.PEM)
    )
    return ca_file, keystore


@pytest.fixture(scope="module")
def secured_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KafkaNode, Path]]:
    """A broker of this module's own with a SASL_SSL listener; (node, CA file)."""
    folder = tmp_path_factory.mktemp("kafka-sasl-ssl")
    ca_file, keystore = make_certificates(folder)
    defaults = load_settings({})
    node = KafkaNode(
        base_dir=folder / "kafka",
        port=free_port(),
        controller_port=free_port(),
        version=defaults.kafka_version,
        cache_dir=Path(defaults.cache_dir),
        sasl_ssl=SaslSslListener(port=free_port(), keystore_pem=keystore, users={USER: PASSWORD}),
    )
    node.up()
    yield node, ca_file
    node.down()


@pytest.fixture
def secured_settings(
    secured_broker: tuple[KafkaNode, Path], redis_settings: Settings, tmp_path: Path
) -> Settings:
    node, ca_file = secured_broker
    assert node.sasl_ssl is not None
    suffix = uuid.uuid4().hex[:8]
    return replace(
        redis_settings,
        kafka_bootstrap=f"localhost:{node.sasl_ssl.port}",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username=USER,
        kafka_sasl_password=PASSWORD,
        kafka_ca_file=str(ca_file),
        topic=f"cdr.secured.{suffix}",
        dlq_topic=f"cdr.secured.{suffix}.dlq",
        consumer_group=f"cdrstream-secured-{suffix}",
        topic_partitions=3,
        worker_port=free_port(),
    )


def command(settings: Settings, *argv: str) -> subprocess.CompletedProcess[str]:
    return cdrstream_command(settings, *argv, timeout_s=180)


def readyz(port: int) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as answer:
            return answer.status, orjson.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


async def read_topic(settings: Settings, count: int) -> list[tuple[str, bytes]]:
    """The topic's messages from the start, read through the secured listener."""
    consumer = AIOKafkaConsumer(
        settings.topic,
        **client_options(settings),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    items: list[tuple[str, bytes]] = []
    try:
        async with asyncio.timeout(120):
            while len(items) < count:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    items += [(m.key.decode(), m.value) for m in batch if m.value is not None]
    finally:
        await consumer.stop()
    return items


async def test_events_flow_end_to_end_through_sasl_ssl(
    secured_settings: Settings, tmp_path: Path
) -> None:
    settings = secured_settings
    created = command(settings, "topics", "create", "--replication-factor", "1")
    assert created.returncode == 0, created.stderr
    checked = command(settings, "topics", "check")
    assert (checked.returncode, checked.stderr) == (0, "")
    tenants = "secured-a,secured-b,secured-c"
    generated = command(
        settings, "generate", "--count", "600", "--rate", "0", "--tenants", tenants, "--seed", "5"
    )
    assert generated.returncode == 0, generated.stderr
    items = await read_topic(settings, 600)
    assert len(items) == 600
    expected = expected_records(settings, items, now_ms())
    assert len(expected) > 400  # the generator's few malformed and duplicate events aside

    worker = RoleProcess(
        ["worker"], env=settings_env(settings), log_file=tmp_path / "worker.log"
    ).start()
    try:
        worker.wait_http(f"http://127.0.0.1:{settings.worker_port}/readyz", timeout_s=120)
        found = await wait_for_records(settings, tenants.split(","), expected)
        assert {key: copies for key, copies in found.items()} == {
            key: [record] for key, record in expected.items()
        }, worker.log_tail()
        assert PASSWORD not in worker.log_file.read_text()
    finally:
        worker.stop()


def test_wrong_password_is_refused_at_once_naming_the_setting(
    secured_settings: Settings, tmp_path: Path
) -> None:
    wrong = replace(secured_settings, kafka_sasl_password="not-" + PASSWORD)
    for argv in (("topics", "check"), ("generate", "--count", "1"), ("rebuild",)):
        answer = command(wrong, *argv)
        assert answer.returncode == 2, answer.stderr
        assert "CDRSTREAM_KAFKA_SASL_PASSWORD" in answer.stderr
        assert wrong.kafka_sasl_password not in answer.stdout + answer.stderr

    wrong = replace(wrong, ingest_port=free_port(), ingest_bind="127.0.0.1")
    receiver = RoleProcess(
        ["ingest", "freeswitch"], env=settings_env(wrong), log_file=tmp_path / "ingest.log"
    ).start()
    worker = RoleProcess(["worker"], env=settings_env(wrong), log_file=tmp_path / "worker.log")
    worker.start()
    try:
        receiver.wait_http(f"http://127.0.0.1:{wrong.ingest_port}/readyz", status=503)
        await_refused = receiver.log_file.read_text()
        deadline = time.monotonic() + 120  # it connects in the background: wait for its answer
        while "kafka refused" not in await_refused:
            assert time.monotonic() < deadline, f"no refusal logged:\n{receiver.log_tail()}"
            time.sleep(0.2)
            await_refused = receiver.log_file.read_text()
        status, body = readyz(wrong.ingest_port)
        assert status == 503
        assert "CDRSTREAM_KAFKA_SASL_PASSWORD" in str(body["checks"]), await_refused
        assert wrong.kafka_sasl_password not in await_refused
        worker.wait_http(f"http://127.0.0.1:{wrong.worker_port}/readyz", status=503)
        status, body = readyz(wrong.worker_port)
        assert status == 503
        assert "CDRSTREAM_KAFKA_SASL_PASSWORD" in str(body["checks"])
        assert worker.running  # up and unready: restarting would meet the same refusal
        log = worker.log_file.read_text()
        assert wrong.kafka_sasl_password not in log
        assert PASSWORD not in log
        lines = log.splitlines()
        assert len([line for line in lines if "kafka refused" in line]) == 1, log
        assert not [line for line in lines if "retrying" in line], log
    finally:
        codes = {p.argv[0]: p.stop() for p in (worker, receiver)}
    assert codes == {"worker": 0, "ingest": 0}, worker.log_tail() + "\n" + receiver.log_tail()


def test_untrusted_certificate_is_refused_naming_the_ca_setting(
    secured_settings: Settings,
) -> None:
    answer = command(replace(secured_settings, kafka_ca_file=""), "topics", "check")
    assert answer.returncode == 2, answer.stderr
    assert "CDRSTREAM_KAFKA_CA_FILE" in answer.stderr
    assert "certificate" in answer.stderr
