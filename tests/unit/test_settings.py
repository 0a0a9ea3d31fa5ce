"""Settings come from CDRSTREAM_* variables, and the deployment files agree with them."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from cdrstream.settings import DESCRIPTIONS, Settings, env_name, load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_the_spec_defaults() -> None:
    s = load_settings({})
    assert s.kafka_bootstrap == "127.0.0.1:9092"
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.topic == "cdr.call-ended"
    assert s.dlq_topic == "cdr.call-ended.dlq"
    assert s.retention_days == 30
    assert s.retention_ms == 30 * 86_400_000
    assert s.display_tz == "Europe/Amsterdam"
    assert s.default_region == "NL"
    assert (s.api_port, s.worker_port) == (6066, 6067)


def test_environment_overrides_with_types() -> None:
    s = load_settings(
        {
            "CDRSTREAM_RETENTION_DAYS": "7",
            "CDRSTREAM_REDIS_CLUSTER": "yes",
            "CDRSTREAM_TOPIC": "other",
            "CDRSTREAM_API_PORT": "",
        }
    )
    assert s.retention_days == 7
    assert s.redis_cluster is True
    assert s.topic == "other"
    assert s.api_port == 6066  # empty means unset


def test_bad_number_names_the_variable() -> None:
    with pytest.raises(SystemExit, match="CDRSTREAM_API_PORT"):
        load_settings({"CDRSTREAM_API_PORT": "eighty"})


def test_every_setting_is_described_and_in_the_readme() -> None:
    names = {f.name for f in fields(Settings)}
    assert names == set(DESCRIPTIONS)
    readme = (ROOT / "README.md").read_text()
    missing = [env_name(n) for n in names if env_name(n) not in readme]
    assert missing == []


def test_compose_environment_names_are_real_settings() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    known = {env_name(f.name) for f in fields(Settings)}
    services = compose["services"]
    for role in ("worker", "api", "generator"):
        env = services[role]["environment"]
        unknown = {k for k in env if k.startswith("CDRSTREAM_")} - known
        assert unknown == set(), role
    defaults = load_settings({})
    api_env = services["api"]["environment"]
    assert int(api_env["CDRSTREAM_API_PORT"]) == defaults.api_port
    assert f"{defaults.api_port}:{defaults.api_port}" in services["api"]["ports"]
    assert str(defaults.worker_port) in services["worker"]["expose"]
    assert api_env["CDRSTREAM_TOPIC"] == defaults.topic
    assert api_env["CDRSTREAM_DLQ_TOPIC"] == defaults.dlq_topic
    assert "--appendonly" in services["redis"]["command"]
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert {"kafka", "redis", "worker", "api", "generator", "prometheus", "grafana"} <= set(
        services
    )


def test_prometheus_scrapes_both_roles_on_their_ports() -> None:
    prom = yaml.safe_load((ROOT / "config" / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in prom["scrape_configs"]}
    defaults = load_settings({})
    assert jobs["cdrstream-worker"]["dns_sd_configs"][0]["port"] == defaults.worker_port
    assert jobs["cdrstream-api"]["static_configs"][0]["targets"] == [f"api:{defaults.api_port}"]
