"""The benchmark's results as a plain-text table, each figure beside its target."""

from __future__ import annotations

from typing import Any


def render_table(result: dict[str, Any]) -> str:
    t = result["throughput"]
    lat = result["latency_ms"]
    live = result.get("live_ms") or {"rate_eps": 0, "p50": "-", "p99": "-", "n": 0, "missed": 0}
    q = result["query_ms"]
    rows = [
        (
            "worker throughput (events/s)",
            f"{t['worker_eps']:,}",
            f"baseline aiokafka loop {t['baseline_eps']:,}",
        ),
        ("worker / baseline", f"{t['ratio']:.2f}", "decode-only loop, for reference"),
        (
            "same pipeline on bare aiokafka (events/s)",
            f"{t['own_work_eps']:,}",
            "own work without Faust",
        ),
        ("worker / own work", f"{t['ratio_own_work']:.2f}", "target >= 0.70"),
        ("bare Faust agent, no work (events/s)", f"{t['faust_only_eps']:,}", "framework ceiling"),
        ("average batch (events)", f"{t['average_batch']}", "one fetch per batch"),
        (f"latency produce->queryable @ {lat['rate_eps']}/s p50", f"{lat['p50']} ms", ""),
        ("latency p99", f"{lat['p99']} ms", "target <= 250 ms"),
        (
            f"live tail produce->SSE client @ {live['rate_eps']}/s p50",
            f"{live['p50']} ms",
            f"{live['n']:,} events, {live['missed']} missed",
        ),
        ("live tail p99", f"{live['p99']} ms", "target <= 500 ms"),
        (
            f"query page of 100, {q['records']:,} records p50",
            f"{q['p50']} ms",
            "over HTTP, all filters",
        ),
        ("query p99", f"{q['p99']} ms", "target <= 15 ms"),
        ("CSV export (rows/s)", f"{result['csv_rows_per_s']:,}", "target >= 100,000"),
        ("Redis bytes per record", f"{result['redis_bytes_per_record']}", "target <= 200"),
    ]
    for name, figures in q.get("by_filter", {}).items():
        rows.append((f"  filter {name} p50/p99", f"{figures['p50']}/{figures['p99']} ms", ""))
    for name, rps in result.get("redis_benchmark_ceiling", {}).items():
        rows.append((f"  redis-benchmark {name}", f"{rps:,.0f}", "ceiling of the same Redis"))
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{a.ljust(width)}  {b:>14}  {c}" for a, b, c in rows)
