"""`cdrstream api`: the query endpoint and web page (a plain aiohttp application, no Kafka)."""

from __future__ import annotations

import argparse

from cdrstream.commands.faust_role import add_uvloop_flag


def configure(parser: argparse.ArgumentParser) -> None:
    add_uvloop_flag(parser)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from cdrstream.api.app import create_api_app
    from cdrstream.api.server import serve
    from cdrstream.commands.faust_role import prepare_process
    from cdrstream.settings import load_settings
    from cdrstream.store.connection import connect
    from cdrstream.tenant_profiles import TenantProfilesError

    settings = load_settings()
    prepare_process(settings, uvloop=not args.no_uvloop)  # JSON logs; a fresh (uv)loop
    log = logging.getLogger("cdrstream.api")
    loop = asyncio.get_event_loop()
    redis = connect(settings)
    try:
        try:
            app = create_api_app(settings, redis)
        except TenantProfilesError as exc:
            log.error("%s", exc)
            return 2
        log.info("redis %s", settings.redis_url.split("@")[-1])
        return loop.run_until_complete(serve(app, settings.api_bind, settings.api_port))
    finally:
        loop.run_until_complete(redis.aclose())
        loop.close()
