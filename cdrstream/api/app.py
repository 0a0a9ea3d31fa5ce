"""The query role's aiohttp application, and ``build_api``, which mounts the API on any
aiohttp application.

The API is a plain ``aiohttp.web.Application`` (no Faust, no Kafka), served by
:mod:`cdrstream.api.server`. A CSV export streams through ``aiohttp.web.StreamResponse``.

Every request passes two middlewares, in this order:

1. ``observability.api_metrics.metrics_middleware``: requests by route template and
   status, latency (for a CSV export: until the last row);
2. ``problem_middleware``: turns whatever a handler raises into an
   ``application/problem+json`` answer: 404/405 from the router, 503 ``storage
   unavailable`` for Redis errors and timeouts, and a logged 500 for anything else (a bug:
   the fuzz tests look for it);
3. ``access_middleware``: on a tenant route, refreshes what the access decision needs
   when it is aging (``AccessCache.prepare``: the Redis copy of the tokens, a JWKS that
   lacks the sign-in token's key), so the decision itself (``access/policy.py``, in the
   handler) does no I/O. Access data that cannot be confirmed is a 503 (via 2.).

Security headers are added to every answer (``on_response_prepare``, so streamed answers
get them too; the answers to requests aiohttp cannot parse get them in ``server``).
Logs name a request by its route template, never by its path or query string: those may
hold a number someone called.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware

from cdrstream.access.access_store import AccessCache
from cdrstream.access.api_access import api_access
from cdrstream.api import problems
from cdrstream.api.exports import ExportLimits
from cdrstream.api.live import LiveHub, LiveLimits, LiveTail
from cdrstream.api.openapi import openapi_document
from cdrstream.api.routes import ROUTES, STORAGE_ERRORS, Api, raised_in_redis_client
from cdrstream.observability.api_metrics import metrics_middleware, route_template
from cdrstream.settings import Settings
from cdrstream.store.connection import prepare
from cdrstream.store.live import fetch_records
from cdrstream.store.reader import RecordReader
from cdrstream.tenant_profiles import load_tenant_profiles

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def create_api_app(
    settings: Settings,
    redis: Any,
    *,
    cursor_secret: bytes | None = None,
    access: AccessCache | None = None,
    export_limits: ExportLimits | None = None,
    live_limits: LiveLimits | None = None,
) -> web.Application:
    """The query role's application: the API and nothing else."""
    app = web.Application()
    build_api(
        app,
        settings,
        redis,
        cursor_secret=cursor_secret,
        access=access,
        export_limits=export_limits,
        live_limits=live_limits,
    )
    return app


def region_lookup(settings: Settings) -> Callable[[str], str]:
    """The region a tenant's numbers are typed in: the tenants file's, else the default."""
    profiles = load_tenant_profiles(settings.tenants_file) if settings.tenants_file else {}
    regions = {tenant: p.region for tenant, p in profiles.items() if p.region}
    default = settings.default_region

    def region_of(tenant_id: str) -> str:
        return regions.get(tenant_id, default)

    return region_of


def _where(request: web.Request) -> str:
    """A request as logs may name it: method and route template, never path or query."""
    return f"{request.method} {route_template(request)}"


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
            methods = sorted(m.strip() for m in exc.headers.get("Allow", "GET").split(","))
            allow = ", ".join(m for m in methods if m)
            return problems.problem(
                405, f"{request.method} is not served here; use {allow}", headers={"Allow": allow}
            )
        return problems.problem(exc.status, exc.reason)
    except STORAGE_ERRORS as exc:
        tenant = request.match_info.get("tenant_id")
        log.warning(
            "storage unavailable on %s: %s: %s",
            _where(request),
            type(exc).__name__,
            exc,
            extra={"tenant_id": tenant},
        )
        return problems.storage_unavailable()
    except Exception as exc:
        if raised_in_redis_client(exc):
            # A bug of the Redis client under a failing connection (it lets out an
            # AttributeError or a RuntimeError of the closed transport instead of a
            # ConnectionError): the store failed, not this code. Logged with its traceback.
            log.warning(
                "storage unavailable on %s: %s inside the redis client",
                _where(request),
                type(exc).__name__,
                exc_info=exc,
            )
            return problems.storage_unavailable()
        log.exception("unexpected error on %s", _where(request))
        return problems.problem(500, "unexpected error; it has been logged")


def access_middleware(access: AccessCache) -> Middleware:
    @web.middleware
    async def prepare_access(request: web.Request, handler: Handler) -> web.StreamResponse:
        if "tenant_id" in request.match_info:
            await access.prepare(request.headers.get("Authorization"))
        return await handler(request)

    return prepare_access


def add_security_headers(headers: MutableMapping[str, str]) -> None:
    for name, value in SECURITY_HEADERS.items():
        headers.setdefault(name, value)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    add_security_headers(response.headers)


def build_api(
    web_app: web.Application,
    settings: Settings,
    redis: Any,
    *,
    cursor_secret: bytes | None = None,
    access: AccessCache | None = None,
    export_limits: ExportLimits | None = None,
    live_limits: LiveLimits | None = None,
) -> Api:
    """Register the API's routes on ``web_app`` (any aiohttp application not yet started;
    the web page lives at ``/``). ``redis`` is a ``redis.asyncio`` client (or cluster
    client). Every GET route answers HEAD too."""
    parts = api_access(settings, redis, cursor_secret=cursor_secret, access=access)
    web_app.middlewares.append(metrics_middleware)
    web_app.middlewares.append(problem_middleware)
    web_app.middlewares.append(access_middleware(parts.cache))
    web_app.on_response_prepare.append(_security_headers)
    reader = RecordReader(
        redis, retention_ms=settings.retention_ms, cursor_secret=parts.cursor_secret
    )

    async def fetch(tenant_id: str, record_ids: list[str]) -> list[Any]:
        return await fetch_records(redis, reader, tenant_id, record_ids)

    hub = LiveHub(redis, fetch)
    api = Api(
        reader=reader,
        redis=redis,
        access=parts.cache,
        display_tz=ZoneInfo(settings.display_tz),
        region_of=region_lookup(settings),
        retention_days=settings.retention_days,
        # Built here, once: a route without its OpenAPI words fails the start, not a request.
        openapi_body=orjson.dumps(openapi_document()),
        live=LiveTail(hub, redis, fetch, live_limits or LiveLimits()),
        export_limits=export_limits,
    )
    for route in ROUTES:  # GET, and HEAD (the same answer without its body)
        web_app.router.add_get(route.aiohttp_path, getattr(api, route.handler), allow_head=True)

    async def prepare_store(_: web.Application) -> None:
        try:
            await prepare(redis)
        except Exception as exc:  # Redis down at start: /readyz says so; serve anyway
            log.warning("redis not reachable at start: %s: %s", type(exc).__name__, exc)

    async def start_access(_: web.Application) -> None:
        await parts.start()

    async def close_live(_: web.Application) -> None:
        await hub.close()  # live streams end at once instead of holding the shutdown

    async def stop_access(_: web.Application) -> None:
        await parts.stop()

    web_app.on_startup.append(prepare_store)
    web_app.on_startup.append(start_access)
    web_app.on_shutdown.append(close_live)
    web_app.on_cleanup.append(stop_access)
    return api
