"""The OpenAPI 3.2 document, and every description in it.

Built from ``ROUTES`` (what the server registers), the query parameters the parser validates
with (``cdrstream.api.params``: names, schemas, examples) and the record's fields
(``cdrstream.core.record_view.FIELDS``), so what is documented is what is accepted and
served. The words (summaries, descriptions, responses) live here; a route, parameter or
field without them fails the build of the document (and the unit tests).

It describes the API exactly where a schema can: an empty query value is allowed (the API
reads it as absent), a cursor has its alphabet, the live tail's events have their schema
(OpenAPI 3.2 ``itemSchema``). What no schema can say is in the parameter's description,
with the reason the 400 gives (:data:`BEYOND_SCHEMA`): whether a ``number`` is a phone
number as libphonenumber reads it, whether a cursor is one this API signed for this query,
``from`` after ``to``. ``tests/integration/test_openapi_schemathesis.py`` runs schemathesis
against the real API with this document and accepts a 400 on schema-valid data only for
those reasons.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cdrstream import __version__
from cdrstream.api.csv_export import CSV_COLUMNS
from cdrstream.api.params import DEFAULT_LIMIT, MAX_LIMIT, ParamSpec
from cdrstream.api.problems import MAX_INVALID_PARAMS, PROBLEM_JSON
from cdrstream.api.routes import PATH_PATTERNS, ROUTES, Route
from cdrstream.core.masking import MASK
from cdrstream.core.record_view import FIELDS, RecordField
from cdrstream.core.summary import CSV_COLUMNS as SUMMARY_CSV_COLUMNS
from cdrstream.core.summary import DISPOSITIONS

_STRING = {"type": "string"}
#: The 400s a request the schema allows may still get, by parameter: the rules no schema
#: can state (module docstring), each as the start of the ``reason`` the API gives.
BEYOND_SCHEMA: dict[str, str] = {
    "number": "not a phone number or number prefix",
    "cursor": "not a cursor from a previous page",
    "from": "must not be after to",
}
_PROBLEM = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
_MASKED = (
    f"For a token with masked numbers: its country code and at most its last four digits "
    f"('+31 {MASK} 4567'), 'anonymous' as is, '{MASK}' for anything else."
)


_MASKED_TEXT = (
    "For a token with masked numbers, a value holding seven digits in a row (a number the "
    f"PBX put here) is masked whole like a number ('+31 {MASK} 5678', '{MASK}')."
)


def _json(description: str, schema_ref: str | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {"schema": {"$ref": schema_ref}} if schema_ref else {"schema": {}}
    return {"description": description, "content": {"application/json": content}}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": _PROBLEM}


def _text(description: str, media_type: str) -> dict[str, Any]:
    return {"description": description, "content": {media_type: {"schema": _STRING}}}


@dataclass(frozen=True, slots=True)
class _Operation:
    summary: str
    tag: str
    responses: Mapping[str, Mapping[str, Any]]


_HTML = _text("the web page", "text/html")

#: What each route of ``ROUTES`` is, by path.
_OPERATIONS: dict[str, _Operation] = {
    "/v1/tenants/{tenant_id}/cdrs": _Operation(
        "A tenant's call data records, newest first (JSON pages, or all of them as CSV)",
        "records",
        {
            "200": {
                "description": "a page of records (JSON) or every matching record (CSV)",
                "headers": {
                    "Content-Disposition": {
                        "description": "CSV only: attachment; filename=cdrs-<tenant>-<date>.csv",
                        "schema": _STRING,
                    }
                },
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/RecordPage"}},
                    "text/csv": {
                        "schema": {
                            "type": "string",
                            "description": "header row + one row per record: "
                            + ",".join(CSV_COLUMNS),
                        }
                    },
                },
            },
            "400": _problem("a parameter is invalid (each one named in invalid_params)"),
            "401": _problem("token missing or invalid (WWW-Authenticate: Bearer)"),
            "403": _problem(
                "the token's partner may not read this tenant (same answer whether or not the "
                "tenant exists)"
            ),
            "429": _problem("the partner already runs the most CSV exports at a time"),
            "503": _problem("the record store (Redis) did not answer"),
        },
    ),
    "/v1/tenants/{tenant_id}/cdrs/live": _Operation(
        "A tenant's records as they are stored: server-sent events (text/event-stream)",
        "records",
        {
            "200": {
                "description": (
                    "an endless stream of events, each with an id: (the stream position). "
                    "'record': one record stored or replaced that matches the filters (data: "
                    "a Record, masked for a token with masked numbers); 'ready': caught up "
                    "(after the replay of a Last-Event-ID), live from here; 'reload': events "
                    "were missed (Last-Event-ID older than the last 15 minutes, or unknown): "
                    "reload the list. A comment line with the position as id: every 15 s. "
                    "Send the last id back as Last-Event-ID when reconnecting to miss nothing."
                ),
                "content": {
                    "text/event-stream": {
                        "itemSchema": {"$ref": "#/components/schemas/LiveEvent"},
                    }
                },
            },
            "400": _problem("a parameter is invalid (each one named in invalid_params)"),
            "401": _problem("token missing or invalid (WWW-Authenticate: Bearer)"),
            "403": _problem(
                "the token's partner may not read this tenant (same answer whether or not the "
                "tenant exists)"
            ),
            "429": _problem("the partner already has the most live streams open at a time"),
            "503": _problem("the record store (Redis) did not answer"),
        },
    ),
    "/v1/tenants/{tenant_id}/summary": _Operation(
        "A tenant's daily summary: per day in the display zone and per direction, calls, "
        "answered calls, talk time, answer rate, average talk time, dispositions",
        "records",
        {
            "200": {
                "description": "every day of the range (clamped to the days wholly inside the "
                "retention window), oldest first, as JSON or as CSV",
                "headers": {
                    "Content-Disposition": {
                        "description": "CSV only: attachment; filename=summary-<tenant>-<from>.csv",
                        "schema": _STRING,
                    }
                },
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Summary"}},
                    "text/csv": {
                        "schema": {
                            "type": "string",
                            "description": "header row + one row per day and direction: "
                            + ",".join(SUMMARY_CSV_COLUMNS),
                        }
                    },
                },
            },
            "400": _problem("a parameter is invalid (each one named in invalid_params)"),
            "401": _problem("token missing or invalid (WWW-Authenticate: Bearer)"),
            "403": _problem(
                "the token's partner may not read this tenant (same answer whether or not the "
                "tenant exists)"
            ),
            "503": _problem("the record store (Redis) did not answer"),
        },
    ),
    "/v1/config": _Operation(
        "What the web page needs: display zone and its label, limits, retention",
        "page",
        {"200": _json("settings for clients", "#/components/schemas/Config")},
    ),
    "/openapi.json": _Operation(
        "This OpenAPI document", "meta", {"200": _json("OpenAPI 3.2 document")}
    ),
    "/healthz": _Operation("Liveness: 200 while the process runs", "ops", {"200": _json("alive")}),
    "/readyz": _Operation(
        "Readiness: 200 when Redis answers PING (the query role has no Kafka consumer, so "
        "Kafka is not checked here; the worker's /readyz checks it)",
        "ops",
        {"200": _json("ready"), "503": _json("not ready; checks names what is down")},
    ),
    "/metrics": _Operation(
        "Prometheus metrics (text exposition format)",
        "ops",
        {"200": _text("metrics", "text/plain")},
    ),
    "/": _Operation("The web page (choose a tenant)", "page", {"200": _HTML}),
    "/tenants/{tenant_id}": _Operation(
        "The web page for one tenant: the CDR table, filters and CSV download",
        "page",
        {"200": _HTML},
    ),
    "/static/app.js": _Operation(
        "The web page's script", "page", {"200": _text("script", "text/javascript")}
    ),
    "/static/app.css": _Operation(
        "The web page's style sheet", "page", {"200": _text("style sheet", "text/css")}
    ),
}

_PATH_PARAMETERS: dict[str, str] = {
    "tenant_id": "The tenant (customer) id. A path that does not match the pattern is not a "
    "route (404).",
}

_PARAMETERS: dict[str, str] = {
    "from": "Oldest call start to include (inclusive), RFC 3339 with offset. "
    "Default: the start of the retention window. After to: a 400 ('must not be after to').",
    "to": "Newest call start to include (inclusive), RFC 3339 with offset. Default: now.",
    "direction": "Only inbound (from the PSTN) or outbound (to the PSTN) calls.",
    "extension": "Only calls made or taken by this extension (0: inbound calls routed to a "
    "service). A token with masked numbers may not give one holding seven digits in a row "
    "(a 400 naming extension).",
    "number": "Only calls whose source or destination starts with this number, typed in any "
    "form (E.164, national, with spaces); normalized with the tenant's region. A prefix such "
    "as +3120 matches every number that starts with it. Text that is no number or prefix "
    "(letters, '00' alone) is a 400 ('not a phone number or number prefix'). A token with "
    "masked numbers may only give a whole country code (+31, 0031); anything longer is a 400 "
    "naming number.",
    "limit": f"Records per page, 1-{MAX_LIMIT}. JSON only; a CSV export has no page limit.",
    "cursor": "Opaque cursor from the previous page's next_cursor. JSON only. It is bound to "
    "the same filters; a changed or forged cursor is a 400 ('not a cursor from a previous "
    "page of this query').",
    "format": "json (default) or csv. Without it, 'Accept: text/csv' asks for CSV.",
}

#: Descriptions of a route's parameters where they differ from ``_PARAMETERS``.
_ROUTE_PARAMETERS: dict[str, dict[str, str]] = {
    "/v1/tenants/{tenant_id}/summary": {
        "from": "First day (YYYY-MM-DD, a date in the display zone). Default and earliest: the "
        "first day wholly inside the retention window. After to: a 400 ('must not be after "
        "to'). A range with no day in the window is answered empty (from and to null).",
        "to": "Last day (YYYY-MM-DD, inclusive). Default and latest: today in the display zone.",
        "format": "json (default) or csv. Without it, 'Accept: text/csv' asks for CSV.",
    },
    "/v1/tenants/{tenant_id}/cdrs/live": {
        "number": "Only records whose source or destination starts with this number (as for "
        "the list; a token with masked numbers may only give a whole country code).",
    },
}

#: What each JSON key of a record is (``RECORD_FIELDS``).
_FIELDS: dict[str, str] = {
    "id": "stable id of the (tenant, call) record",
    "call_id": "the PBX's call id; null for a token with masked numbers",
    "started_at": "UTC, e.g. 2026-11-25T08:14:03.120Z",
    "started_at_local": "the same instant in the display zone, e.g. 2026-11-25T09:14:03.120+01:00",
    "answered_at": "UTC; null when the call was not answered",
    "ended_at": "UTC",
    "duration": "talk time, seconds",
    "source": "A number, E.164 (or 'anonymous'). " + _MASKED,
    "source_raw": "A number as the PBX sent it; null for a token with masked numbers",
    "destination": "B number, E.164. " + _MASKED,
    "destination_raw": "B number as the PBX sent it; null for a token with masked numbers",
    "extension": "the tenant's extension; 0 for calls to a service. " + _MASKED_TEXT,
    "direction": "inbound or outbound",
    "disposition": "answered, no_answer, busy, failed, cancelled (or another word the PBX "
    "wrote); null when the PBX gave none. " + _MASKED_TEXT,
}


def _field_schema(field: RecordField, key: str) -> dict[str, Any]:
    kinds: dict[str, dict[str, Any]] = {
        "text": {"type": "string"},
        "time": {"type": "string", "format": "date-time"},
        "seconds": {"type": "integer", "minimum": 0},
        "direction": {"type": "string", "enum": ["inbound", "outbound"]},
    }
    schema = dict(kinds[field.kind])
    if field.nullable or field.when_masked == "withheld":
        schema["type"] = [schema["type"], "null"]
    return {**schema, "description": _FIELDS[key]}


def _record_schema() -> dict[str, Any]:
    properties = {key: _field_schema(f, key) for f in FIELDS for key in f.json_keys}
    return {"type": "object", "required": list(properties), "properties": properties}


def _schemas() -> dict[str, Any]:
    return {
        "Record": _record_schema(),
        "RecordPage": {
            "type": "object",
            "required": ["records", "next_cursor"],
            "properties": {
                "records": {"type": "array", "items": {"$ref": "#/components/schemas/Record"}},
                "next_cursor": {
                    "type": ["string", "null"],
                    "description": "pass as cursor for the next page; null on the last page",
                },
            },
        },
        "Problem": {
            "type": "object",
            "description": "RFC 9457 problem details",
            "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": {"type": "string", "format": "uri"},
                "title": _STRING,
                "status": {"type": "integer"},
                "detail": _STRING,
                "invalid_params_omitted": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "problems left out of invalid_params, which lists at most "
                    f"{MAX_INVALID_PARAMS}",
                },
                "invalid_params": {
                    "type": "array",
                    "maxItems": MAX_INVALID_PARAMS,
                    "items": {
                        "type": "object",
                        "required": ["name", "reason"],
                        "properties": {"name": _STRING, "reason": _STRING},
                    },
                },
            },
        },
        "Figures": {
            "type": "object",
            "description": "one direction of one day (or of the whole range, in totals)",
            "required": [
                "calls",
                "answered",
                "talk_seconds",
                "answer_rate",
                "average_talk_seconds",
                "dispositions",
            ],
            "properties": {
                "calls": {"type": "integer", "minimum": 0},
                "answered": {"type": "integer", "minimum": 0, "description": "calls answered"},
                "talk_seconds": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "sum of the durations of the answered calls",
                },
                "answer_rate": {
                    "type": ["number", "null"],
                    "description": "answered / calls, 4 decimals; null without calls",
                },
                "average_talk_seconds": {
                    "type": ["number", "null"],
                    "description": "talk_seconds / answered, 1 decimal; null without answered "
                    "calls",
                },
                "dispositions": {
                    "type": "object",
                    "description": "calls per disposition ('other': a word outside the "
                    "contract's five; 'none': no disposition)",
                    "required": list(DISPOSITIONS),
                    "properties": {name: {"type": "integer"} for name in DISPOSITIONS},
                },
            },
        },
        "Summary": {
            "type": "object",
            "required": ["tenant_id", "display_tz", "from", "to", "days", "totals"],
            "properties": {
                "tenant_id": _STRING,
                "display_tz": {**_STRING, "description": "the zone whose dates the days are"},
                "from": {
                    "type": ["string", "null"],
                    "format": "date",
                    "description": "the first day answered; null when no day of the range is "
                    "in the window (days is then empty)",
                },
                "to": {
                    "type": ["string", "null"],
                    "format": "date",
                    "description": "the last day answered; null when no day of the range is "
                    "in the window",
                },
                "days": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["date", "inbound", "outbound"],
                        "properties": {
                            "date": {"type": "string", "format": "date"},
                            "inbound": {"$ref": "#/components/schemas/Figures"},
                            "outbound": {"$ref": "#/components/schemas/Figures"},
                        },
                    },
                },
                "totals": {
                    "type": "object",
                    "properties": {
                        "inbound": {"$ref": "#/components/schemas/Figures"},
                        "outbound": {"$ref": "#/components/schemas/Figures"},
                    },
                },
            },
        },
        "LiveEvent": _live_event_schema(),
        "Config": {
            "type": "object",
            "properties": {
                "display_tz": {**_STRING, "description": "IANA zone of local times"},
                "display_tz_label": {**_STRING, "description": "e.g. CET/CEST"},
                "retention_days": {"type": "integer"},
                "default_limit": {"type": "integer", "const": DEFAULT_LIMIT},
                "max_limit": {"type": "integer", "const": MAX_LIMIT},
            },
        },
    }


def _live_event_schema() -> dict[str, Any]:
    """One event of the live tail, as a client's event-stream parser reads it."""
    entry_id = {"type": "string", "pattern": "^[0-9]+-[0-9]+$", "description": "stream position"}

    def event(name: str, description: str, data: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "description": description,
            "required": ["event", "id", "data"],
            "properties": {
                "event": {"const": name},
                "id": entry_id,
                "data": {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "contentSchema": data,
                },
                "retry": {"type": "integer", "minimum": 0},
            },
        }

    flag = {
        "type": "object",
        "required": ["resumed"],
        "properties": {"resumed": {"type": "boolean"}},
    }
    reason = {"type": "object", "required": ["reason"], "properties": {"reason": _STRING}}
    return {
        "oneOf": [
            event("record", "a record stored or replaced", {"$ref": "#/components/schemas/Record"}),
            event("ready", "caught up: live from here", flag),
            event("reload", "events were missed: reload the list", reason),
        ]
    }


def _parameters(route: Route) -> list[dict[str, Any]]:
    path_parameters = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "description": _PATH_PARAMETERS[name],
            "schema": {"type": "string", "pattern": f"^{pattern}$"},
            "example": "t-100",
        }
        for name, pattern in PATH_PATTERNS.items()
        if "{" + name + "}" in route.path
    ]
    return path_parameters + [_query_parameter(route, spec) for spec in route.params]


def _query_parameter(route: Route, spec: ParamSpec) -> dict[str, Any]:
    words = _ROUTE_PARAMETERS.get(route.path, {})
    document: dict[str, Any] = {
        "name": spec.name,
        "in": "query",
        "required": False,
        "description": (words.get(spec.name) or _PARAMETERS[spec.name])
        + " An empty value is the same as leaving the parameter out.",
        # The API reads an empty value as absent (so a form can submit every field).
        "schema": {"anyOf": [spec.schema, {"const": ""}]},
    }
    if spec.example:
        document["example"] = spec.example
    return document


def _operation_id(route: Route) -> str:
    words = route.path.strip("/").replace(".", "/").split("/")
    return route.handler + "".join(w.title() for w in words if w and not w.startswith("{"))


def _head(get: dict[str, Any]) -> dict[str, Any]:
    """HEAD of a GET operation: the same checks and status codes, headers only."""
    responses = {
        code: response
        if "$ref" in response
        else {key: value for key, value in response.items() if key != "content"}
        for code, response in get["responses"].items()
    }
    return {
        **get,
        "operationId": "head" + get["operationId"][0].upper() + get["operationId"][1:],
        "summary": "Headers only (for monitoring probes): " + get["summary"],
        "responses": responses,
    }


def openapi_document() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for route in ROUTES:
        doc = _OPERATIONS[route.path]
        operation: dict[str, Any] = {
            "operationId": _operation_id(route),
            "summary": doc.summary,
            "tags": [doc.tag],
            "responses": {
                **doc.responses,
                "404": {"$ref": "#/components/responses/NotFound"},
                "405": {"$ref": "#/components/responses/MethodNotAllowed"},
            },
        }
        parameters = _parameters(route)
        if parameters:
            operation["parameters"] = parameters
        operation["security"] = [{"bearer": []}] if route.secured else []
        paths[route.path] = {"get": operation, "head": _head(operation)}
    return {
        "openapi": "3.2.0",
        "info": {
            "title": "cdrstream query API",
            "version": __version__,
            "description": (
                "Call Data Records of a hosted PBX's tenants, for the partners that resell "
                "them airtime. Authenticate with 'Authorization: Bearer <token>' (issued by "
                "`cdrstream token issue`). Errors are application/problem+json. CSV columns: "
                + ",".join(CSV_COLUMNS)
                + ". A token issued with --mask is served every number masked and no raw "
                "number (see Record)."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "cdrs_<token id>_<secret>, from `cdrstream token issue`",
                }
            },
            "responses": {
                "NotFound": {"description": "no such route", "content": _PROBLEM},
                "MethodNotAllowed": {
                    "description": "only GET and HEAD are served",
                    "content": _PROBLEM,
                },
            },
        },
    }
