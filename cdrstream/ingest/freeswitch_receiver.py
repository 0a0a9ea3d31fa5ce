"""The HTTP receiver for FreeSWITCH's ``mod_json_cdr`` (a shell around `freeswitch_cdr`).

Routes: ``POST /freeswitch`` (FreeSWITCH appends ``?uuid=<uuid>``; the query is ignored),
``GET /healthz`` (alive), ``GET /readyz`` (Kafka acknowledges now, `EventProducer.ready`; else 503),
``GET /metrics``: the same shapes as the other roles (`cdrstream.observability.health`).

Answers to a post, all but 200 as ``application/problem+json``:

- **200** ``{"status": "accepted", "event_id": ...}`` only after Kafka acknowledged the event,
  or ``{"status": "skipped", "reason": "not_pstn_leg"}`` for a leg that is not an event;
- **400** naming the field (``invalid_params``): FreeSWITCH writes the CDR to its
  ``err-log-dir``, where it stays for a re-post once the cause is fixed;
- **401** with ``WWW-Authenticate: Basic`` when credentials are configured and the post's are
  missing or wrong (compared in constant time); **413** beyond `MAX_POST_BYTES`;
- **503** with ``Retry-After`` when Kafka did not acknowledge: FreeSWITCH tries again
  (``retries``/``delay``), then keeps the CDR in its error directory.

Nothing answers 500: a failure of this code is logged (type only) and answered 503, so the
PBX keeps the CDR. Logs never carry a number, a header or the credentials: a post is named by
its event id, tenant id and the fields it was refused for.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from cdrstream.api import problems
from cdrstream.api.params import InvalidParam
from cdrstream.ingest.freeswitch_cdr import (
    MAX_POST_BYTES,
    FreeswitchConfig,
    decode_post,
    freeswitch_event,
)
from cdrstream.ingest.metrics import CDRS
from cdrstream.ingest.producer import EventProducer, Unavailable
from cdrstream.ingest.results import Mapped, Rejected, Skipped
from cdrstream.observability.api_metrics import ROUTE, route_template
from cdrstream.observability.health import HEALTHY, METRICS_CONTENT_TYPE, metrics_body, readiness

log = logging.getLogger("cdrstream.ingest")
SOURCE = "freeswitch"
REALM = "cdrstream-ingest"
RETRY_AFTER_S = 5
_NO_STORE = {"Cache-Control": "no-store"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def credentials_check(credentials: str) -> Callable[[str | None], bool]:
    """A test of an ``Authorization`` header against ``user:password`` (the form of
    mod_json_cdr's ``cred``); empty credentials accept everything. Constant time."""
    if not credentials:
        return lambda _header: True
    expected = credentials.encode("utf-8")

    def check(header: str | None) -> bool:
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            given = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            given = b""
        return hmac.compare_digest(expected, given)

    return check


def _bad_request(rejected: Rejected) -> web.Response:
    return problems.problem(
        400,
        f"invalid CDR field: {rejected.field}",
        kind="invalid-cdr",
        title="Invalid CDR",
        invalid_params=[InvalidParam(rejected.field, rejected.reason)],
    )


def _unavailable(detail: str) -> web.Response:
    return problems.problem(
        503,
        detail,
        kind="kafka-unavailable",
        title="Event store unavailable",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


def create_receiver_app(
    producer: EventProducer, config: FreeswitchConfig, *, credentials: str = ""
) -> web.Application:
    """The receiver's application (module docstring)."""
    authorized = credentials_check(credentials)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        request[ROUTE] = route_template(request)
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge:
            CDRS.labels(SOURCE, "rejected").inc()
            return problems.problem(
                413,
                f"a post may hold at most {MAX_POST_BYTES} bytes",
                kind="too-large",
                title="Post too large",
            )
        except web.HTTPException as exc:
            if exc.status == 404:
                return problems.problem(404, "no such route: POST /freeswitch")
            if exc.status == 405:
                allow = exc.headers.get("Allow", "")
                return problems.problem(
                    405, f"{request.method} is not served here", headers={"Allow": allow}
                )
            if exc.status < 400:
                raise
            return problems.problem(exc.status, exc.reason)
        except Exception as exc:  # a bug: never 500, the PBX keeps the CDR and retries
            log.error("post failed: %s", type(exc).__name__)
            return _unavailable("unexpected error; it has been logged, try again")

    async def post_cdr(request: web.Request) -> web.Response:
        if not authorized(request.headers.get("Authorization")):
            CDRS.labels(SOURCE, "rejected").inc()
            log.info("post refused: credentials missing or wrong (from %s)", request.remote)
            return problems.problem(
                401,
                "credentials missing or wrong: configure json_cdr's 'cred'",
                headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
            )
        body = await request.read()
        document = decode_post(request.headers.get("Content-Type", ""), body)
        result = document if isinstance(document, Rejected) else freeswitch_event(document, config)
        if isinstance(result, Rejected):
            CDRS.labels(SOURCE, "rejected").inc()
            log.info("post refused: %s: %s", result.field, result.reason)
            return _bad_request(result)
        if isinstance(result, Skipped):
            CDRS.labels(SOURCE, "skipped").inc()
            return web.json_response(
                {"status": "skipped", "reason": result.reason}, headers=_NO_STORE
            )
        assert isinstance(result, Mapped)
        event = result.event
        ids = {"event_id": event["event_id"], "tenant_id": event["tenant_id"]}
        try:
            await producer.send_event(event)
        except Unavailable as exc:
            CDRS.labels(SOURCE, "unavailable").inc()
            log.warning("kafka did not acknowledge: %s", exc, extra=ids)
            return _unavailable("kafka did not acknowledge the event; try again")
        CDRS.labels(SOURCE, "produced").inc()
        log.debug("produced", extra=ids)
        return web.json_response(
            {"status": "accepted", "event_id": event["event_id"]}, headers=_NO_STORE
        )

    async def kafka_check() -> str | None:
        if producer.refused:
            return f"refused: {producer.refused}"
        return None if await producer.ready() else "kafka: not connected, or the topic is missing"

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response(HEALTHY, headers=_NO_STORE)

    async def readyz(request: web.Request) -> web.Response:
        status, body = await readiness({"kafka": kafka_check})
        return web.json_response(body, status=status, headers=_NO_STORE)

    async def metrics(request: web.Request) -> web.Response:
        response = web.Response(body=metrics_body(), headers=_NO_STORE)
        response.headers["Content-Type"] = METRICS_CONTENT_TYPE
        return response

    app = web.Application(client_max_size=MAX_POST_BYTES, middlewares=[guard])
    app.router.add_post("/freeswitch", post_cdr)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app
