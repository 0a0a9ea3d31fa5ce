"""A role that cannot work until an operator changes its settings stays up and says why.

When Kafka refuses the role's credentials or TLS (`cdrstream.kafka_connection.check_access`)
retrying cannot help and restarting would not either: the role logs the reason once and
serves ``/healthz`` 200 (alive: a liveness probe must not restart it into the same refusal),
``/readyz`` 503 naming the setting to fix, and ``/metrics``, without touching Kafka again,
until SIGTERM.
"""

from __future__ import annotations

from aiohttp import web

from cdrstream.observability.health import HEALTHY, METRICS_CONTENT_TYPE, metrics_body


def refusal_app(check: str, reason: str) -> web.Application:
    """The three pages of a refused role; ``check`` names the failing part ("kafka")."""

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response(HEALTHY)

    async def readyz(request: web.Request) -> web.Response:
        return web.json_response(
            {"status": "not ready", "checks": {check: f"refused: {reason}"}}, status=503
        )

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=metrics_body(), content_type=METRICS_CONTENT_TYPE.split(";")[0])

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


def serve_refusal(host: str, port: int, check: str, reason: str) -> int:
    """Serve `refusal_app` until SIGTERM/SIGINT; the exit code is 0 then."""
    web.run_app(refusal_app(check, reason), host=host, port=port, print=None)
    return 0
