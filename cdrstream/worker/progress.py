"""Whether the worker is making progress: the age of the batch in hand, and the last failure.

A batch that is still not written after ``stall_after_s`` (an engine down, a retry loop) makes
the worker not ready (`/readyz` 503, with the reason) and shows in the
``cdrstream_worker_stuck_seconds`` gauge, so a stall is never silent.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Progress:
    def __init__(
        self, *, stall_after_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.stall_after_s = stall_after_s
        self._clock = clock
        self._busy_since: float | None = None
        self._last_failure: str | None = None

    def batch_started(self) -> None:
        self._busy_since = self._clock()
        self._last_failure = None

    def batch_finished(self) -> None:
        self._busy_since = None
        self._last_failure = None

    def failed(self, what: str, exc: BaseException) -> None:
        """Remember the newest failure of the batch in hand (type only: no data in it)."""
        self._last_failure = f"{what}: {type(exc).__name__}"

    def busy_for(self) -> float:
        """Seconds the batch in hand has been in progress; 0 when idle."""
        return 0.0 if self._busy_since is None else max(0.0, self._clock() - self._busy_since)

    def stall(self) -> str | None:
        """Why the worker is stalled, or None when it is not."""
        busy = self.busy_for()
        if busy <= self.stall_after_s:
            return None
        cause = f" (last failure: {self._last_failure})" if self._last_failure else ""
        return f"no progress for {busy:.0f}s: a batch is not yet written{cause}"
