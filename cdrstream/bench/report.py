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
        (
            "rebuild from the topic into an empty Redis (events/s)",
            f"{t['rebuild_eps']:,}",
            f"{t['rebuild_events']:,} events, beside the worker's",
        ),
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
    ]
    layouts = result.get("layouts")
    if layouts:
        tiered = layouts["tiered"]
        rows += [
            (
                f"Redis bytes per record, {layouts['records']:,} records",
                f"{tiered['bytes_per_record']}",
                "target <= 200",
            ),
            (
                "  with the live-tail stream as the fill left it",
                f"{tiered['bytes_per_record_with_filled_live_stream']}",
                "all fill writes within its 16 minutes: at its 1M cap",
            ),
            (
                "Redis time per new record (us)",
                f"{tiered['us_per_record']}",
                f"write {tiered['write_us_per_record']} + seal {tiered['seal_us_per_record']};"
                " target <= 30",
            ),
            (
                "  same, one record per write call (us)",
                f"{tiered['single_us_per_record']}",
                "a quiet tenant's batches",
            ),
            (
                "Redis CPU per new record (us)",
                f"{tiered['redis_cpu_us_per_record']}",
                "process CPU, all commands",
            ),
            (
                "sealing, worker CPU per record (us)",
                f"{tiered['seal_python_us_per_record']}",
                f"{tiered['seals']} hourly seals; hot records left {tiered['hot_records']:,}",
            ),
            (
                "reader stream, no HTTP (records/s)",
                f"{tiered['stream_records_per_s']:,}",
                "what the CSV export reads from",
            ),
        ]
    else:
        rows.append(
            ("Redis bytes per record", f"{result['redis_bytes_per_record']}", "target <= 200")
        )
    for name, figures in q.get("by_filter", {}).items():
        rows.append((f"  filter {name} p50/p99", f"{figures['p50']}/{figures['p99']} ms", ""))
        if layouts:
            tiered_q = layouts["tiered"]["query_ms"][name]
            rows.append(("    in-process p50/p99", f"{tiered_q['p50']}/{tiered_q['p99']} ms", ""))
    big = q.get("big_day")
    if big:
        rows += [
            (
                f"busiest day: {big['records']:,} records in one tenant-day, page p50",
                f"{big['p50']} ms",
                f"{big['bytes_per_record']} bytes per record",
            ),
            ("  page p99", f"{big['p99']} ms", "target <= 15 ms for every filter"),
            ("  CSV export of the day (rows/s)", f"{big['csv_rows_per_s']:,}", ""),
        ]
        for name, figures in big["by_filter"].items():
            rows.append((f"  filter {name} p50/p99", f"{figures['p50']}/{figures['p99']} ms", ""))
    for name, rps in result.get("redis_benchmark_ceiling", {}).items():
        rows.append((f"  redis-benchmark {name}", f"{rps:,.0f}", "ceiling of the same Redis"))
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{a.ljust(width)}  {b:>14}  {c}" for a, b, c in rows)
