"""`cdrstream worker`: one member of the consumer group; metrics on its own port."""

from __future__ import annotations

import argparse

from cdrstream.commands.faust_role import add_uvloop_flag


def configure(parser: argparse.ArgumentParser) -> None:
    add_uvloop_flag(parser)


def run(args: argparse.Namespace) -> int:
    import logging

    from cdrstream.commands.faust_role import prepare_process, run_faust_app
    from cdrstream.settings import load_settings
    from cdrstream.startup import wait_for_topics
    from cdrstream.worker.app import create_worker_app

    settings = load_settings()
    config = prepare_process(settings, uvloop=not args.no_uvloop)
    wait_for_topics(settings, logging.getLogger("cdrstream.worker"))
    return run_faust_app(create_worker_app(settings), settings, config)
