"""How every role connects to Kafka: bootstrap servers, TLS and SASL, from the settings.

One place builds the connection options, so the worker (through Faust's broker
credentials), the ingest producers, the rebuild, the generator, `topics` and the benchmark
all connect alike, and a secured cluster needs nothing more than the settings. The
password is only ever handed to the client: it is in no repr and no log line.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from cdrstream.settings import Settings

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class KafkaSecurityError(ValueError):
    """The Kafka security settings contradict each other; the message names the setting."""


class KafkaAccessRefused(Exception):
    """The brokers refused the connection settings (credentials, TLS): retrying cannot help
    until an operator changes them. The message names the setting, never the password."""


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


def producer_options(settings: Settings) -> dict[str, Any]:
    """``client_options`` of every producer of the project: a write is acknowledged once
    every in-sync replica has it (``acks=all``; with ``min.insync.replicas=2`` at least two),
    and idempotence keeps the producer's own retries from writing an event twice."""
    return {**client_options(settings), "acks": "all", "enable_idempotence": True}


async def check_access(settings: Settings, *, timeout_s: float = 10.0) -> None:
    """Connect to the bootstrap servers with the settings' TLS and SASL until one accepts.

    aiokafka's clients catch a refused login while bootstrapping and retry it as if the
    broker were down ("Unable to bootstrap"); this check connects itself, so a refusal is
    told apart from an outage. Raises `KafkaAccessRefused` (permanent: wrong credentials,
    an untrusted certificate, a mechanism or protocol the listener does not speak), or
    ``KafkaConnectionError`` (transient) when no server answers.
    """
    from aiokafka import errors
    from aiokafka.conn import collect_hosts, create_conn

    options = client_options(settings)
    options.pop("bootstrap_servers")
    unreachable: list[str] = []
    for host, port, _family in collect_hosts(settings.kafka_bootstrap):
        try:
            async with asyncio.timeout(timeout_s):
                conn = await create_conn(
                    host, port, request_timeout_ms=int(timeout_s * 1000), **options
                )
        except errors.SaslAuthenticationFailed as exc:
            raise KafkaAccessRefused(
                f"kafka {host}:{port} refused the SASL login of CDRSTREAM_KAFKA_SASL_USERNAME="
                f"{settings.kafka_sasl_username!r} with {settings.kafka_sasl_mechanism}: check "
                f"CDRSTREAM_KAFKA_SASL_USERNAME and CDRSTREAM_KAFKA_SASL_PASSWORD ({exc})"
            ) from None
        except (errors.UnsupportedSaslMechanismError, errors.IllegalSaslStateError) as exc:
            raise KafkaAccessRefused(
                f"kafka {host}:{port} does not accept CDRSTREAM_KAFKA_SASL_MECHANISM="
                f"{settings.kafka_sasl_mechanism} over CDRSTREAM_KAFKA_SECURITY_PROTOCOL="
                f"{settings.kafka_security_protocol} ({type(exc).__name__})"
            ) from None
        except ssl.SSLCertVerificationError as exc:
            raise KafkaAccessRefused(
                f"kafka {host}:{port}: the broker's certificate is not trusted: "
                f"{exc.verify_message}; check CDRSTREAM_KAFKA_CA_FILE"
            ) from None
        except ssl.SSLError as exc:
            raise KafkaAccessRefused(
                f"kafka {host}:{port}: TLS handshake failed ({exc.reason}); check "
                "CDRSTREAM_KAFKA_SECURITY_PROTOCOL (does this listener speak TLS?)"
            ) from None
        except (OSError, TimeoutError, errors.KafkaError) as exc:
            unreachable.append(f"{host}:{port} ({type(exc).__name__})")
            continue
        conn.close()
        return
    raise errors.KafkaConnectionError(
        "no server of CDRSTREAM_KAFKA_BOOTSTRAP answered: " + ", ".join(unreachable)
    )


def refusal(settings: Settings) -> str | None:
    """Why Kafka refuses these settings, for a command to print before it exits 2; None
    when a server accepted them or none answered (the command's own client says so)."""
    from aiokafka.errors import KafkaConnectionError

    try:
        asyncio.run(check_access(settings))
    except (KafkaAccessRefused, KafkaSecurityError) as exc:
        return str(exc)
    except KafkaConnectionError:
        return None
    return None


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
