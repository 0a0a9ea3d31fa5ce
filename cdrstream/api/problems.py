"""``application/problem+json`` (RFC 9457) answers.

Body: ``{"type", "title", "status", "detail"}``, plus ``invalid_params`` (each
``{"name", "reason"}``) on a 400: at most :data:`MAX_INVALID_PARAMS` of them, and then
``invalid_params_omitted``, the number of problems left out, so that a request with
hundreds of bad parameters gets a small answer. ``type`` is a stable URI per kind of problem, so a
client can branch on it without parsing ``title``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import orjson
from aiohttp import web

from cdrstream.api.params import InvalidParam

PROBLEM_JSON = "application/problem+json"
_BASE = "https://cdrstream.dev/problems/"
#: Most problems listed in one answer (and parameters named in its detail).
MAX_INVALID_PARAMS = 10

_TITLES: dict[int, tuple[str, str]] = {
    400: ("invalid-parameters", "Invalid request parameters"),
    401: ("unauthenticated", "Authentication required"),
    403: ("forbidden", "Not allowed to read this tenant"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    429: ("too-many-exports", "Too many exports"),
    500: ("internal-error", "Internal error"),
    503: ("unavailable", "Service unavailable"),
}


def problem_body(
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    title: str | None = None,
    invalid_params: Sequence[InvalidParam] = (),
) -> dict[str, object]:
    default_kind, default_title = _TITLES.get(status, ("error", "Error"))
    body: dict[str, object] = {
        "type": _BASE + (kind or default_kind),
        "title": title or default_title,
        "status": status,
        "detail": detail,
    }
    if invalid_params:
        body["invalid_params"] = [p.to_json() for p in invalid_params[:MAX_INVALID_PARAMS]]
        if len(invalid_params) > MAX_INVALID_PARAMS:
            body["invalid_params_omitted"] = len(invalid_params) - MAX_INVALID_PARAMS
    return body


def problem(
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    title: str | None = None,
    invalid_params: Sequence[InvalidParam] = (),
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    body = problem_body(status, detail, kind=kind, title=title, invalid_params=invalid_params)
    response = web.Response(
        body=orjson.dumps(body), status=status, content_type=PROBLEM_JSON, charset="utf-8"
    )
    if headers:
        response.headers.update(headers)
    response.headers["Cache-Control"] = "no-store"
    return response


def bad_request(invalid_params: Sequence[InvalidParam]) -> web.Response:
    names = list(dict.fromkeys(p.name for p in invalid_params))
    detail = ", ".join(names[:MAX_INVALID_PARAMS])
    if len(names) > MAX_INVALID_PARAMS:
        detail += f" and {len(names) - MAX_INVALID_PARAMS} more"
    return problem(400, f"invalid parameter(s): {detail}", invalid_params=invalid_params)


def unauthenticated() -> web.Response:
    return problem(
        401,
        "token missing or invalid: send 'Authorization: Bearer <token>'",
        headers={"WWW-Authenticate": 'Bearer realm="cdrstream"'},
    )


def forbidden() -> web.Response:
    # One body for every refusal, whether or not the tenant exists: it tells nothing.
    return problem(403, "this token may not read this tenant")


def storage_unavailable() -> web.Response:
    return problem(
        503,
        "the record store did not answer; try again shortly",
        kind="storage-unavailable",
        title="Storage unavailable",
        headers={"Retry-After": "5"},
    )


def too_many_exports(limit: int, retry_after_s: int) -> web.Response:
    return problem(
        429,
        f"this partner already runs {limit} CSV export(s), the most at a time; "
        "try again when one has finished",
        headers={"Retry-After": str(retry_after_s)},
    )


def too_many_live_streams(limit: int, retry_after_s: int) -> web.Response:
    return problem(
        429,
        f"this partner already has {limit} live stream(s) open, the most at a time; "
        "close one first",
        kind="too-many-live-streams",
        title="Too many live streams",
        headers={"Retry-After": str(retry_after_s)},
    )
