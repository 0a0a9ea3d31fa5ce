"""`cdrstream api`: the query endpoint and web page (a query-only Faust app, no Kafka)."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-uvloop", action="store_true", help="use asyncio's default loop instead of uvloop"
    )


def run(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import logging.config
    import tempfile

    from faust.worker import Worker

    from cdrstream.api.app import build_api, create_api_app
    from cdrstream.observability.json_logs import logging_config
    from cdrstream.settings import load_settings
    from cdrstream.store.connection import connect
    from cdrstream.tenant_profiles import TenantProfilesError

    settings = load_settings()
    config = logging_config(settings.log_level)
    logging.config.dictConfig(config)
    if not args.no_uvloop:
        import uvloop

        uvloop.install()
    asyncio.set_event_loop(asyncio.new_event_loop())
    with tempfile.TemporaryDirectory(prefix="cdrstream-api-") as datadir:
        app = create_api_app(settings, datadir=datadir)
        redis = connect(settings)
        try:
            build_api(app, settings, redis)
        except TenantProfilesError as exc:
            logging.getLogger("cdrstream.api").error("%s", exc)
            return 2

        async def close_redis(_: object) -> None:
            await redis.aclose()

        app.web.web_app.on_cleanup.append(close_redis)  # type: ignore[attr-defined]
        logging.getLogger("cdrstream.api").info(
            "query endpoint on http://%s:%d/ (redis %s)",
            settings.api_bind,
            settings.api_port,
            settings.redis_url.split("@")[-1],
        )
        worker = Worker(
            app,
            loglevel=settings.log_level,
            logging_config=config,
            quiet=True,
            redirect_stdouts=False,
            override_logging=False,
        )
        try:
            worker.execute_from_commandline()
        except SystemExit as exc:
            return int(exc.code or 0) if isinstance(exc.code, int | None) else 1
    return 0
