"""The HTTP routes of the query role, as one table (``ROUTES``) and their handlers.

``ROUTES`` is what :func:`cdrstream.api.app.build_api` registers AND what the OpenAPI
document describes, so a route cannot exist without being documented.

Order of checks on a tenant route: the path must match (else 404, like any unknown path),
then the token (401), then the contract (403), both in ``Api.authorize``, whose `Grant`
carries the token's `RecordView` (masked numbers or not), then the parameters (400), and
only then is Redis read. A caller without access therefore learns nothing, not even which
of its parameters would have been wrong for this tenant. Records reach a token only
through its `RecordView`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any, cast
from zoneinfo import ZoneInfo

import orjson
from aiohttp import web
from redis.exceptions import RedisClusterException, RedisError

from cdrstream.access.access_store import AccessCache
from cdrstream.access.policy import decide_access
from cdrstream.api import csv_export, problems
from cdrstream.api.exports import (
    CHUNK_ROWS,
    PIECE_ROWS,
    RETRY_AFTER_S,
    WRITE_BUFFER_HIGH,
    ExportLimits,
    ExportSlots,
)
from cdrstream.api.live import LIVE_STREAMS, LiveTail
from cdrstream.api.params import (
    CDRS_PARAMS,
    DEFAULT_LIMIT,
    LIVE_PARAMS,
    MAX_LIMIT,
    SUMMARY_PARAMS,
    InvalidParam,
    ParamSpec,
    ParseContext,
    choose_format,
    parse_cdrs_params,
    parse_params,
)
from cdrstream.core import summary as daily
from cdrstream.core.clock import DAY_MS, now_ms
from cdrstream.core.event import TENANT_ID
from cdrstream.core.numbers import normalize_query_number
from cdrstream.core.record_view import RecordView
from cdrstream.core.sse import LiveFilter
from cdrstream.observability import health
from cdrstream.observability.api_metrics import CSV_EXPORTS, CSV_ROWS
from cdrstream.store.cursor import InvalidCursor
from cdrstream.store.reader import RecordQuery, RecordReader
from cdrstream.store.summary import read_summary

log = logging.getLogger(__name__)

#: What a Redis that is down, slow or failing over raises: answered 503, not 500.
#: OSError covers socket errors and the TimeoutError of ``asyncio.timeout``.
STORAGE_ERRORS: tuple[type[Exception], ...] = (RedisError, RedisClusterException, OSError)


def raised_in_redis_client(exc: BaseException) -> bool:
    """Whether ``exc`` was raised by code of the Redis client (its innermost frame)."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    module = tb.tb_frame.f_globals.get("__name__", "")
    return isinstance(module, str) and (module == "redis" or module.startswith("redis."))


REDIS_TIMEOUT_S = 10.0  # one page, or one CSV chunk; a hung Redis becomes a 503, not a hang
NO_STORE = {"Cache-Control": "no-store"}


class _ClientGone(Exception):
    """The client of an export closed the connection."""


class _ClientStalled(Exception):
    """The client of an export read nothing for the write timeout."""


#: Path parameters and the patterns they must match; a path that does not is no route (404).
PATH_PATTERNS: Mapping[str, str] = {"tenant_id": TENANT_ID.pattern}


@dataclass(frozen=True, slots=True)
class Route:
    """One GET route (HEAD too): its path (OpenAPI form, ``{name}`` for a path parameter of
    :data:`PATH_PATTERNS`), its handler's name, its query parameters, and whether it needs a
    token. What OpenAPI says of it lives in ``cdrstream.api.openapi``."""

    path: str
    handler: str
    params: tuple[ParamSpec, ...] = ()
    secured: bool = False

    @property
    def aiohttp_path(self) -> str:
        path = self.path
        for name, regex in PATH_PATTERNS.items():
            path = path.replace("{" + name + "}", "{" + name + ":" + regex + "}")
        return path


ROUTES: tuple[Route, ...] = (
    Route("/v1/tenants/{tenant_id}/cdrs", "cdrs", CDRS_PARAMS, secured=True),
    Route("/v1/tenants/{tenant_id}/cdrs/live", "live", LIVE_PARAMS, secured=True),
    Route("/v1/tenants/{tenant_id}/summary", "summary", SUMMARY_PARAMS, secured=True),
    Route("/v1/config", "config"),
    Route("/openapi.json", "openapi"),
    Route("/healthz", "healthz"),
    Route("/readyz", "readyz"),
    Route("/metrics", "metrics"),
    Route("/", "page"),
    Route("/tenants/{tenant_id}", "page"),
    Route("/static/app.js", "static"),
    Route("/static/app.css", "static"),
)


@dataclass(frozen=True, slots=True)
class Grant:
    """What an authorized request may read: a tenant's records, shown through ``view``."""

    tenant_id: str
    partner: str
    view: RecordView


_STATIC_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}


def _load_static() -> dict[str, tuple[bytes, str]]:
    folder = resources.files("cdrstream.api") / "static"
    out = {}
    for name in ("index.html", "app.js", "app.css"):
        suffix = name[name.rindex(".") :]
        out[name] = ((folder / name).read_bytes(), _STATIC_TYPES[suffix])
    return out


def zone_label(zone: ZoneInfo, at_ms: int) -> str:
    """``CET/CEST`` for Europe/Amsterdam: the zone's winter/summer abbreviations, else its name."""
    year = datetime.fromtimestamp(at_ms / 1000, zone).year
    names = []
    for month in (1, 7):
        name = datetime(year, month, 1, 12, tzinfo=zone).tzname() or ""
        if name and name not in names:
            names.append(name)
    # Zones without abbreviations report offsets such as "+03"; the IANA name is clearer.
    if not names or any(n[0] in "+-" for n in names):
        return zone.key
    return "/".join(names)


class Api:
    """The handlers. Stateless apart from caches: any number of replicas can run."""

    def __init__(
        self,
        *,
        reader: RecordReader,
        redis: Any,
        access: AccessCache,
        display_tz: ZoneInfo,
        region_of: Callable[[str], str],
        retention_days: int,
        openapi_body: bytes,
        live: LiveTail,
        export_limits: ExportLimits | None = None,
    ) -> None:
        self._reader = reader
        self._redis = redis
        self._access = access
        self._tz = display_tz
        self._region_of = region_of
        self._retention_days = retention_days
        self._openapi_body = openapi_body
        self._static = _load_static()
        self._export_limits = export_limits or ExportLimits()
        self._exports = ExportSlots(self._export_limits.per_partner)
        self._live = live

    # -- records -------------------------------------------------------------------------

    def authorize(self, request: web.Request) -> Grant | web.Response:
        """The grant of the route's tenant, or the 401/403 answer (module docstring). Every
        tenant route starts here, and shows records only through ``Grant.view``."""
        tenant_id = request.match_info["tenant_id"]
        decision = decide_access(
            request.headers.get("Authorization"), tenant_id, self._access.lookup
        )
        if decision.verdict == "unauthenticated":
            return problems.unauthenticated()
        if decision.verdict != "allowed" or decision.entry is None:
            return problems.forbidden()
        view = RecordView(self._tz, masked_numbers=decision.entry.masked_numbers)
        return Grant(tenant_id, decision.entry.partner, view)

    def _context(self, grant: Grant) -> ParseContext:
        region = self._region_of(grant.tenant_id)
        return ParseContext(
            normalize_number=lambda text: normalize_query_number(text, region),
            masked_numbers=grant.view.masked_numbers,
        )

    def _still_allowed(self, request: web.Request, grant: Grant) -> bool:
        """Whether the request's token may still read the grant's tenant, as it could."""
        decision = decide_access(
            request.headers.get("Authorization"), grant.tenant_id, self._access.lookup
        )
        return (
            decision.verdict == "allowed"
            and decision.entry is not None
            and decision.entry.masked_numbers == grant.view.masked_numbers
        )

    # -- the live tail -------------------------------------------------------------------

    async def live(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events of the tenant's records as they are stored (``api/live.py``)."""
        grant = self.authorize(request)
        if isinstance(grant, web.Response):
            return grant
        values = parse_params(request.query.items(), LIVE_PARAMS, self._context(grant))
        if isinstance(values, list):
            return problems.bad_request(values)
        live_filter = LiveFilter(
            direction=cast(str | None, values.get("direction")),
            extension=cast(str | None, values.get("extension")),
            number_prefix=cast(str | None, values.get("number")),
        )
        if request.method == "HEAD":
            return web.Response(content_type="text/event-stream", charset="utf-8", headers=NO_STORE)
        slots = self._live.slots
        if not slots.try_acquire(grant.partner):
            return problems.too_many_live_streams(slots.per_partner, RETRY_AFTER_S)
        LIVE_STREAMS.inc()
        try:
            return await self._live.serve(
                request,
                tenant_id=grant.tenant_id,
                view=grant.view,
                live_filter=live_filter,
                still_allowed=lambda: self._still_allowed(request, grant),
            )
        finally:
            LIVE_STREAMS.dec()
            slots.release(grant.partner)

    # -- daily summaries -----------------------------------------------------------------

    async def summary(self, request: web.Request) -> web.StreamResponse:
        """Per day in the display zone and per direction: calls, answered, talk time,
        dispositions (``core/summary.py``), as JSON or CSV."""
        grant = self.authorize(request)
        if isinstance(grant, web.Response):
            return grant
        values = parse_params(request.query.items(), SUMMARY_PARAMS, self._context(grant))
        if isinstance(values, list):
            return problems.bad_request(values)
        now = now_ms()
        first = daily.first_day(now, self._retention_days * DAY_MS, self._tz)
        last = daily.today(now, self._tz)
        # Days outside the window hold nothing: the range is clamped to it, like times. A
        # range with no day in the window is answered empty: no day, zero totals, and null
        # for "from" and "to" (no day of the window is covered).
        low = max(cast(int, values.get("from", first)), first)
        high = min(cast(int, values.get("to", last)), last)
        async with asyncio.timeout(REDIS_TIMEOUT_S):
            fields = await read_summary(self._redis, grant.tenant_id)
        covered = low <= high
        days = daily.summarize(fields, low, high) if covered else []
        fmt = choose_format(cast(Any, values.get("format")), request.headers.get("Accept"))
        if fmt == "csv":
            name = f"summary-{grant.tenant_id}-{daily.day_date(low).isoformat()}.csv"
            return web.Response(
                body=daily.csv_text(days).encode(),
                headers={
                    **NO_STORE,
                    "Content-Type": "text/csv; charset=utf-8; header=present",
                    "Content-Disposition": f'attachment; filename="{name}"',
                },
            )
        both = daily.totals(days)
        body = orjson.dumps(
            {
                "tenant_id": grant.tenant_id,
                "display_tz": self._tz.key,
                "from": daily.day_date(low).isoformat() if covered else None,
                "to": daily.day_date(high).isoformat() if covered else None,
                "days": [d.to_json() for d in days],
                "totals": {direction: both[direction].to_json() for direction in both},
            }
        )
        return web.Response(
            body=body, content_type="application/json", charset="utf-8", headers=NO_STORE
        )

    async def cdrs(self, request: web.Request) -> web.StreamResponse:
        grant = self.authorize(request)
        if isinstance(grant, web.Response):
            return grant
        tenant_id = grant.tenant_id
        parsed = parse_cdrs_params(request.query.items(), self._context(grant))
        if isinstance(parsed, list):
            return problems.bad_request(parsed)
        now = now_ms()
        if choose_format(parsed.format, request.headers.get("Accept")) == "csv":
            if request.method == "HEAD":  # the headers of the export, nothing streamed
                return await self._csv(request, grant, parsed.query, now)
            if not self._exports.try_acquire(grant.partner):
                return problems.too_many_exports(self._exports.per_partner, RETRY_AFTER_S)
            CSV_EXPORTS.inc()
            try:
                return await self._csv(request, grant, parsed.query, now)
            finally:
                CSV_EXPORTS.dec()
                self._exports.release(grant.partner)
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_S):
                page = await self._reader.page(
                    tenant_id, parsed.query, limit=parsed.limit, cursor=parsed.cursor, now_ms=now
                )
        except InvalidCursor:
            return problems.bad_request(
                [InvalidParam("cursor", "not a cursor from a previous page of this query")]
            )
        body = orjson.dumps(
            {
                "records": [grant.view.to_dict(r) for r in page.records],
                "next_cursor": page.next_cursor,
            }
        )
        return web.Response(
            body=body, content_type="application/json", charset="utf-8", headers=NO_STORE
        )

    async def _csv(
        self, request: web.Request, grant: Grant, query: RecordQuery, now: int
    ) -> web.StreamResponse:
        """Every matching record as CSV, streamed (see ``exports`` for the limits)."""
        tenant_id = grant.tenant_id
        chunks = self._reader.stream_rows(tenant_id, query, now_ms=now, chunk=CHUNK_ROWS)
        async with contextlib.aclosing(chunks):
            # The first chunk is read before the answer starts, so a Redis that is down
            # still gets a clean 503 instead of a cut-off 200.
            records = await self._next_chunk(chunks)
            formatter = csv_export.CsvFormatter(grant.view)
            name = csv_export.filename(tenant_id, self._tz, now)
            response = web.StreamResponse(
                status=200,
                headers={
                    **NO_STORE,
                    "Content-Type": "text/csv; charset=utf-8; header=present",
                    "Content-Disposition": f'attachment; filename="{name}"',
                },
            )
            if request.method == "HEAD":
                await response.prepare(request)
                return response
            response.enable_chunked_encoding()
            if request.transport is not None:
                request.transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH)
            rows = 0
            try:
                await self._send(response.prepare(request))
                text = formatter.header()
                while records is not None:
                    for start in range(0, len(records), PIECE_ROWS):
                        piece = records[start : start + PIECE_ROWS]
                        lines = formatter.payload_rows(piece)
                        await self._send(response.write((text + lines).encode()))
                        rows += len(piece)
                        text = ""
                    records = None  # not held while the next chunk is read
                    records = await self._next_chunk(chunks)
                if text:  # no record at all: the header alone
                    await self._send(response.write(text.encode()))
                await self._send(response.write_eof())
            except _ClientGone:
                log.info(
                    "csv export of %s: client went away after %d rows",
                    tenant_id,
                    rows,
                    extra={"tenant_id": tenant_id},
                )
            except _ClientStalled:
                log.info(
                    "csv export of %s: client read nothing for %.0f s after %d rows; "
                    "connection closed",
                    tenant_id,
                    self._export_limits.write_timeout_s,
                    rows,
                    extra={"tenant_id": tenant_id},
                )
                if request.transport is not None:
                    request.transport.abort()
            except Exception as exc:
                # Too late for an error status: cut the connection before the last chunk,
                # so the client sees an incomplete download, never a short "complete" one.
                log.error(
                    "csv export of %s cut off after %d rows: %s: %s",
                    tenant_id,
                    rows,
                    type(exc).__name__,
                    exc,
                    exc_info=not isinstance(exc, STORAGE_ERRORS),
                    extra={"tenant_id": tenant_id},
                )
                if request.transport is not None:
                    request.transport.abort()
            finally:
                CSV_ROWS.inc(rows)
            return response

    async def _send(self, write: Awaitable[Any]) -> None:
        """Await one write of an export: a client that went away or stalled is told apart
        from a failing Redis (whose errors are raised elsewhere)."""
        try:
            async with asyncio.timeout(self._export_limits.write_timeout_s):
                await write
        except TimeoutError as exc:
            raise _ClientStalled from exc
        except ConnectionError as exc:
            # ConnectionResetError, aiohttp's ClientConnectionResetError ("Cannot write to
            # closing transport"), the ConnectionError("Connection lost") of a drain.
            raise _ClientGone from exc

    @staticmethod
    async def _next_chunk(chunks: AsyncIterator[list[list[Any]]]) -> list[list[Any]] | None:
        async with asyncio.timeout(REDIS_TIMEOUT_S):
            try:
                return await anext(chunks)
            except StopAsyncIteration:
                return None

    # -- page, config, meta --------------------------------------------------------------

    async def page(self, request: web.Request) -> web.Response:
        body, content_type = self._static["index.html"]
        return web.Response(body=body, content_type=content_type, charset="utf-8")

    async def static(self, request: web.Request) -> web.Response:
        body, content_type = self._static[request.path.rsplit("/", 1)[-1]]
        return web.Response(
            body=body,
            content_type=content_type,
            charset="utf-8",
            headers={"Cache-Control": "no-cache"},
        )

    async def config(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "display_tz": self._tz.key,
                "display_tz_label": zone_label(self._tz, now_ms()),
                "retention_days": self._retention_days,
                "default_limit": DEFAULT_LIMIT,
                "max_limit": MAX_LIMIT,
            },
            headers=NO_STORE,
        )

    async def openapi(self, request: web.Request) -> web.Response:
        return web.Response(body=self._openapi_body, content_type="application/json")

    # -- operations ----------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response(health.HEALTHY, headers=NO_STORE)

    async def readyz(self, request: web.Request) -> web.Response:
        status, body = await health.readiness({"redis": health.redis_check(lambda: self._redis)})
        return web.json_response(body, status=status, headers=NO_STORE)

    async def metrics(self, request: web.Request) -> web.Response:
        response = web.Response(body=health.metrics_body(), headers=NO_STORE)
        response.headers["Content-Type"] = health.METRICS_CONTENT_TYPE
        return response
