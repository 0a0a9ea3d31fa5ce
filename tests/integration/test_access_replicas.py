"""Access shared by API replicas through Redis: two real `cdrstream api` processes on one
Redis (single, and the real 3-master cluster), tokens issued and revoked with the real
`cdrstream token` command, cursors made on one replica followed on the other, the shared
cursor secret rotated. Delays are measured and printed (run with ``-s``), never asserted:
the test waits for each condition with a generous deadline."""

from __future__ import annotations

import asyncio
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis as redis_sync

from cdrstream.access import token_admin
from cdrstream.access.access_store import AccessUnavailable, issue_token, read_access
from cdrstream.access.redis_access import TOKENS, load_tokens
from cdrstream.access.redis_view import STALE_AFTER_S, RedisAccessView
from cdrstream.core.clock import now_ms
from cdrstream.settings import Settings, load_settings
from cdrstream.stack.processes import free_port
from cdrstream.stack.redis_server import RedisNode
from cdrstream.stack.roles import RoleProcess, settings_env
from cdrstream.store.connection import connect
from tests.integration.pipeline_helpers import cdrstream_command
from tests.integration.test_api import make_record

pytestmark = pytest.mark.integration

DEADLINE_S = 60.0


def status(base: str, path: str, token: str | None) -> int:
    return fetch(base, path, token)[0]


def fetch(base: str, path: str, token: str | None) -> tuple[int, Any]:
    request = urllib.request.Request(base + path)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, orjson.loads(answer.read())
    except urllib.error.HTTPError as exc:
        assert exc.headers["Content-Type"].startswith("application/problem+json")
        return exc.code, orjson.loads(exc.read())


def token_command(settings: Settings, *argv: str) -> subprocess.CompletedProcess[str]:
    done = cdrstream_command(settings, "token", *argv, timeout_s=120)
    done.check_returncode()
    return done


def wait_each(bases: list[str], done: Any, started: float) -> dict[str, float]:
    """Seconds from ``started`` until ``done(base)`` first held, per replica; polled as
    fast as the replicas answer. Fails only past the generous deadline."""
    delays: dict[str, float] = {}
    while len(delays) < len(bases):
        assert time.monotonic() - started < DEADLINE_S, f"not on every replica: {delays}"
        for base in bases:
            if base not in delays and done(base):
                delays[base] = time.monotonic() - started
    return delays


@pytest.fixture(params=["single", "cluster"])
def replicas(
    request: pytest.FixtureRequest, redis_node: RedisNode, tmp_path: Path
) -> Iterator[tuple[Settings, list[str]]]:
    if request.param == "cluster":
        url, cluster = request.getfixturevalue("redis_cluster_url"), True
    else:
        url, cluster = redis_node.url, False
    settings = replace(
        load_settings({}),
        redis_url=url,
        redis_cluster=cluster,
        api_bind="127.0.0.1",
        access_file="",  # tokens in Redis
        cursor_secret="",  # the shared, generated one
    )
    processes, bases = [], []
    for n in range(2):
        port = free_port()
        process = RoleProcess(
            ["api"],
            env=settings_env(replace(settings, api_port=port)),
            log_file=tmp_path / f"api{n}.log",
        )
        processes.append(process)
        bases.append(f"http://127.0.0.1:{port}")
    try:
        for process, base in zip(processes, bases, strict=True):
            process.start().wait_http(f"{base}/healthz", timeout_s=60)
        yield settings, bases
    finally:
        for process in processes:
            assert process.stop(timeout_s=30) == 0, process.log_tail()


async def _write_records(settings: Settings, tenant: str, count: int) -> list[str]:
    from cdrstream.store.writer import RecordWriter

    now = now_ms()
    records = [make_record(tenant, n, now - (n + 1) * 60_000) for n in range(count)]
    redis = connect(settings)
    try:
        await RecordWriter(redis, retention_ms=settings.retention_ms).write_batch(records, now)
    finally:
        await redis.aclose()
    return [r.id for r in records]  # newest first: started 1, 2, ... minutes ago


def test_issue_revoke_and_cursors_across_replicas(
    replicas: tuple[Settings, list[str]], request: pytest.FixtureRequest
) -> None:
    settings, bases = replicas
    tenant = f"rep-{uuid.uuid4().hex[:8]}"
    newest_first = asyncio.run(_write_records(settings, tenant, 6))
    path = f"/v1/tenants/{tenant}/cdrs"

    # Issued with the command: usable on both replicas. Delays count from the command's
    # return (it writes to Redis just before it exits).
    token = token_command(
        settings, "issue", "--partner", "replica-partner", "--tenants", tenant, "--airtime-reseller"
    ).stdout.strip()
    started = time.monotonic()
    issued = wait_each(bases, lambda b: status(b, path, token) == 200, started)

    # A cursor made on one replica pages on the other, and on itself after it.
    first_code, first = fetch(bases[0], f"{path}?limit=2", token)
    assert first_code == 200
    second_code, second = fetch(bases[1], f"{path}?limit=2&cursor={first['next_cursor']}", token)
    assert second_code == 200
    third_code, third = fetch(bases[0], f"{path}?limit=2&cursor={second['next_cursor']}", token)
    assert third_code == 200
    pages = [first, second, third]
    assert [r["id"] for p in pages for r in p["records"]] == newest_first

    # Rotation: new cursors everywhere; those made before it are still accepted.
    old_cursor = first["next_cursor"]
    token_command(settings, "rotate-cursor-secret")
    wait_each(
        bases,
        lambda b: fetch(b, f"{path}?limit=2", token)[1]["next_cursor"] != old_cursor,
        time.monotonic(),
    )
    for base in bases:
        code, page = fetch(base, f"{path}?limit=2&cursor={old_cursor}", token)
        assert code == 200 and page["records"] == second["records"]
    new_cursor = fetch(bases[1], f"{path}?limit=2", token)[1]["next_cursor"]
    code, page = fetch(bases[0], f"{path}?limit=2&cursor={new_cursor}", token)
    assert code == 200 and page["records"] == second["records"]

    # Revoked with the command: refused on both, and never let in again.
    token_command(settings, "revoke", "--partner", "replica-partner")
    wait_each(bases, lambda b: status(b, path, token) == 401, time.monotonic())
    for base in bases:
        assert status(base, path, token) == 401

    # The delays, timed from just before the write (what the command runs, in-process, so
    # no interpreter start-up is counted) to each replica's first answer that shows it.
    started = time.monotonic()
    timed, _ = token_admin.issue(
        settings, partner="replica-timed", tenants=[tenant], airtime_reseller=True
    )
    issued = wait_each(bases, lambda b: status(b, path, timed) == 200, started)
    started = time.monotonic()
    token_admin.revoke(settings, partner="replica-timed")
    refused = wait_each(bases, lambda b: status(b, path, timed) == 401, started)
    report = {
        "issued_visible_s": [round(issued[b], 3) for b in bases],
        "revoked_refused_s": [round(refused[b], 3) for b in bases],
    }
    request.node.user_properties.append(("delays", report))
    print(f"\n[{request.node.callspec.id}] delays from the write: {report}")


def test_token_import_brings_an_access_file_over_once(
    redis_node: RedisNode, tmp_path: Path
) -> None:
    settings = replace(load_settings({}), redis_url=redis_node.url, access_file="")
    path = tmp_path / "access.json"
    _, live = issue_token(path, partner="file-partner", tenants=["t-1"], airtime_reseller=True)
    _, gone = issue_token(path, partner="file-gone", tenants=["t-1"], airtime_reseller=True)
    from cdrstream.access.access_store import revoke_tokens

    revoke_tokens(path, partner="file-gone")
    first = token_command(settings, "import", str(path)).stdout
    assert "imported 2 tokens" in first
    again = token_command(settings, "import", str(path)).stdout
    assert "imported 0 tokens" in again and "2 were there" in again
    stored = asyncio.run(_load(settings))
    assert stored.lookup(live.token_id) == read_access(path).lookup(live.token_id)
    gone_stored = stored.lookup(gone.token_id)
    assert gone_stored is not None and gone_stored.revoked
    # Only hashes crossed over: the stored values hold no token.
    raw = redis_sync.Redis.from_url(redis_node.url).hget(TOKENS, live.token_id)
    assert raw is not None and orjson.loads(raw)["token_hash"] == live.token_hash


async def _load(settings: Settings) -> Any:
    redis = connect(settings)
    try:
        return await load_tokens(redis)
    finally:
        await redis.aclose()


async def test_a_copy_not_confirmed_within_a_second_is_refused_not_trusted(
    redis_node: RedisNode,
) -> None:
    """Never an open door: the copy a replica holds is only used while Redis confirmed
    it within ``STALE_AFTER_S``; past that the answer is "unavailable" (a 503)."""
    now = [100.0]
    settings = replace(load_settings({}), redis_url=redis_node.url)
    redis = connect(settings)
    try:
        view = RedisAccessView(redis, clock=lambda: now[0])
        with pytest.raises(AccessUnavailable):
            view.current()  # nothing loaded yet
        await view.refresh()
        assert view.current() is not None
        now[0] += STALE_AFTER_S + 0.01
        with pytest.raises(AccessUnavailable):
            view.current()
        await view.ensure_fresh()  # what a tenant route awaits first: one poll
        assert view.current() is not None
    finally:
        await redis.aclose()


def test_redis_down_is_503_for_tokens_never_an_open_door(tmp_path: Path) -> None:
    node = RedisNode(base_dir=tmp_path / "redis", port=free_port())
    node.up()
    settings = replace(
        load_settings({}),
        redis_url=node.url,
        api_bind="127.0.0.1",
        api_port=free_port(),
        access_file="",
        cursor_secret="",
    )
    base = f"http://127.0.0.1:{settings.api_port}"
    process = RoleProcess(["api"], env=settings_env(settings), log_file=tmp_path / "api.log")
    try:
        tenant = f"down-{uuid.uuid4().hex[:8]}"
        token = token_command(
            settings,
            "issue",
            "--partner",
            "down-partner",
            "--tenants",
            tenant,
            "--airtime-reseller",
        ).stdout.strip()
        revoked = token_command(
            settings, "issue", "--partner", "down-gone", "--tenants", tenant, "--airtime-reseller"
        ).stdout.strip()
        token_command(settings, "revoke", "--partner", "down-gone")
        process.start().wait_http(f"{base}/healthz", timeout_s=60)
        path = f"/v1/tenants/{tenant}/cdrs"
        wait_each([base], lambda b: status(b, path, token) == 200, time.monotonic())
        assert status(base, path, revoked) == 401
        node.down()
        # At once the reads fail (503); once the copy of the tokens is older than
        # STALE_AFTER_S, even a token it would refuse is "unavailable", never decided
        # from a copy that may miss a revocation. Never a 200.
        made_up = "cdrs_0123456789ab_" + "A" * 43
        wait_each([base], lambda b: status(b, path, made_up) == 503, time.monotonic())
        for credential in (token, revoked, made_up):
            assert status(base, path, credential) == 503
        assert status(base, path, None) == 401  # no credential: nothing to look up
        node.up()
        wait_each([base], lambda b: status(b, path, token) == 200, time.monotonic())
        assert status(base, path, revoked) == 401
    finally:
        process.stop(timeout_s=30)
        node.down()
