"""Time as the whole product counts it: UTC epoch milliseconds."""

from __future__ import annotations

import time

SECOND_MS = 1_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000


def now_ms() -> int:
    """The current UTC time in epoch milliseconds."""
    return time.time_ns() // 1_000_000
