"""How every role connects to Kafka: bootstrap servers, TLS and SASL, from the settings.

One place builds the connection options, so the worker (through Faust's broker
credentials), the ingest producers, the rebuild, the generator, `topics` and the benchmark
all connect alike, and a secured cluster needs nothing more than the settings. The
password is only ever handed to the client: it is in no repr and no log line.
"""

from __future__ import annotations

import ssl
from typing import Any

from cdrstream.settings import Settings

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class KafkaSecurityError(ValueError):
    """The Kafka security settings contradict each other; the message names the setting."""


def check_security(settings: Settings) -> None:
    """Refuse settings that cannot connect, naming the variable to fix."""
    protocol = settings.kafka_security_protocol
    if protocol not in PROTOCOLS:
        raise KafkaSecurityError(
            f"CDRSTREAM_KAFKA_SECURITY_PROTOCOL: {protocol!r} is not one of {', '.join(PROTOCOLS)}"
        )
    if protocol.startswith("SASL_"):
        if settings.kafka_sasl_mechanism not in SASL_MECHANISMS:
            raise KafkaSecurityError(
                f"CDRSTREAM_KAFKA_SASL_MECHANISM: {settings.kafka_sasl_mechanism!r} is not one of "
                f"{', '.join(SASL_MECHANISMS)} (needed with {protocol})"
            )
        if not settings.kafka_sasl_username:
            raise KafkaSecurityError(f"CDRSTREAM_KAFKA_SASL_USERNAME is needed with {protocol}")
    elif settings.kafka_sasl_mechanism:
        raise KafkaSecurityError(
            f"CDRSTREAM_KAFKA_SASL_MECHANISM is set but CDRSTREAM_KAFKA_SECURITY_PROTOCOL is "
            f"{protocol}: use SASL_SSL or SASL_PLAINTEXT"
        )
    if settings.kafka_ca_file and not protocol.endswith("SSL"):
        raise KafkaSecurityError(
            f"CDRSTREAM_KAFKA_CA_FILE is set but CDRSTREAM_KAFKA_SECURITY_PROTOCOL is {protocol}"
        )


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of an `SSL`/`SASL_SSL` connection (server certificate and host name
    verified against the CA file, or the system's CAs), else None."""
    if not settings.kafka_security_protocol.endswith("SSL"):
        return None
    try:
        return ssl.create_default_context(cafile=settings.kafka_ca_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise KafkaSecurityError(
            f"CDRSTREAM_KAFKA_CA_FILE: cannot read {settings.kafka_ca_file!r}: {exc}"
        ) from exc


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of any aiokafka client (producer, consumer, admin)."""
    check_security(settings)
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "security_protocol": settings.kafka_security_protocol,
    }
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if settings.kafka_security_protocol.startswith("SASL_"):
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password
    return options


def faust_credentials(settings: Settings) -> Any:
    """The worker's Faust ``broker_credentials`` (None for PLAINTEXT)."""
    import faust

    check_security(settings)
    protocol = settings.kafka_security_protocol
    if protocol.startswith("SASL_"):
        credentials = faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password,
            ssl_context=ssl_context(settings),
            mechanism=settings.kafka_sasl_mechanism,
        )
        return credentials
    if protocol == "SSL":
        return faust.SSLCredentials(ssl_context(settings))
    return None
