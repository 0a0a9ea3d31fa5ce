"""`cdrstream bench [--json PATH]`: the benchmark of contract §9 on the local stack."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", dest="json_path", help="also write the results to this file")
    parser.add_argument("--events", type=int, default=200_000, help="throughput events [200000]")
    parser.add_argument("--rate", type=int, default=2_000, help="latency phase events/s [2000]")
    parser.add_argument("--seconds", type=int, default=30, help="latency phase length [30]")
    parser.add_argument(
        "--query-records", type=int, default=1_000_000, help="records of the query tenant [1000000]"
    )
    parser.add_argument("--query-samples", type=int, default=200, help="pages per filter [200]")
    parser.add_argument(
        "--big-day-records",
        type=int,
        default=1_000_000,
        help="records of the busiest-day tenant, all in one day [1000000]",
    )


def run(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    import orjson

    from cdrstream.bench.report import render_table
    from cdrstream.bench.runner import BenchOptions, run_bench
    from cdrstream.settings import load_settings

    settings = load_settings()
    options = BenchOptions(
        events=args.events,
        rate=args.rate,
        seconds=args.seconds,
        query_records=args.query_records,
        query_samples=args.query_samples,
        big_day_records=args.big_day_records,
    )
    result = run_bench(settings, options, Path(settings.stack_dir) / "bench")
    result["machine"] = {
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    }
    print(render_table(result))
    if args.json_path:
        Path(args.json_path).write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return 0
