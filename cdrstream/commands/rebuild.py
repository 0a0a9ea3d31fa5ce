"""`cdrstream rebuild [--tenant T] [--since D]`: the window rebuilt from the call-ended topic
(after Redis was lost), with a progress bar on a terminal and plain lines otherwise."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenant", help="only this tenant (reads only its partition)")
    parser.add_argument(
        "--since", help="only events of the last D (90m, 36h, 7d); default: the whole window"
    )


def run(args: argparse.Namespace) -> int:
    import asyncio
    import sys
    import time

    from cdrstream.core.event import TENANT_ID
    from cdrstream.kafka_connection import refusal
    from cdrstream.rebuild.plan import Progress, nothing_to_replay, parse_duration_ms
    from cdrstream.rebuild.run import RebuildRefused, rebuild
    from cdrstream.settings import load_settings

    if args.tenant is not None and not TENANT_ID.fullmatch(args.tenant):
        print("rebuild: --tenant is not a tenant id ([A-Za-z0-9._-]{1,64})", file=sys.stderr)
        return 2
    try:
        since_ms = None if args.since is None else parse_duration_ms(args.since)
    except ValueError as exc:
        print(f"rebuild: --since: {exc}", file=sys.stderr)
        return 2
    settings = load_settings()
    refused = refusal(settings)
    if refused:
        print(f"rebuild refused: {refused}", file=sys.stderr)
        return 2
    terminal = sys.stderr.isatty()
    last_line = [0.0]

    def report(progress: Progress) -> None:
        if terminal:
            print("\r" + progress.bar(), end="", file=sys.stderr, flush=True)
        elif time.monotonic() - last_line[0] >= 5 or progress.done >= progress.total:
            print(progress.line(), file=sys.stderr, flush=True)
            last_line[0] = time.monotonic()

    try:
        result = asyncio.run(
            rebuild(settings, tenant=args.tenant, since_ms=since_ms, report=report)
        )
    except RebuildRefused as exc:
        print(
            f"\nrebuild refused: {exc}" if terminal else f"rebuild refused: {exc}", file=sys.stderr
        )
        return 2
    if terminal:
        print(file=sys.stderr)
    for partition, first, last in result.undecodable:
        print(
            f"rebuild: skipped an undecodable record batch: partition {partition},"
            f" offsets {first}-{last} (dead-lettered by the worker as undecodable_batch)",
            file=sys.stderr,
        )
    if result.replayed == 0:
        print(nothing_to_replay(args.tenant, since_ms, result.events))
        return 0
    rate = f"{result.rate:,.0f} events/s"
    print(f"rebuilt from {result.events:,} events in {result.seconds:.1f}s ({rate})")
    return 0
