"""Serving the API application: aiohttp's ``AppRunner`` and ``TCPSite``, with hard edges.

**Requests aiohttp cannot parse** never reach the application or its middlewares: aiohttp
answers them itself, in ``RequestHandler.handle_error``, with a ``text/plain`` body that
echoes the offending bytes, and logs the exception at ERROR, message included, e.g.
``Got more than 8190 bytes when reading: b'Bearer cdrs_…'`` for an over-long
``Authorization`` header, or the start of an over-long URL, which may hold a number
someone called. :class:`_RequestHandler` answers them with ``application/problem+json``
instead, and logs only the peer address and the kind of problem, at INFO:

- 414 ``uri-too-long``: the request target is longer than :data:`MAX_URL_BYTES`;
- 431 ``header-fields-too-large``: a header line (name and value) is longer than
  :data:`MAX_HEADER_BYTES`, or there are more than :data:`MAX_HEADERS` headers;
- 400 ``malformed-request``: anything else it cannot parse.

The two limits differ by design: aiohttp's ``LineTooLong`` names the limit it exceeded,
and that is how a URL is told from a header line.

**Slow clients** cannot hold a connection: one that has not sent a request's complete
headers within :data:`HEADER_TIMEOUT_S` of connecting (or of the first byte of a later
request on a kept-alive connection) is closed, and an idle kept-alive connection is closed
after :data:`KEEPALIVE_TIMEOUT_S` (aiohttp bounds neither the arrival of headers nor, before
3.14, a connection that never sends a request: 19,982 connections sending a byte a second
were all held until the process ran out of file descriptors). A lost connection runs its
request's ``exports.when_gone`` callbacks at once, so a live stream whose client left ends
then (its tenant's reader with it), not at its next check.

**Bounded shutdown** (:func:`serve`): on SIGTERM or SIGINT the process exits within
:data:`SHUTDOWN_TIMEOUT_S`, whatever the clients do: it stops accepting, closes idle
connections, ends live streams, gives requests in flight (a CSV export)
:data:`IN_FLIGHT_GRACE_S` to finish, then aborts their connections and cancels their
handlers. (aiohttp's own shutdown waits for a request up to its timeout, then for the
cancelled request up to the timeout again, and cancels it only then: one export stalled
on a client that read nothing took 23.4 s with a 10 s timeout.)

**Access log** (logger ``cdrstream.api.server.access``, INFO): one line per request with the
method, the route template (``/v1/tenants/{tenant_id}/cdrs``), the status and the time
taken, and the tenant id as a field. Never the path or the query string, never a header.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError, LineTooLong
from aiohttp.web_request import BaseRequest

from cdrstream.api import problems
from cdrstream.api.app import add_security_headers
from cdrstream.api.exports import client_gone
from cdrstream.observability.api_metrics import REQUESTS, ROUTE, TENANT

log = logging.getLogger(__name__)
http_log = logging.getLogger(f"{__name__}.http")
access_log = logging.getLogger(f"{__name__}.access")

#: Longest request target (path and query string), bytes: beyond it, 414.
MAX_URL_BYTES = 8192
#: Longest header line (name and value), bytes: beyond it, 431. aiohttp's default.
MAX_HEADER_BYTES = 8190
#: Most header lines in a request: beyond it, 431. aiohttp's default.
MAX_HEADERS = 128
if MAX_URL_BYTES == MAX_HEADER_BYTES:  # pragma: no cover - a configuration error
    raise AssertionError("the URL and header limits must differ (that is how 414 and 431 differ)")
#: An idle keep-alive connection is closed after this long.
KEEPALIVE_TIMEOUT_S = 75.0
#: A connection that has not sent a request's complete headers this long after connecting
#: (or after the first byte of a later request) is closed.
HEADER_TIMEOUT_S = 10.0
#: On SIGTERM or SIGINT the process exits within this long (docs/api.md promises it).
SHUTDOWN_TIMEOUT_S = 10.0
#: ... of which requests in flight (a CSV export) get this long to finish; live streams
#: are ended at once (``LiveHub.close``, at most ``live.CLOSE_WAIT_S``).
IN_FLIGHT_GRACE_S = 6.0
#: How long a handler cancelled at the end of the grace gets to unwind.
CANCEL_WAIT_S = 1.0


def _classify(exc: BaseException | None) -> tuple[int, str, str, str]:
    """status, problem kind, title and detail of a request aiohttp could not parse."""
    if isinstance(exc, LineTooLong) and len(exc.args) > 1 and exc.args[1] == MAX_URL_BYTES:
        return (
            414,
            "uri-too-long",
            "URI too long",
            f"the request target is longer than {MAX_URL_BYTES} bytes",
        )
    if isinstance(exc, LineTooLong) or (
        isinstance(exc, BadHttpMessage) and "Too many headers" in exc.message
    ):
        return (
            431,
            "header-fields-too-large",
            "Request header fields too large",
            f"a header line is longer than {MAX_HEADER_BYTES} bytes, or there are more "
            f"than {MAX_HEADERS} headers",
        )
    return 400, "malformed-request", "Malformed request", "the request is not valid HTTP/1.1"


class _RequestHandler(web.RequestHandler):
    """aiohttp's connection handler, with problem answers and logs that carry no data, a
    deadline for request headers, lost clients told to their request, and a shutdown
    bounded by its timeout (module docstring)."""

    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._start_header_timer()

    def data_received(self, data: bytes) -> None:
        if self._header_timer is None and not self._messages and not self._request_in_progress:
            self._start_header_timer()  # the first bytes of a request on a kept-alive connection
        super().data_received(data)
        if self._messages or self._request_in_progress:
            self._stop_header_timer()

    def connection_lost(self, exc: BaseException | None) -> None:
        request = self._current_request
        self._stop_header_timer()
        super().connection_lost(exc)
        if request is not None:
            client_gone(request)

    def _start_header_timer(self) -> None:
        self._stop_header_timer()
        self._header_timer = self._loop.call_later(HEADER_TIMEOUT_S, self._headers_too_slow)

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self._messages or self._request_in_progress or self.transport is None:
            return
        http_log.info(
            "closed a connection from %s: no complete request headers within %.0f s",
            self.transport.get_extra_info("peername"),
            HEADER_TIMEOUT_S,
        )
        REQUESTS.labels("malformed", "-", "408").inc()
        self.force_close()

    async def shutdown(self, timeout: float | None = 15.0) -> None:  # noqa: ASYNC109 (aiohttp's)
        """aiohttp's shutdown of the connection, bounded by ``timeout`` in all; then the
        connection is aborted (a stalled client's unsent data dropped) and its handler
        cancelled."""
        task = self._task_handler
        try:
            async with asyncio.timeout(timeout):
                await super().shutdown(timeout)
        except TimeoutError:
            log.info("shutdown: a request in flight was cut off after %.0f s", timeout or 0)
        finally:
            if self.transport is not None:
                self.transport.abort()
            self.force_close()
            if task is not None and not task.done():
                task.cancel()
                await asyncio.wait([task], timeout=CANCEL_WAIT_S)

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # too late for an answer (aiohttp's own rule)
            raise ConnectionError("response already started; cannot send an error answer")
        if isinstance(exc, HttpProcessingError):
            status, kind, title, detail = _classify(exc)
            http_log.info(
                "refused a request from %s: %d %s (%s)",
                request.remote,
                status,
                title,
                type(exc).__name__,
            )
            REQUESTS.labels("malformed", "-", str(status)).inc()
            response = problems.problem(status, detail, kind=kind, title=title)
        else:
            # An exception that escaped the middlewares (a bug), or a timeout: no details.
            http_log.error(
                "request from %s failed outside the handlers: %d %s",
                request.remote,
                status,
                type(exc).__name__ if exc is not None else "",
                exc_info=exc,
            )
            response = problems.problem(status, "unexpected error; it has been logged")
        add_security_headers(response.headers)
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kw: Any) -> None:
        exc = kw.get("exc_info")
        if isinstance(exc, HttpProcessingError):  # its message may quote the request
            http_log.info("%s: %s", args[0] if args else "error", type(exc).__name__)
            return
        http_log.error(*args, **kw)


class _Server(web.Server):
    """aiohttp's low-level server, making connections with :class:`_RequestHandler`."""

    def __call__(self) -> web.RequestHandler:
        return _RequestHandler(self, loop=self._loop, **self._kwargs)


class _Runner(web.AppRunner):
    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return _Server(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=server._loop,
            **server._kwargs,
        )


class AccessLog(AbstractAccessLogger):
    """One line per answered request: method, route template, status, milliseconds."""

    def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
        route = request.get(ROUTE, "malformed")
        tenant = request.get(TENANT)
        self.logger.info(
            "%s %s %d %.1f ms",
            request.method if route != "malformed" else "-",
            route,
            response.status,
            time * 1000,
            extra={"tenant_id": tenant} if tenant else None,
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


def runner(app: web.Application, keepalive_timeout_s: float = KEEPALIVE_TIMEOUT_S) -> web.AppRunner:
    """The runner of ``app`` with this module's limits, logs and error answers."""
    return _Runner(
        app,
        handle_signals=False,
        shutdown_timeout=IN_FLIGHT_GRACE_S,
        access_log_class=AccessLog,
        access_log=access_log,
        logger=http_log,
        max_line_size=MAX_URL_BYTES,
        max_field_size=MAX_HEADER_BYTES,
        max_headers=MAX_HEADERS,
        keepalive_timeout=keepalive_timeout_s,
    )


async def serve(
    app: web.Application, host: str, port: int, keepalive_timeout_s: float = KEEPALIVE_TIMEOUT_S
) -> int:
    """Serve ``app`` on ``host:port`` until SIGTERM or SIGINT; returns the exit code."""
    app_runner = runner(app, keepalive_timeout_s)
    await app_runner.setup()
    try:
        site = web.TCPSite(app_runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            log.error("cannot listen on %s:%d: %s", host, port, exc)
            return 1
        log.info("query endpoint on http://%s:%d/", host, port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(sig)
        log.info("stopping: finishing requests in flight (at most %.0f s)", IN_FLIGHT_GRACE_S)
        return 0
    finally:
        await _cleanup(app_runner, asyncio.get_running_loop().time() + SHUTDOWN_TIMEOUT_S - 1)


async def _cleanup(app_runner: web.AppRunner, deadline: float) -> None:
    """The runner's cleanup (bounded by its parts), and a last bound on the whole."""
    try:
        async with asyncio.timeout_at(deadline):
            await app_runner.cleanup()
    except TimeoutError:
        log.warning("shutdown: cleanup did not finish in time; exiting anyway")
