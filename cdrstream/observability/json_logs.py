"""One JSON object per log line, so one call can be traced by event_id/call_id/tenant_id.

Pass identifiers with ``extra={"event_id": ..., "call_id": ..., "tenant_id": ...}``.
A and B numbers are never logged at INFO or above.

Defence in depth: the secret part of anything shaped like a bearer token
(``cdrs_<id>_<secret>``) is replaced by ``[redacted]`` in every line, message and
traceback alike, so a token that some code path (ours or a library's) puts into a log
line does not reach the log. The token id, which is not secret, stays.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

import orjson

TRACE_FIELDS = ("event_id", "call_id", "tenant_id", "partition", "offset", "reason", "outcome")
#: A bearer token's secret: ``cdrs_<12 hex>_`` then the secret (or any part of it).
_TOKEN_SECRET = re.compile(r"(cdrs_[0-9a-fA-F]{12}_)[A-Za-z0-9_-]+")


def redact(text: str) -> str:
    """``text`` without the secrets of the bearer tokens in it."""
    return _TOKEN_SECRET.sub(r"\1[redacted]", text) if "cdrs_" in text else text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for name in TRACE_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(entry, default=str).decode()


def logging_config(level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` document: JSON lines on stderr for every logger."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {"aiokafka": {"level": "WARNING"}, "faust": {"level": "WARNING"}},
    }
