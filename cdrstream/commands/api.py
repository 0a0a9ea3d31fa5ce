"""`cdrstream api`: the query endpoint and web page (a query-only Faust app, no Kafka)."""

from __future__ import annotations

import argparse

from cdrstream.commands.faust_role import add_uvloop_flag


def configure(parser: argparse.ArgumentParser) -> None:
    add_uvloop_flag(parser)


def run(args: argparse.Namespace) -> int:
    import logging
    import tempfile

    from cdrstream.api.app import build_api, create_api_app
    from cdrstream.commands.faust_role import prepare_process, run_faust_app
    from cdrstream.settings import load_settings
    from cdrstream.store.connection import connect
    from cdrstream.tenant_profiles import TenantProfilesError

    settings = load_settings()
    config = prepare_process(settings, uvloop=not args.no_uvloop)
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
        return run_faust_app(app, settings, config)
