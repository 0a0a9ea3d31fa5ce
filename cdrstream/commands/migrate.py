"""`cdrstream migrate [--tenants T1,T2] [--dry-run]`: move version-1 records into the tiered
layout now, instead of lazily in the workers' sweeps (``store/migrate.py``).

Safe while workers and query endpoints run: every record is served throughout (the
version-1 keys are read until a record has moved, in the same script that moves it), and
concurrent migrations of one tenant only repeat checks. Prints one JSON line per tenant
and a total; exits 1 if a tenant still has version-1 records at the end.
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tenants", help="comma-separated tenant ids [every tenant that has written records]"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="only count each tenant's version-1 records"
    )


def run(args: argparse.Namespace) -> int:
    import asyncio

    from cdrstream.settings import load_settings

    return asyncio.run(_run(args, load_settings()))


async def _run(args: argparse.Namespace, settings: object) -> int:
    import time

    import orjson

    from cdrstream.settings import Settings
    from cdrstream.store.connection import connect, prepare
    from cdrstream.store.migrate import legacy_count, migrate_tenant
    from cdrstream.store.sweeper import known_tenants

    assert isinstance(settings, Settings)
    redis = connect(settings)
    try:
        await prepare(redis)
        if args.tenants:
            tenants = [t.strip() for t in args.tenants.split(",") if t.strip()]
        else:
            tenants = await known_tenants(redis)
        left_total = moved_total = 0
        began = time.perf_counter()
        for tenant in tenants:
            before = await legacy_count(redis, tenant)
            if args.dry_run or not before:
                line = {"tenant": tenant, "version1_records": before}
                left_total += before
            else:
                start = time.perf_counter()
                stats = await migrate_tenant(
                    redis,
                    tenant,
                    now_ms=time.time_ns() // 1_000_000,
                    retention_ms=settings.retention_ms,
                    display_tz=settings.display_tz,
                )
                line = {
                    "tenant": tenant,
                    "version1_records": before,
                    "moved": stats.moved,
                    "dropped": stats.dropped,
                    "sealed": stats.sealed,
                    "left": stats.left,
                    "seconds": round(time.perf_counter() - start, 1),
                }
                moved_total += stats.moved
                left_total += stats.left
            print(orjson.dumps(line).decode(), flush=True)
        total = {
            "tenants": len(tenants),
            "moved": moved_total,
            "left": left_total,
            "seconds": round(time.perf_counter() - began, 1),
        }
        print(orjson.dumps(total).decode(), flush=True)
        return 1 if left_total and not args.dry_run else 0
    finally:
        await redis.aclose()
