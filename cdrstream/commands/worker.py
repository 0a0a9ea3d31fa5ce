"""`cdrstream worker`: one member of the consumer group; metrics on its own port."""

from __future__ import annotations

import argparse

from cdrstream.commands.faust_role import add_uvloop_flag


def configure(parser: argparse.ArgumentParser) -> None:
    add_uvloop_flag(parser)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from cdrstream.commands.faust_role import prepare_process, run_faust_app
    from cdrstream.kafka_topics import ensure_owned_topics
    from cdrstream.settings import load_settings
    from cdrstream.worker.app import create_worker_app
    from cdrstream.worker.retry import until_done

    settings = load_settings()
    config = prepare_process(settings, uvloop=not args.no_uvloop)
    # Faust creates only its internal topics; ours exist before it subscribes. Until Kafka
    # answers, wait with backoff and say so, rather than crash-loop.
    asyncio.run(
        until_done(
            f"creating topics on kafka {settings.kafka_bootstrap}",
            lambda: ensure_owned_topics(settings),
            log=logging.getLogger("cdrstream.worker"),
            first_delay_s=0.5,
            max_delay_s=10.0,
        )
    )
    return run_faust_app(create_worker_app(settings), settings, config)
