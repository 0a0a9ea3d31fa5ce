"""Every knob of cdrstream, read once from ``CDRSTREAM_*`` environment variables.

The README's configuration table is generated from ``FIELDS`` below (and a test
checks that the two agree), so a new knob is added here and nowhere else.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from cdrstream.core.clock import DAY_MS


@dataclass(frozen=True, slots=True)
class Settings:
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = ""
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = field(default="", repr=False)
    kafka_ca_file: str = ""
    topic: str = "cdr.call-ended"
    dlq_topic: str = "cdr.call-ended.dlq"
    topic_partitions: int = 6
    consumer_group: str = "cdrstream"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_cluster: bool = False
    retention_days: int = 30
    display_tz: str = "Europe/Amsterdam"
    default_region: str = "NL"
    tenants_file: str = ""
    access_file: str = ""
    api_bind: str = "0.0.0.0"
    api_port: int = 6066
    worker_port: int = 6067
    batch_max: int = 2000
    sweep_interval_s: int = 60
    stall_after_s: int = 30
    cursor_secret: str = field(default="", repr=False)
    oidc_issuer: str = ""
    oidc_audience: str = ""
    oidc_jwks_url: str = ""
    oidc_partner_claim: str = "sub"
    oidc_tenants_claim: str = "tenants"
    oidc_airtime_reseller_claim: str = "airtime_reseller"
    oidc_masked_claim: str = "masked_numbers"
    log_level: str = "INFO"
    stack_dir: str = "var/stack"
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    redis_port: int = 6379
    prometheus_port: int = 9090
    kafka_version: str = "4.1.1"
    cache_dir: str = str(Path.home() / ".cache" / "cdrstream")
    ingest_bind: str = "0.0.0.0"
    ingest_port: int = 6068
    ingest_credentials: str = field(default="", repr=False)
    ingest_tenant_variable: str = "cdrstream_tenant"
    ingest_default_tenant: str = ""
    ingest_trunk_profiles: str = "external"
    ingest_compression: str = "zstd"
    freeswitch_tenant_sources: str = "variable,domain,map"
    asterisk_tz: str = "UTC"
    asterisk_trunks: str = ""
    asterisk_tenant_sources: str = "map,accountcode"
    ami_host: str = "127.0.0.1"
    ami_port: int = 5038
    ami_username: str = ""
    ami_secret: str = field(default="", repr=False)

    @property
    def retention_ms(self) -> int:
        return self.retention_days * DAY_MS


DESCRIPTIONS: dict[str, str] = {
    "kafka_bootstrap": "Kafka bootstrap servers (comma separated)",
    "kafka_security_protocol": "`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`, for every role"
    " that talks to Kafka",
    "kafka_sasl_mechanism": "`PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`"
    " (with a `SASL_*` protocol)",
    "kafka_sasl_username": "SASL user name",
    "kafka_sasl_password": "SASL password. Never logged",
    "kafka_ca_file": "PEM file of the CA that signed the brokers' certificates (`SSL`, `SASL_SSL`);"
    " empty: the system's CAs",
    "topic": "call-ended event topic (key = tenant id)",
    "dlq_topic": "dead-letter topic for invalid events",
    "topic_partitions": "partitions when cdrstream creates the topics",
    "consumer_group": "Kafka consumer group (Faust app id) of the workers",
    "redis_url": "Redis URL (`redis://`, `rediss://`)",
    "redis_cluster": "`1` to use Redis Cluster mode",
    "retention_days": "days of calls kept and served per tenant",
    "display_tz": "IANA zone the web table and CSV show local times in",
    "default_region": "ISO 3166 region numbers are parsed with when neither event nor tenant says",
    "tenants_file": "JSON file: tenant id -> {region, outside_line}",
    "access_file": "JSON file of hashed tokens and partner contracts, for ONE host only; empty:"
    " tokens live in Redis, shared by every API replica (`cdrstream token import FILE`)",
    "api_bind": "address the HTTP servers bind (query endpoint and worker metrics)",
    "api_port": "port of the query endpoint and web page",
    "worker_port": "port of the worker's /metrics, /healthz, /readyz",
    "batch_max": "most events in one fetch, the worker's batch (one Redis round trip)",
    "sweep_interval_s": "seconds between sweeps of records older than the window",
    "stall_after_s": "seconds a batch may stay unwritten before the worker reports itself stalled",
    "cursor_secret": "HMAC key for paging cursors; empty: one generated secret shared by every"
    " replica through Redis (`cdrstream token rotate-cursor-secret`). Never logged",
    "oidc_issuer": "issuer (`iss`) of the platform's sign-in JWTs; empty: none accepted",
    "oidc_audience": "audience (`aud`) a sign-in JWT must name (required with the issuer)",
    "oidc_jwks_url": "the issuer's JWKS URL; empty: discovered from"
    " `<issuer>/.well-known/openid-configuration`",
    "oidc_partner_claim": "sign-in JWT claim holding the partner id",
    "oidc_tenants_claim": "claim holding the tenant ids (a list, or one space-separated string)",
    "oidc_airtime_reseller_claim": "claim (JSON boolean) saying the partner resells airtime",
    "oidc_masked_claim": "claim (JSON boolean) saying the caller is served masked numbers",
    "log_level": "log level (JSON lines on stderr)",
    "stack_dir": "where `cdrstream stack` keeps Kafka/Redis/Prometheus data, logs and pids",
    "kafka_port": "port of the local Kafka broker (`stack up`)",
    "kafka_controller_port": "port of the local KRaft controller (`stack up`)",
    "redis_port": "port of the local Redis (`stack up`)",
    "prometheus_port": "port of the local Prometheus (`stack up`)",
    "kafka_version": "Apache Kafka version `stack up` fetches from Maven Central",
    "cache_dir": "cache for the Kafka jars",
    "ingest_bind": "address the `cdrstream ingest freeswitch` receiver binds",
    "ingest_port": "port of the FreeSWITCH receiver: `POST /freeswitch`, health, metrics",
    "ingest_credentials": "`user:password` FreeSWITCH must send (HTTP basic; json_cdr's `cred`);"
    " empty: none. Never logged",
    "ingest_tenant_variable": "FreeSWITCH channel variable naming the tenant (else `domain_name`)",
    "ingest_default_tenant": "tenant of CDRs that name none (no variable/domain, no accountcode)",
    "ingest_trunk_profiles": "Sofia profiles (comma separated) whose legs face the PSTN",
    "ingest_compression": "codec of the adapters' Kafka batches: `zstd`, `lz4`, `gzip`, `snappy`,"
    " `none`",
    "freeswitch_tenant_sources": "where a FreeSWITCH leg's tenant comes from, in order:"
    " `variable`, `domain` (domain_name), `map` (tenants file trunks/numbers)",
    "asterisk_tz": "IANA zone of Asterisk's zone-less CDR times (`UTC` with `usegmtime=yes`)",
    "asterisk_trunks": "Asterisk trunk endpoints (comma separated); empty: non-numeric endpoints",
    "asterisk_tenant_sources": "where an Asterisk leg's tenant comes from, in order: `map`"
    " (tenants file trunks/numbers), `accountcode` (never a trunk's), `peeraccount`, `userfield`",
    "ami_host": "Asterisk manager (AMI) host for `cdrstream ingest asterisk-ami`",
    "ami_port": "Asterisk manager (AMI) port",
    "ami_username": "AMI user (manager.conf section, `read = cdr`)",
    "ami_secret": "AMI user's secret. Never logged",
}


def env_name(field_name: str) -> str:
    return "CDRSTREAM_" + field_name.upper()


def _coerce(raw: str, default: object) -> object:
    if isinstance(default, bool):
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if isinstance(default, int):
        return int(raw)
    return raw


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the environment; unset variables keep their defaults."""
    env = os.environ if environ is None else environ
    defaults = Settings()
    values: dict[str, object] = {}
    for f in fields(Settings):
        raw = env.get(env_name(f.name))
        if raw is not None and raw != "":
            try:
                values[f.name] = _coerce(raw, getattr(defaults, f.name))
            except ValueError as exc:
                raise SystemExit(f"{env_name(f.name)}: not a valid value: {raw!r}") from exc
    return Settings(**values)  # type: ignore[arg-type]
