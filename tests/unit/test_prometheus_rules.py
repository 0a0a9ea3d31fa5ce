"""The Prometheus files pass Prometheus's own checks (promtool, Debian's `prometheus` package):
both configurations and the rules are valid, the rules' unit tests pass, every alert is
tested firing and quiet and has a runbook, and the local and compose configurations agree."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from cdrstream.settings import load_settings
from cdrstream.stack.local import LocalStack
from cdrstream.stack.prometheus import CONFIG_DIR, render_config

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "config" / "prometheus"
DASHBOARD = ROOT / "config" / "grafana" / "dashboards" / "cdrstream.json"
RUNBOOK = ROOT / "docs" / "operations.md"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool not found: apt-get install prometheus (scripts/bootstrap.sh does)")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120, check=False)


def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load((PROM / "rules.yml").read_text())["groups"]
    return groups


def alerts() -> dict[str, dict[str, Any]]:
    return {
        rule["alert"]: rule for group in rule_groups() for rule in group["rules"] if "alert" in rule
    }


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_the_stack_reads_the_repository_files() -> None:
    assert PROM.resolve() == CONFIG_DIR


def test_compose_config_passes_promtool_with_its_rules() -> None:
    checked = promtool("check", "config", str(PROM / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "1 rule files found" in checked.stdout


def test_local_config_as_rendered_passes_promtool_with_its_rules(tmp_path: Path) -> None:
    config = tmp_path / "prometheus.yml"
    config.write_text(render_config(worker_target="127.0.0.1:6067", api_target="127.0.0.1:6066"))
    checked = promtool("check", "config", str(config))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "1 rule files found" in checked.stdout


def test_rules_pass_promtool_check_rules() -> None:
    checked = promtool("check", "rules", str(PROM / "rules.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


def test_rule_unit_tests_pass() -> None:
    tested = promtool("test", "rules", str(PROM / "rules_test.yml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_is_tested_firing_and_quiet() -> None:
    cases = yaml.safe_load((PROM / "rules_test.yml").read_text())["tests"]
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in cases:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert fires == set(alerts()), set(alerts()) ^ fires
    assert quiet == set(alerts()), set(alerts()) ^ quiet


def test_every_alert_has_a_severity_a_summary_and_a_runbook_entry() -> None:
    sections = dict(
        (match.group(1), match.group(2))
        for match in re.finditer(r"^### (\w+)\n(.*?)(?=^##|\Z)", RUNBOOK.read_text(), re.M | re.S)
    )
    for name, rule in alerts().items():
        assert rule["labels"]["severity"] in {"page", "ticket"}, name
        assert rule["annotations"]["summary"], name
        assert rule["annotations"]["runbook"] == f"docs/operations.md#{name.lower()}"
        assert name in sections, f"no runbook entry for {name} in docs/operations.md"
        for part in ("**Means**", "**Look at**", "**Do**"):
            assert part in sections[name], f"{name}: runbook has no {part}"


def test_dashboard_uses_only_recorded_series_that_exist() -> None:
    recorded = {
        rule["record"] for group in rule_groups() for rule in group["rules"] if "record" in rule
    }
    used = {
        name
        for expr in dashboard_exprs()
        for name in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", re.sub(r'"[^"]*"|\[[^]]*\]', "", expr))
        if ":" in name
    }
    assert used, "the dashboard reads no recorded series"
    assert used <= recorded, used - recorded


def test_local_and_compose_configs_agree() -> None:
    compose = yaml.safe_load((PROM / "prometheus.yml").read_text())
    local = yaml.safe_load(render_config(worker_target="127.0.0.1:1", api_target="127.0.0.1:2"))
    assert local["global"] == compose["global"]
    assert [job["job_name"] for job in local["scrape_configs"]] == [
        job["job_name"] for job in compose["scrape_configs"]
    ]
    assert [Path(f).resolve() for f in local["rule_files"]] == [
        (PROM / f).resolve() for f in compose["rule_files"]
    ]


def test_stack_prometheus_scrapes_the_ports_of_the_settings(tmp_path: Path) -> None:
    settings = replace(load_settings({}), worker_port=16067, api_port=16066, prometheus_port=19090)
    node = LocalStack.from_settings(settings, base_dir=tmp_path).prometheus
    assert node.port == 19090
    assert node.url == "http://127.0.0.1:19090"
    assert node.base_dir == (tmp_path / "prometheus").resolve()
    assert ("prometheus", 19090, "CDRSTREAM_PROMETHEUS_PORT") in node.listens_on()
    config = yaml.safe_load(
        render_config(worker_target=node.worker_target, api_target=node.api_target)
    )
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]
    }
    assert targets == {
        "cdrstream-worker": ["127.0.0.1:16067"],
        "cdrstream-api": ["127.0.0.1:16066"],
    }


def test_stack_prometheus_keeps_config_and_data_under_the_stack_dir(tmp_path: Path) -> None:
    settings = replace(load_settings({}), worker_port=16067, api_port=16066, prometheus_port=19090)
    node = LocalStack.from_settings(settings, base_dir=tmp_path).prometheus
    node.base_dir.mkdir(parents=True)
    argv = node.command()
    assert f"--web.listen-address=127.0.0.1:{node.port}" in argv
    assert f"--storage.tsdb.path={node.base_dir / 'data'}" in argv
    assert f"--config.file={node.config_file}" in argv
    assert node.config_file.parent == node.base_dir
    assert "127.0.0.1:16067" in node.config_file.read_text()
