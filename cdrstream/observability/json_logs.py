"""One JSON object per log line, so one call can be traced by event_id/call_id/tenant_id.

Pass identifiers with ``extra={"event_id": ..., "call_id": ..., "tenant_id": ...}``.
A and B numbers are never logged at INFO or above.

Defence in depth: the secret part of anything shaped like a bearer token
(``cdrs_<id>_<secret>``) is replaced by ``[redacted]`` in every line, message and
traceback alike, so a token that some code path (ours or a library's) puts into a log
line does not reach the log. The token id, which is not secret, stays.

Two filters keep a broker outage from flooding the log (docs/operations.md):

- `RepeatedLines`: a library's warning or error (aiokafka, Faust, mode, ...: any logger
  outside ``cdrstream``) is written once per ``REPEAT_INTERVAL_S`` per distinct line (its
  logger, level, exception type and text with numbers left out); the first one written after
  the interval carries ``"repeated": N``, the lines held back meanwhile; a line that stops
  recurring is written once more with its count an interval later (or at exit). cdrstream's own
  lines are never held back (each names a different event, batch or retry).
- `FaustStreamIdleIsWarning`: Faust's "Stream has not started processing" and "Stream
  stopped processing, or is slow" are written at WARNING, not ERROR. They watch Faust's
  per-event stream path, which the worker bypasses (whole fetches); the worker feeds
  Faust's inbound times so a healthy worker does not trigger them, and its own stall
  detection (``cdrstream_worker_stuck_seconds``, ``/readyz``) is the one that pages.
"""

from __future__ import annotations

import atexit
import logging
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

TRACE_FIELDS = (
    "event_id",
    "call_id",
    "tenant_id",
    "partition",
    "offset",
    "reason",
    "outcome",
    "repeated",
)
REPEAT_INTERVAL_S = 30.0
#: Distinct lines remembered; past this, lines not seen for an interval are forgotten.
MAX_DISTINCT_LINES = 1_024
_NUMBERS = re.compile(r"\d+(?:\.\d+)?")
#: Set on a line that `RepeatedLines.flush` writes again, so the filter lets it through.
_FLUSHED = "_cdrstream_held_back_flush"
#: The start of Faust's stream-idle lines (faust/transport/drivers/aiokafka.py).
FAUST_STREAM_IDLE = ("Stream has not started processing", "Stream stopped processing, or is slow")
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


class RepeatedLines(logging.Filter):
    """One line per distinct library warning or error per interval, with a count.

    A line held back is not lost when it stops recurring: `flush` writes the last one held
    of each line whose interval has passed, with its count (a background thread calls it
    every interval, and once more at exit for whatever is still held)."""

    def __init__(
        self,
        interval_s: float = REPEAT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        emit: Callable[[logging.LogRecord], None] | None = None,
    ) -> None:
        super().__init__()
        self._interval_s = interval_s
        self._clock = clock
        self._emit = emit or _through_its_logger
        self._flusher_started = emit is not None  # a given `emit` is flushed by its owner
        # key -> [written, held back, the last line held back]
        self._seen: dict[tuple[str, int, str, str], list[Any]] = {}
        self._lock = threading.Lock()  # Faust's consumer thread logs too

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or record.name.partition(".")[0] == "cdrstream":
            return True
        error = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else ""
        key = (record.name, record.levelno, error, _NUMBERS.sub("#", record.getMessage()))
        now = self._clock()
        with self._lock:
            seen = self._seen.get(key)
            flushed = record.__dict__.pop(_FLUSHED, False)
            if seen is not None and now - seen[0] < self._interval_s and not flushed:
                seen[1] += 1
                seen[2] = record
                self._start_flusher()
                return False
            held = (seen[1] - flushed) if seen is not None else 0  # the flushed line is one
            if held:
                record.repeated = held
            if len(self._seen) >= MAX_DISTINCT_LINES:
                self._forget(now)
            self._seen[key] = [now, 0, None]
        return True

    def flush(self, everything: bool = False) -> None:
        """Write again the last line held back of each line not written for an interval (of
        every line holding some back, with ``everything``), with ``repeated`` the others held
        back (the lines written plus their counts add up to every line)."""
        now = self._clock()
        with self._lock:
            held = [
                seen[2]
                for seen in self._seen.values()
                if seen[1] and (everything or now - seen[0] >= self._interval_s)
            ]
        for record in held:
            record.__dict__[_FLUSHED] = True
            self._emit(record)

    def _start_flusher(self) -> None:
        if self._flusher_started:
            return
        self._flusher_started = True
        threading.Thread(target=self._flush_every_interval, name="log-flush", daemon=True).start()
        atexit.register(self.flush, everything=True)

    def _flush_every_interval(self) -> None:
        while True:
            time.sleep(self._interval_s)
            self.flush()

    def _forget(self, now: float) -> None:
        stale = [k for k, seen in self._seen.items() if now - seen[0] >= self._interval_s]
        for key in stale:
            del self._seen[key]
        if len(self._seen) >= MAX_DISTINCT_LINES:
            self._seen.clear()


def _through_its_logger(record: logging.LogRecord) -> None:
    logging.getLogger(record.name).handle(record)


class FaustStreamIdleIsWarning(logging.Filter):
    """Faust's stream-idle lines at WARNING (see the module's docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.ERROR and record.name.startswith("faust"):
            message = str(record.msg)
            if any(line in message for line in FAUST_STREAM_IDLE):
                record.levelno = logging.WARNING
                record.levelname = "WARNING"
        return True


def logging_config(level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` document: JSON lines on stderr for every logger."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "filters": {
            "faust_stream_idle": {"()": FaustStreamIdleIsWarning},
            "repeated": {"()": RepeatedLines},
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
                "filters": ["faust_stream_idle", "repeated"],
            }
        },
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {"aiokafka": {"level": "WARNING"}, "faust": {"level": "WARNING"}},
    }
