"""The OpenAPI document tells the truth: schemathesis, every check, against the real
`cdrstream api` process on the suite's Redis, with a real token and records.

Each operation of ``/openapi.json`` gets a bounded number of generated requests (valid ones,
and ones the schema forbids, which must be refused); every response is checked against the
document (status codes, content types, headers, bodies, the live tail's events). The one
built-in check replaced is ``positive_data_acceptance``: a request the schema allows may
still get a 400 for a rule no schema can state, and only for those listed in
``cdrstream.api.openapi.BEYOND_SCHEMA`` (the reason the API gives, which the parameter's
description states too). Any other drift between the document and the API fails here.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from cdrstream.access.access_store import issue_token
from cdrstream.api.openapi import BEYOND_SCHEMA, openapi_document
from cdrstream.core.event import TENANT_ID
from cdrstream.stack.redis_server import RedisNode
from cdrstream.stack.roles import RoleProcess, settings_env
from tests.integration.test_api import NOW_MS, _settings, _stop, _write, make_record

pytestmark = pytest.mark.integration

TENANT = f"schema-{uuid.uuid4().hex[:6]}"
SCHEMA = schemathesis.openapi.from_dict(openapi_document())
#: Generated requests per operation (and phase); enough to meet every parameter's edges.
EXAMPLES = 25


@dataclass
class Target:
    base: str
    token: str


@pytest.fixture(scope="module")
def target(redis_node: RedisNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    work = tmp_path_factory.mktemp("api-schemathesis")
    settings_ = _settings(redis_node.url, work)
    token, _ = issue_token(
        settings_.access_file, partner="schema-partner", tenants=[TENANT], airtime_reseller=True
    )
    records = [make_record(TENANT, n, NOW_MS - (n + 1) * 3_600_000) for n in range(30)]
    asyncio.run(_write(settings_, records))
    # A live stream ends after a second, so that a generated GET of the live tail returns.
    process = RoleProcess(
        ["api", "--live-max-lifetime", "1", "--live-heartbeat", "0.3"],
        env=settings_env(settings_),
        log_file=work / "api.log",
    )
    process.start().wait_http(f"http://127.0.0.1:{settings_.api_port}/healthz", timeout_s=60)
    yield Target(f"http://127.0.0.1:{settings_.api_port}", token)
    _stop(process)


def refused_only_beyond_schema(ctx: object, response: schemathesis.Response, case: object) -> None:
    """A request the schema allows is accepted, or refused (400) only for the reasons no
    schema can state (``BEYOND_SCHEMA``)."""
    meta = getattr(case, "meta", None)
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 400:
        return
    if getattr(case, "method", "GET").upper() == "HEAD":
        return  # no body to tell why; the GET of the same parameters is checked
    problems = response.json().get("invalid_params", [])
    unexplained = [
        p for p in problems if not p["reason"].startswith(BEYOND_SCHEMA.get(p["name"], "\0"))
    ]
    assert problems and not unexplained, f"schema-valid request refused: {unexplained}"


@SCHEMA.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_the_api_is_what_its_openapi_document_says(target: Target, case: schemathesis.Case) -> None:
    tenant = (case.path_parameters or {}).get("tenant_id")
    if isinstance(tenant, str) and TENANT_ID.fullmatch(tenant):
        # A valid tenant id becomes the token's tenant, so answers hold its real records;
        # an invalid one (a negative case) is sent as generated.
        case.path_parameters = {"tenant_id": TENANT}
    case.call_and_validate(
        base_url=target.base,
        headers={"Authorization": f"Bearer {target.token}"},
        excluded_checks=[positive_data_acceptance],
        additional_checks=[refused_only_beyond_schema],
        timeout=30,
    )
