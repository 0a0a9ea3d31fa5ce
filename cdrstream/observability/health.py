"""/healthz, /readyz and /metrics answers, the same shape on every role.

- ``/healthz``: ``{"status": "ok"}``, 200, whenever the process serves HTTP;
- ``/readyz``: ``{"status": "ready" | "not ready", "checks": {name: "ok" | reason}}``, 200 when
  every check passes, else 503 (a check's reason names the failing part and the exception
  type, never a secret or a record's data);
- ``/metrics``: the Prometheus text exposition of the process's default registry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

#: A readiness check: None when ready, else why not.
Check = Callable[[], Awaitable[str | None]]
CHECK_TIMEOUT_S = 2.0

HEALTHY: dict[str, str] = {"status": "ok"}
METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST


async def readiness(checks: Mapping[str, Check]) -> tuple[int, dict[str, Any]]:
    """(status, body) of ``/readyz`` from the role's checks, run concurrently."""
    names = list(checks)
    results = await asyncio.gather(*(_run(checks[name]) for name in names))
    answers = {name: result or "ok" for name, result in zip(names, results, strict=True)}
    ready = all(result is None for result in results)
    body = {"status": "ready" if ready else "not ready", "checks": answers}
    return (200 if ready else 503), body


async def _run(check: Check) -> str | None:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            return await check()
    except Exception as exc:  # readiness is an answer, not an error
        return f"check failed: {type(exc).__name__}"


def redis_check(client: Callable[[], Any]) -> Check:
    """Ready when Redis answers PING."""

    async def check() -> str | None:
        try:
            await client().ping()
        except Exception as exc:
            return f"redis unreachable: {type(exc).__name__}"
        return None

    return check


def metrics_body() -> bytes:
    return generate_latest()
