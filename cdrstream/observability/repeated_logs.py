"""A log filter that lets one line of each repeated warning or error through per interval.

While Kafka is away its client logs the same refusal for every attempt (tens of lines a
second). `RepeatedRecords` passes the first record of each distinct (logger, level,
message, trace fields) and holds back the rest for `interval_s`; the first one passed after
that says how many were held back (a count no later line follows is not reported). Records
below ``min_level`` always pass. The trace fields (event id, tenant id, ...) are part of what
makes a record distinct, so two failed posts are never folded into one line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from cdrstream.observability.json_logs import TRACE_FIELDS

_MAX_KEYS = 1000

Key = tuple[str, int, str, tuple[object, ...]]


class RepeatedRecords(logging.Filter):
    def __init__(
        self,
        interval_s: float = 10.0,
        *,
        min_level: int = logging.WARNING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.interval_s = interval_s
        self.min_level = min_level
        self._clock = clock
        self._windows: dict[Key, tuple[float, int]] = {}  # key -> (passed at, held back)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.min_level:
            return True
        message = record.getMessage()
        key = (
            record.name,
            record.levelno,
            message,
            tuple(record.__dict__.get(name) for name in TRACE_FIELDS),
        )
        now = self._clock()
        passed_at, held = self._windows.get(key, (-float("inf"), 0))
        if now - passed_at < self.interval_s:
            self._windows[key] = (passed_at, held + 1)
            return False
        if len(self._windows) >= _MAX_KEYS:
            self._forget_before(now - self.interval_s)
        self._windows[key] = (now, 0)
        if held:
            record.msg = f"{message} ({held} more like it held back since the last one)"
            record.args = ()
        return True

    def _forget_before(self, moment: float) -> None:
        for key in [k for k, (at, _) in self._windows.items() if at < moment]:
            del self._windows[key]


def limit_repeated_records(interval_s: float = 10.0) -> None:
    """Install `RepeatedRecords` on every handler of the root logger (after dictConfig)."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(RepeatedRecords(interval_s))
