"""The query role's Faust app, and ``build_api``, which mounts the API on any Faust app.

The API is served by Faust's own web server (the aiohttp driver). Its routes are plain
aiohttp routes on the driver's ``web.Application`` (``app.web.web_app``): a CSV export
streams through ``aiohttp.web.StreamResponse``, which Faust's ``View`` layer does not offer.

Every request passes two middlewares, in this order:

1. ``observability.api_metrics.metrics_middleware``: requests by route template and
   status, latency (for a CSV export: until the last row);
2. ``problem_middleware``: turns whatever a handler raises into an
   ``application/problem+json`` answer: 404/405 from the router, 503 ``storage
   unavailable`` for Redis errors and timeouts, and a logged 500 for anything else (a bug:
   the fuzz tests look for it).

Security headers are added to every answer (``on_response_prepare``, so streamed answers
get them too).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import faust
from aiohttp import web
from faust.app import BootStrategy
from faust.web.base import BlueprintManager

from cdrstream.access.access_store import AccessCache
from cdrstream.api import problems
from cdrstream.api.openapi import openapi_document
from cdrstream.api.routes import ROUTES, STORAGE_ERRORS, Api, raised_in_redis_client
from cdrstream.observability.api_metrics import metrics_middleware
from cdrstream.settings import Settings
from cdrstream.store.connection import prepare
from cdrstream.store.reader import RecordReader
from cdrstream.tenant_profiles import load_tenant_profiles

log = logging.getLogger("cdrstream.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def create_api_app(settings: Settings, *, datadir: str | Path) -> faust.App:
    """A Faust app that only serves HTTP: no consumer, no producer, no sensors, no tables.

    ``datadir`` should be a throw-away directory: Faust creates it, the role stores nothing.
    """
    app = faust.App(
        "cdrstream-api",
        broker=[f"kafka://{server}" for server in settings.kafka_bootstrap.split(",")],
        producer_only=True,
        datadir=str(datadir),
        web_enabled=True,
        web_port=settings.api_port,
        web_bind=settings.api_bind,
        web_transport="tcp://",
        web_router_enabled=False,
        web_tables_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        web_metrics_enabled=False,
    )
    app.boot_strategy = BootStrategy(app, enable_kafka=False, enable_sensors=False)
    return app


def cursor_key(settings: Settings) -> bytes:
    if settings.cursor_secret:
        return settings.cursor_secret.encode("utf-8")
    log.warning(
        "CDRSTREAM_CURSOR_SECRET is not set: paging cursors are signed with a random key of "
        "this process, so they break on restart and across API replicas; set a shared secret"
    )
    return secrets.token_bytes(32)


def region_lookup(settings: Settings) -> Callable[[str], str]:
    """The region a tenant's numbers are typed in: the tenants file's, else the default."""
    profiles = load_tenant_profiles(settings.tenants_file) if settings.tenants_file else {}
    regions = {tenant: p.region for tenant, p in profiles.items() if p.region}
    default = settings.default_region

    def region_of(tenant_id: str) -> str:
        return regions.get(tenant_id, default)

    return region_of


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 404:
            return problems.problem(404, "no such route; see /openapi.json")
        if exc.status == 405:
            allow = exc.headers.get("Allow", "GET")
            return problems.problem(
                405, f"{request.method} is not served here; use {allow}", headers={"Allow": allow}
            )
        return problems.problem(exc.status, exc.reason)
    except STORAGE_ERRORS as exc:
        log.warning("storage unavailable on %s: %s: %s", request.path, type(exc).__name__, exc)
        return problems.storage_unavailable()
    except Exception as exc:
        if raised_in_redis_client(exc):
            # A bug of the Redis client under a failing connection (it lets out an
            # AttributeError or a RuntimeError of the closed transport instead of a
            # ConnectionError): the store failed, not this code. Logged with its traceback.
            log.warning(
                "storage unavailable on %s: %s inside the redis client",
                request.path,
                type(exc).__name__,
                exc_info=exc,
            )
            return problems.storage_unavailable()
        log.exception("unexpected error on %s %s", request.method, request.path)
        return problems.problem(500, "unexpected error; it has been logged")


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Cache-Control", "no-store")


def build_api(
    app: faust.App,
    settings: Settings,
    redis: Any,
    *,
    cursor_secret: bytes | None = None,
    access: AccessCache | None = None,
) -> Api:
    """Register the API's routes on ``app``'s web server; call before the app starts.

    Faust's built-in pages (its ``/`` index, router and table views) are dropped: the web
    page lives at ``/``. ``redis`` is a ``redis.asyncio`` client (or cluster client).
    """
    web_driver = app.web
    if not web_driver.blueprints.applied:
        web_driver.blueprints = BlueprintManager()
    web_app: web.Application = web_driver.web_app  # type: ignore[attr-defined]
    web_app.middlewares.append(metrics_middleware)
    web_app.middlewares.append(problem_middleware)
    web_app.on_response_prepare.append(_security_headers)
    api = Api(
        reader=RecordReader(
            redis,
            retention_ms=settings.retention_ms,
            cursor_secret=cursor_secret if cursor_secret is not None else cursor_key(settings),
        ),
        redis=redis,
        access=access or AccessCache(settings.access_file),
        display_tz=ZoneInfo(settings.display_tz),
        region_of=region_lookup(settings),
        retention_days=settings.retention_days,
        openapi_document=openapi_document,
    )
    for route in ROUTES:
        web_app.router.add_route("GET", route.aiohttp_path, getattr(api, route.handler))

    async def prepare_store(_: web.Application) -> None:
        try:
            await prepare(redis)
        except Exception as exc:  # Redis down at start: /readyz says so; serve anyway
            log.warning("redis not reachable at start: %s: %s", type(exc).__name__, exc)

    web_app.on_startup.append(prepare_store)
    return api
