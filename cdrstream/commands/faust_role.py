"""What every Faust-based role does on start: JSON logs, the event loop, then run the worker."""

from __future__ import annotations

import argparse
import asyncio
import logging.config
from typing import Any

from cdrstream.observability.json_logs import logging_config
from cdrstream.settings import Settings


def add_uvloop_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-uvloop", action="store_true", help="use asyncio's default loop instead of uvloop"
    )


def prepare_process(settings: Settings, *, uvloop: bool) -> dict[str, Any]:
    """Configure JSON logging and a fresh event loop; returns the logging config for Faust."""
    config = logging_config(settings.log_level)
    logging.config.dictConfig(config)
    if uvloop:
        import uvloop as _uvloop

        _uvloop.install()
    asyncio.set_event_loop(asyncio.new_event_loop())
    return config


def run_faust_app(app: Any, settings: Settings, config: dict[str, Any]) -> int:
    """Run ``app`` in a Faust worker until SIGTERM/SIGINT; returns the exit code."""
    from faust.worker import Worker

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
