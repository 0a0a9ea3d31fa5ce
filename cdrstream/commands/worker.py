"""`cdrstream worker`: one member of the consumer group; metrics on its own port."""

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

    from faust.worker import Worker

    from cdrstream.observability.json_logs import logging_config
    from cdrstream.settings import load_settings
    from cdrstream.startup import wait_for_topics
    from cdrstream.worker.app import create_worker_app

    settings = load_settings()
    config = logging_config(settings.log_level)
    logging.config.dictConfig(config)
    if not args.no_uvloop:
        import uvloop

        uvloop.install()
    asyncio.set_event_loop(asyncio.new_event_loop())
    wait_for_topics(settings, logging.getLogger("cdrstream.worker"))
    app = create_worker_app(settings)
    worker = Worker(
        app,
        loglevel=settings.log_level,
        logging_config=config,
        quiet=True,
        redirect_stdouts=False,
        override_logging=False,
    )
    worker.execute_from_commandline()
    return 0
