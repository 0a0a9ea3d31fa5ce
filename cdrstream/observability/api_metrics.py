"""Prometheus metrics of the query endpoint: requests by route template and status.

Labels are bounded: the route's template (``/v1/tenants/{tenant_id}/cdrs``), never the
path itself, so a tenant id or a number never becomes a label. Requests aiohttp could not
parse (414, 431, 400 before any route) are counted as route ``malformed``, method ``-``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "cdrstream_api_requests_total",
    "API requests by route template, method and status.",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "cdrstream_api_request_seconds",
    "API request latency by route template (CSV: until the last row is sent).",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30),
)
CSV_ROWS = Counter("cdrstream_api_csv_rows_total", "Rows streamed by CSV exports.")
CSV_EXPORTS = Gauge("cdrstream_api_csv_exports", "CSV exports in progress.")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


#: What the access log may say of a request: its route template (never the path, which may
#: hold a number) and its tenant.
ROUTE = web.RequestKey("route", str)
TENANT = web.RequestKey("tenant", str)


def route_template(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = route_template(request)
    request[ROUTE] = route
    tenant = request.match_info.get("tenant_id")
    if tenant is not None:
        request[TENANT] = tenant
    begin = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        REQUESTS.labels(route, request.method, str(status)).inc()
        LATENCY.labels(route).observe(time.perf_counter() - begin)
