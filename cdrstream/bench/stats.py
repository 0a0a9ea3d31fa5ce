"""Percentiles and rates, without numpy."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of ``samples``; NaN when empty."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summary_ms(samples_s: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max in milliseconds of samples given in seconds."""
    return {
        "p50": round(percentile(samples_s, 50) * 1000, 2),
        "p95": round(percentile(samples_s, 95) * 1000, 2),
        "p99": round(percentile(samples_s, 99) * 1000, 2),
        "max": round(max(samples_s) * 1000, 2) if samples_s else math.nan,
        "n": len(samples_s),
    }
