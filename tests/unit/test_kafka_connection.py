"""How every role connects to Kafka, from the environment: the aiokafka options, the
producers' durability, Faust's credentials, and refusals that name the variable to fix."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from cdrstream.kafka_connection import (
    KafkaSecurityError,
    client_options,
    faust_credentials,
    producer_options,
)
from cdrstream.settings import load_settings

PASSWORD = "pw-Zq8v1-never-printed"
CA_FILE = ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt"

SCRAM_SSL = {
    "CDRSTREAM_KAFKA_BOOTSTRAP": "kafka-1.example.net:9094,kafka-2.example.net:9094",
    "CDRSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "CDRSTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "CDRSTREAM_KAFKA_SASL_USERNAME": "cdrstream",
    "CDRSTREAM_KAFKA_SASL_PASSWORD": PASSWORD,
    "CDRSTREAM_KAFKA_CA_FILE": CA_FILE,
}


@pytest.mark.parametrize(
    ("env", "plain_options", "tls"),
    [
        ({}, {"bootstrap_servers": "127.0.0.1:9092", "security_protocol": "PLAINTEXT"}, False),
        (
            {"CDRSTREAM_KAFKA_SECURITY_PROTOCOL": "SSL", "CDRSTREAM_KAFKA_BOOTSTRAP": "k:9093"},
            {"bootstrap_servers": "k:9093", "security_protocol": "SSL"},
            True,
        ),
        (
            {
                "CDRSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "CDRSTREAM_KAFKA_SASL_MECHANISM": "PLAIN",
                "CDRSTREAM_KAFKA_SASL_USERNAME": "ingest",
                "CDRSTREAM_KAFKA_SASL_PASSWORD": PASSWORD,
            },
            {
                "bootstrap_servers": "127.0.0.1:9092",
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "PLAIN",
                "sasl_plain_username": "ingest",
                "sasl_plain_password": PASSWORD,
            },
            False,
        ),
        (
            SCRAM_SSL,
            {
                "bootstrap_servers": "kafka-1.example.net:9094,kafka-2.example.net:9094",
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "SCRAM-SHA-512",
                "sasl_plain_username": "cdrstream",
                "sasl_plain_password": PASSWORD,
            },
            True,
        ),
    ],
)
def test_client_options_from_the_environment(
    env: dict[str, str], plain_options: dict[str, Any], tls: bool
) -> None:
    options = client_options(load_settings(env))
    context = options.pop("ssl_context", None)
    assert options == plain_options
    if tls:  # the broker's certificate and host name are checked
        assert isinstance(context, ssl.SSLContext)
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.check_hostname is True
    else:
        assert context is None


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"CDRSTREAM_KAFKA_SECURITY_PROTOCOL": "TLS"}, "CDRSTREAM_KAFKA_SECURITY_PROTOCOL"),
        ({"CDRSTREAM_KAFKA_SECURITY_PROTOCOL": "sasl_ssl"}, "CDRSTREAM_KAFKA_SECURITY_PROTOCOL"),
        (
            {**SCRAM_SSL, "CDRSTREAM_KAFKA_SASL_MECHANISM": ""},
            "CDRSTREAM_KAFKA_SASL_MECHANISM",
        ),
        (
            {**SCRAM_SSL, "CDRSTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-1"},
            "CDRSTREAM_KAFKA_SASL_MECHANISM",
        ),
        (
            {**SCRAM_SSL, "CDRSTREAM_KAFKA_SASL_MECHANISM": "GSSAPI"},
            "CDRSTREAM_KAFKA_SASL_MECHANISM",
        ),
        ({**SCRAM_SSL, "CDRSTREAM_KAFKA_SASL_USERNAME": ""}, "CDRSTREAM_KAFKA_SASL_USERNAME"),
        (
            {"CDRSTREAM_KAFKA_SASL_MECHANISM": "PLAIN", "CDRSTREAM_KAFKA_SASL_USERNAME": "u"},
            "CDRSTREAM_KAFKA_SASL_MECHANISM",
        ),
        ({"CDRSTREAM_KAFKA_CA_FILE": CA_FILE}, "CDRSTREAM_KAFKA_CA_FILE"),
        (
            {**SCRAM_SSL, "CDRSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"},
            "CDRSTREAM_KAFKA_CA_FILE",
        ),
        (
            {**SCRAM_SSL, "CDRSTREAM_KAFKA_CA_FILE": "/nonexistent/ca.pem"},
            "CDRSTREAM_KAFKA_CA_FILE",
        ),
    ],
)
def test_settings_that_cannot_connect_are_refused_naming_the_variable(
    env: dict[str, str], variable: str
) -> None:
    settings = load_settings(env)
    for build in (client_options, producer_options, faust_credentials):
        with pytest.raises(KafkaSecurityError, match=variable) as refused:
            build(settings)
        assert PASSWORD not in str(refused.value)


def test_the_password_is_in_no_repr() -> None:
    settings = load_settings(SCRAM_SSL)
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in repr(faust_credentials(settings))


def test_every_producer_waits_for_all_in_sync_replicas_and_is_idempotent() -> None:
    for env in ({}, SCRAM_SSL):
        options = producer_options(load_settings(env))
        assert options.pop("acks") == "all"
        assert options.pop("enable_idempotence") is True
        plain = client_options(load_settings(env))
        assert options.keys() == plain.keys()
        assert options.get("sasl_plain_password") == plain.get("sasl_plain_password")


async def test_real_clients_accept_the_options() -> None:
    """aiokafka's own constructors check their arguments (an idempotent producer refuses
    ``acks`` other than all); nothing connects here."""
    settings = load_settings(SCRAM_SSL)
    producer = AIOKafkaProducer(**producer_options(settings))
    assert producer._txn_manager is not None  # idempotence on: aiokafka's sequence numbers
    AIOKafkaAdminClient(**client_options(settings))


@pytest.mark.parametrize(
    ("env", "protocol"),
    [
        ({}, None),
        ({"CDRSTREAM_KAFKA_SECURITY_PROTOCOL": "SSL"}, "SSL"),
        (SCRAM_SSL, "SASL_SSL"),
        (
            {
                **SCRAM_SSL,
                "CDRSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "CDRSTREAM_KAFKA_CA_FILE": "",
            },
            "SASL_PLAINTEXT",
        ),
    ],
)
def test_faust_connects_the_worker_as_the_other_roles_connect(
    env: dict[str, str], protocol: str | None
) -> None:
    """What Faust's aiokafka transport makes of the worker's credentials equals the other
    roles' options."""
    settings = load_settings(env)
    credentials = faust_credentials(settings)
    if protocol is None:
        assert credentials is None
        return
    faust_auth = {k: v for k, v in credentials_to_aiokafka_auth(credentials).items() if v}
    options = client_options(settings)
    del options["bootstrap_servers"]
    assert faust_auth.keys() == options.keys()
    for key, value in options.items():
        if key == "ssl_context":
            assert faust_auth[key].get_ca_certs() == value.get_ca_certs()
        else:
            assert faust_auth[key] == value
    assert faust_auth["security_protocol"] == protocol


def test_ca_file_is_the_one_trusted(tmp_path: Path) -> None:
    """The CA file's certificates are the context's trust anchors, not the system's."""
    from tests.integration.test_kafka_security import make_certificates

    ca_file, _keystore = make_certificates(tmp_path)
    options = client_options(load_settings({**SCRAM_SSL, "CDRSTREAM_KAFKA_CA_FILE": str(ca_file)}))
    subjects = [dict(x[0] for x in c["subject"]) for c in options["ssl_context"].get_ca_certs()]
    assert subjects == [{"commonName": "cdrstream test CA"}]
