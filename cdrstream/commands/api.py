"""`cdrstream api`: the query endpoint and web page (a plain aiohttp application, no Kafka)."""

from __future__ import annotations

import argparse

from cdrstream.commands.faust_role import add_uvloop_flag


def configure(parser: argparse.ArgumentParser) -> None:
    from cdrstream.api.exports import DEFAULT_EXPORTS_PER_PARTNER, DEFAULT_WRITE_TIMEOUT_S
    from cdrstream.api.live import (
        DEFAULT_HEARTBEAT_S,
        DEFAULT_LIVE_PER_PARTNER,
        DEFAULT_LIVE_WRITE_TIMEOUT_S,
        DEFAULT_MAX_LIFETIME_S,
    )
    from cdrstream.api.server import KEEPALIVE_TIMEOUT_S

    add_uvloop_flag(parser)
    parser.add_argument(
        "--csv-write-timeout",
        type=float,
        default=DEFAULT_WRITE_TIMEOUT_S,
        metavar="SECONDS",
        help="close a CSV export whose client read nothing for this long "
        f"[{DEFAULT_WRITE_TIMEOUT_S:.0f}]",
    )
    parser.add_argument(
        "--csv-exports-per-partner",
        type=int,
        default=DEFAULT_EXPORTS_PER_PARTNER,
        metavar="N",
        help="CSV exports one partner may run at once on this process; one more answers "
        f"429 [{DEFAULT_EXPORTS_PER_PARTNER}]",
    )
    parser.add_argument(
        "--live-streams-per-partner",
        type=int,
        default=DEFAULT_LIVE_PER_PARTNER,
        metavar="N",
        help="live streams (server-sent events) one partner may hold open at once on this "
        f"process; one more answers 429 [{DEFAULT_LIVE_PER_PARTNER}]",
    )
    parser.add_argument(
        "--live-write-timeout",
        type=float,
        default=DEFAULT_LIVE_WRITE_TIMEOUT_S,
        metavar="SECONDS",
        help="close a live stream whose client read nothing for this long "
        f"[{DEFAULT_LIVE_WRITE_TIMEOUT_S:.0f}]",
    )
    parser.add_argument(
        "--live-heartbeat",
        type=float,
        default=DEFAULT_HEARTBEAT_S,
        metavar="SECONDS",
        help=f"seconds between a live stream's heartbeats [{DEFAULT_HEARTBEAT_S:.0f}]",
    )
    parser.add_argument(
        "--live-max-lifetime",
        type=float,
        default=DEFAULT_MAX_LIFETIME_S,
        metavar="SECONDS",
        help="end a live stream after this long (the client reconnects and resumes) "
        f"[{DEFAULT_MAX_LIFETIME_S:.0f}]",
    )
    parser.add_argument(
        "--keepalive-timeout",
        type=float,
        default=KEEPALIVE_TIMEOUT_S,
        metavar="SECONDS",
        help=f"close a kept-alive connection idle for this long [{KEEPALIVE_TIMEOUT_S:.0f}]",
    )


def run(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import sys

    from cdrstream.api.app import create_api_app
    from cdrstream.api.exports import ExportLimits
    from cdrstream.api.live import LiveLimits
    from cdrstream.api.server import serve
    from cdrstream.commands.faust_role import prepare_process
    from cdrstream.settings import load_settings
    from cdrstream.store.connection import connect
    from cdrstream.tenant_profiles import TenantProfilesError

    settings = load_settings()
    try:
        limits = ExportLimits(args.csv_write_timeout, args.csv_exports_per_partner)
        live_limits = LiveLimits(
            per_partner=args.live_streams_per_partner,
            heartbeat_s=args.live_heartbeat,
            write_timeout_s=args.live_write_timeout,
            max_lifetime_s=args.live_max_lifetime,
        )
        if not args.keepalive_timeout > 0:
            raise ValueError("the keep-alive timeout must be positive")
    except ValueError as exc:
        print(f"cdrstream api: {exc}", file=sys.stderr)
        return 2
    prepare_process(settings, uvloop=not args.no_uvloop)  # JSON logs; a fresh (uv)loop
    log = logging.getLogger("cdrstream.api")
    loop = asyncio.get_event_loop()
    redis = connect(settings)
    try:
        try:
            app = create_api_app(settings, redis, export_limits=limits, live_limits=live_limits)
        except TenantProfilesError as exc:
            log.error("%s", exc)
            return 2
        log.info("redis %s", settings.redis_url.split("@")[-1])
        return loop.run_until_complete(
            serve(app, settings.api_bind, settings.api_port, args.keepalive_timeout)
        )
    finally:
        loop.run_until_complete(redis.aclose())
        loop.close()
