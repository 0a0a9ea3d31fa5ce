"""The query endpoint under 50 concurrent clients mixing pages, filters, CSV and bad requests:
no 5xx, and no record of one tenant ever served on another tenant's route."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import orjson
import pytest

from cdrstream.access.access_store import issue_token
from cdrstream.settings import Settings
from cdrstream.simulation.records import synthetic_records
from cdrstream.stack.processes import free_port
from cdrstream.stack.roles import RoleProcess, settings_env
from cdrstream.store.connection import connect
from cdrstream.store.writer import RecordWriter
from tests.integration.pipeline_helpers import now_ms

pytestmark = [pytest.mark.integration, pytest.mark.fault]

CLIENTS = 50
SECONDS = 20
RECORDS_PER_TENANT = 3_000
BAD_QUERIES = (
    {"limit": "0"},
    {"limit": "many"},
    {"direction": "sideways"},
    {"from": "yesterday"},
    {"from": "2026-11-25T10:00:00Z", "to": "2026-11-25T09:00:00Z"},
    {"cursor": "not-a-cursor"},
    {"number": "call me"},
    {"surprise": "1"},
)


@pytest.fixture
def api(redis_settings: Settings, tmp_path: Path) -> Iterator[tuple[Settings, RoleProcess]]:
    settings = replace(redis_settings, api_port=free_port(), api_bind="127.0.0.1")
    process = RoleProcess(["api"], env=settings_env(settings), log_file=tmp_path / "api.log")
    process.start().wait_http(f"http://127.0.0.1:{settings.api_port}/healthz")
    yield settings, process
    process.stop()


async def _fill(settings: Settings, tenant: str, seed: int) -> set[str]:
    records = synthetic_records(tenant, RECORDS_PER_TENANT, now_ms(), random.Random(seed))
    redis = connect(settings)
    try:
        await RecordWriter(redis, retention_ms=settings.retention_ms).write_batch(records, now_ms())
    finally:
        await redis.aclose()
    return {record.id for record in records}


async def test_fifty_clients_no_5xx_and_no_wrong_tenant_record(
    api: tuple[Settings, RoleProcess],
) -> None:
    settings, process = api
    suffix = random.randrange(10**9)
    tenants = [f"load-a-{suffix}", f"load-b-{suffix}"]
    ids = {t: await _fill(settings, t, n) for n, t in enumerate(tenants)}
    tokens = {
        t: issue_token(settings.access_file, partner=f"p{n}", tenants=[t], airtime_reseller=True)[0]
        for n, t in enumerate(tenants)
    }
    base = f"http://127.0.0.1:{settings.api_port}/v1/tenants"
    statuses: Counter[int] = Counter()
    leaks: list[str] = []
    deadline = time.monotonic() + SECONDS

    async def client(n: int, session: aiohttp.ClientSession) -> None:
        rng = random.Random(n)
        while time.monotonic() < deadline:
            tenant = rng.choice(tenants)
            headers = {"Authorization": f"Bearer {tokens[tenant]}"}
            action = rng.random()
            if action < 0.1:  # another partner's tenant: 403, nothing else
                other = tenants[1 - tenants.index(tenant)]
                async with session.get(f"{base}/{other}/cdrs", headers=headers) as answer:
                    statuses[answer.status] += 1
                    body = await answer.read()
                    if any(i.encode() in body for i in ids[other]):
                        leaks.append(f"403 body of {other} names a record")
                continue
            if action < 0.25:
                params = rng.choice(BAD_QUERIES)
            elif action < 0.3:
                params = {"format": "csv", "extension": str(200 + rng.randrange(200))}
            else:
                params = rng.choice(
                    [
                        {},
                        {"direction": "inbound"},
                        {"extension": "201"},
                        {"number": "+3120"},
                        {"limit": str(rng.randrange(1, 1001))},
                    ]
                )
            cursor = None
            for _ in range(rng.randrange(1, 4)):  # walk a few pages
                query = {**params, **({"cursor": cursor} if cursor else {})}
                async with session.get(
                    f"{base}/{tenant}/cdrs", params=query, headers=headers
                ) as answer:
                    statuses[answer.status] += 1
                    body = await answer.read()
                    if answer.status == 429 and (
                        params.get("format") != "csv" or "Retry-After" not in answer.headers
                    ):
                        leaks.append(f"429 on {params} without being a CSV export with Retry-After")
                if answer.status != 200:
                    break
                if params.get("format") == "csv":
                    # An id starting with "-" carries the CSV export's formula guard "'".
                    served = {
                        line.split(b",")[0].strip(b'"').lstrip(b"'").decode()
                        for line in body.splitlines()[1:]
                    }
                    cursor = None
                else:
                    page = orjson.loads(body)
                    served = {r["id"] for r in page["records"]}
                    cursor = page["next_cursor"]
                if not served <= ids[tenant]:
                    leaks.append(
                        f"{tenant} served foreign records {sorted(served - ids[tenant])[:3]}"
                    )
                if not cursor:
                    break

    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(client(n, session) for n in range(CLIENTS)))

    assert leaks == []
    assert not [s for s in statuses if s >= 500], (statuses, process.log_tail())
    assert statuses[200] > 0 and statuses[400] > 0 and statuses[403] > 0
    # 429: a partner's concurrent CSV exports are bounded (checked above: only those).
    assert set(statuses) <= {200, 400, 403, 429}
