"""The Kubernetes example manifests (config/kubernetes/) against the Kubernetes API schemas
(kubernetes-validate's bundled OpenAPI schemas, strict: an unknown field fails), and
against the product: real settings names, probes on the roles' health routes and ports."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from cdrstream.settings import Settings, env_name, load_settings

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = sorted((ROOT / "config" / "kubernetes").glob("*.yaml"))
K8S_VERSION = "1.30.0"


def documents() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc


DOCS = dict(documents())


def deployments() -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in DOCS.values() if d["kind"] == "Deployment"}


@pytest.mark.parametrize("name", sorted(DOCS))
def test_every_manifest_is_valid_against_the_kubernetes_schemas(name: str) -> None:
    kubernetes_validate.validate(DOCS[name], K8S_VERSION, strict=True)


def test_the_validator_refuses_a_misspelt_field() -> None:
    broken = copy.deepcopy(deployments()["cdrstream-api"])
    broken["spec"]["replica"] = broken["spec"].pop("replicas")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_the_roles_and_their_budgets_are_all_there() -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in DOCS.values()}
    for role in ("cdrstream-worker", "cdrstream-api", "cdrstream-ingest-freeswitch"):
        assert ("Deployment", role) in kinds
        assert ("PodDisruptionBudget", role) in kinds
    assert ("Job", "cdrstream-topics") in kinds


def test_every_environment_name_is_a_real_setting() -> None:
    known = {env_name(f.name) for f in fields(Settings)}
    named: set[str] = set()
    for doc in DOCS.values():
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "cdrstream":
            named |= set(doc["data"])
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        for container in spec.get("containers", []):
            named |= {e["name"] for e in container.get("env", [])}
    assert named and named - known == set()


@pytest.mark.parametrize(
    ("deployment", "port_setting", "command"),
    [
        ("cdrstream-worker", "worker_port", ["worker"]),
        ("cdrstream-api", "api_port", ["api"]),
        ("cdrstream-ingest-freeswitch", "ingest_port", ["ingest", "freeswitch"]),
    ],
)
def test_probes_ask_the_roles_health_routes_on_their_ports(
    deployment: str, port_setting: str, command: list[str]
) -> None:
    container = deployments()[deployment]["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == command
    port = getattr(load_settings({}), port_setting)
    (declared,) = container["ports"]
    assert declared["containerPort"] == port
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": declared["name"]}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": declared["name"]}


def test_no_secret_value_is_in_the_manifests() -> None:
    assert not [d for d in DOCS.values() if d["kind"] == "Secret"]
    for doc in DOCS.values():
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        for container in spec.get("containers", []):
            for env in container.get("env", []):
                assert "value" not in env, env["name"]
