"""The OpenAPI 3.1 document, built from ``ROUTES`` and the parameter definitions the parser
validates with (``cdrstream.api.params``), so what is documented is what is accepted."""

from __future__ import annotations

from typing import Any

from cdrstream import __version__
from cdrstream.api.csv_export import CSV_COLUMNS
from cdrstream.api.params import DEFAULT_LIMIT, MAX_LIMIT
from cdrstream.api.routes import ROUTES
from cdrstream.core.record_view import RECORD_FIELDS

_STRING = {"type": "string"}
_TIME = {"type": "string", "format": "date-time"}

_RECORD_PROPERTIES: dict[str, dict[str, Any]] = {
    "id": {**_STRING, "description": "stable id of the (tenant, call) record"},
    "call_id": {**_STRING, "description": "the PBX's call id"},
    "started_at": {**_TIME, "description": "UTC, e.g. 2026-11-25T08:14:03.120Z"},
    "started_at_local": {
        **_TIME,
        "description": "the same instant in the display zone, e.g. 2026-11-25T09:14:03.120+01:00",
    },
    "answered_at": {"type": ["string", "null"], "format": "date-time", "description": "UTC"},
    "ended_at": {**_TIME, "description": "UTC"},
    "duration": {"type": "integer", "minimum": 0, "description": "talk time, seconds"},
    "source": {**_STRING, "description": "A number, E.164 (or 'anonymous')"},
    "source_raw": {**_STRING, "description": "A number as the PBX sent it"},
    "destination": {**_STRING, "description": "B number, E.164"},
    "destination_raw": {**_STRING, "description": "B number as the PBX sent it"},
    "extension": {**_STRING, "description": "the tenant's extension; 0 for calls to a service"},
    "direction": {"type": "string", "enum": ["inbound", "outbound"]},
    "disposition": {
        "type": ["string", "null"],
        "description": "answered, no_answer, busy, failed, cancelled",
    },
}


def _schemas() -> dict[str, Any]:
    return {
        "Record": {
            "type": "object",
            "required": list(RECORD_FIELDS),
            "properties": {name: _RECORD_PROPERTIES[name] for name in RECORD_FIELDS},
        },
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
                "invalid_params": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "reason"],
                        "properties": {"name": _STRING, "reason": _STRING},
                    },
                },
            },
        },
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
        operation: dict[str, Any] = {
            "operationId": route.handler
            + "".join(
                part.title()
                for part in route.path.strip("/").replace(".", "/").split("/")
                if part and not part.startswith("{")
            ),
            "summary": route.summary,
            "tags": [route.tag],
            "responses": {
                **route.responses,
                "404": {"$ref": "#/components/responses/NotFound"},
                "405": {"$ref": "#/components/responses/MethodNotAllowed"},
            },
        }
        if route.params:
            operation["parameters"] = [p.openapi() for p in route.params]
        operation["security"] = [{"bearer": []}] if route.secured else []
        paths[route.path] = {"get": operation, "head": _head(operation)}
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "cdrstream query API",
            "version": __version__,
            "description": (
                "Call Data Records of a hosted PBX's tenants, for the partners that resell "
                "them airtime. Authenticate with 'Authorization: Bearer <token>' (issued by "
                "`cdrstream token issue`). Errors are application/problem+json. CSV columns: "
                + ",".join(CSV_COLUMNS)
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
                "NotFound": {"description": "no such route", "content": problem},
                "MethodNotAllowed": {
                    "description": "only GET and HEAD are served",
                    "content": problem,
                },
            },
        },
    }
