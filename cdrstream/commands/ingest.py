"""`cdrstream ingest`: PBX call records -> call-ended events on the topic (docs/adapters/).

- ``ingest freeswitch``: the HTTP receiver for ``mod_json_cdr`` (``POST /freeswitch`` on
  ``CDRSTREAM_INGEST_PORT``, with /healthz, /readyz, /metrics);
- ``ingest asterisk-csv PATH [--follow]``: ``cdr_csv``'s ``Master.csv``, resumable through a
  position file;
- ``ingest asterisk-ami``: the ``Event: Cdr`` stream of ``cdr_manager`` over AMI;
- ``ingest map --format F FILE...``: a preview of what the adapters make of CDR files
  (`cdrstream.commands.ingest_map`), nothing produced.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from cdrstream.commands.faust_role import add_uvloop_flag

if TYPE_CHECKING:
    from cdrstream.ingest.asterisk_cdr import AsteriskConfig
    from cdrstream.ingest.freeswitch_cdr import FreeswitchConfig
    from cdrstream.settings import Settings

DEFAULT_POSITION_DIR = Path("var") / "ingest"


def configure(parser: argparse.ArgumentParser) -> None:
    sources = parser.add_subparsers(dest="source", required=True, metavar="SOURCE")
    fs = sources.add_parser(
        "freeswitch",
        help="HTTP receiver for FreeSWITCH mod_json_cdr (POST /freeswitch)",
        description="HTTP receiver for FreeSWITCH mod_json_cdr: POST /freeswitch on "
        "CDRSTREAM_INGEST_BIND:CDRSTREAM_INGEST_PORT; /healthz, /readyz, /metrics.",
    )
    fs.add_argument(
        "--allow-anonymous",
        action="store_true",
        help="without CDRSTREAM_INGEST_CREDENTIALS, accept posts from anyone on a non-loopback"
        " address too (logged as a warning)",
    )
    add_uvloop_flag(fs)
    csv_parser = sources.add_parser(
        "asterisk-csv",
        help="Asterisk cdr_csv Master.csv (resumable; --follow to keep reading)",
        description="Read Asterisk's Master.csv, from the saved position, and produce its "
        "PSTN legs; unreadable rows go to the dead-letter topic.",
    )
    csv_parser.add_argument("path", type=Path, help="the CSV file (e.g. .../cdr-csv/Master.csv)")
    csv_parser.add_argument(
        "--follow", action="store_true", help="keep reading as Asterisk appends (like tail -F)"
    )
    csv_parser.add_argument(
        "--position-file",
        type=Path,
        default=None,
        help="where the read position is kept [var/ingest/<file name>.position]",
    )
    csv_parser.add_argument(
        "--settle",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="with --follow: a chain of CDRs is complete after this many quiet seconds [2]",
    )
    add_uvloop_flag(csv_parser)
    ami = sources.add_parser(
        "asterisk-ami",
        help="Asterisk cdr_manager events over AMI (CDRSTREAM_AMI_*)",
        description="Log in to the Asterisk manager (CDRSTREAM_AMI_HOST/PORT/USERNAME/SECRET) "
        "and produce the PSTN legs of its Cdr events.",
    )
    ami.add_argument("--host", default=None, help="manager host [CDRSTREAM_AMI_HOST]")
    ami.add_argument("--port", type=int, default=None, help="manager port [CDRSTREAM_AMI_PORT]")
    ami.add_argument(
        "--settle",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="a chain of CDRs is complete after this many quiet seconds [2]",
    )
    add_uvloop_flag(ami)
    from cdrstream.commands.ingest_map import configure_map

    configure_map(sources)


def run(args: argparse.Namespace) -> int:
    import logging
    import sys

    from cdrstream.commands.faust_role import prepare_process
    from cdrstream.commands.ingest_map import adapter_configs, run_map
    from cdrstream.ingest.producer import compression_type
    from cdrstream.settings import load_settings

    settings = load_settings()
    configs = adapter_configs(settings)
    if isinstance(configs, str):
        print(configs, file=sys.stderr)
        return 2
    fs_config, ast_config, warnings = configs
    if args.source == "map":
        return run_map(args, fs_config, ast_config, warnings)
    try:
        compression_type(settings.ingest_compression)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    anonymous = args.source == "freeswitch" and not settings.ingest_credentials
    if anonymous and not args.allow_anonymous and not is_loopback(settings.ingest_bind):
        print(
            f"CDRSTREAM_INGEST_CREDENTIALS is not set and the receiver would listen on"
            f" {settings.ingest_bind}: anyone who reaches it could post CDRs into any tenant."
            " Set CDRSTREAM_INGEST_CREDENTIALS (and json_cdr's 'cred'), bind a loopback address"
            " (CDRSTREAM_INGEST_BIND=127.0.0.1), or pass --allow-anonymous",
            file=sys.stderr,
        )
        return 2
    prepare_process(settings, uvloop=not args.no_uvloop)
    log = logging.getLogger("cdrstream.ingest")
    for warning in warnings:
        log.warning(warning)
    loop = asyncio.get_event_loop()
    if args.source == "freeswitch":
        if anonymous:
            log.warning(
                "CDRSTREAM_INGEST_CREDENTIALS is not set: anyone who reaches %s:%d can post"
                " CDRs%s; set it and json_cdr's 'cred'",
                settings.ingest_bind,
                settings.ingest_port,
                " (--allow-anonymous)" if args.allow_anonymous else "",
            )
        coroutine = _freeswitch(settings, fs_config)
    else:
        if args.source == "asterisk-csv":
            coroutine = _asterisk_csv(settings, ast_config, args)
        else:
            if not settings.ami_username:
                log.error("CDRSTREAM_AMI_USERNAME is not set (and CDRSTREAM_AMI_SECRET)")
                return 2
            coroutine = _asterisk_ami(settings, ast_config, args)
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


def is_loopback(bind: str) -> bool:
    """``bind`` (an address or ``localhost``) reaches only this machine."""
    import ipaddress

    if bind.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(bind.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def _stop_on_signals() -> asyncio.Event:
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _freeswitch(settings: Settings, config: FreeswitchConfig) -> int:
    import logging

    from aiohttp import web

    from cdrstream.api.server import runner
    from cdrstream.ingest.freeswitch_receiver import create_receiver_app
    from cdrstream.ingest.producer import EventProducer

    log = logging.getLogger("cdrstream.ingest")
    stop = _stop_on_signals()
    producer = EventProducer(settings, source="freeswitch")
    await producer.start()
    app = create_receiver_app(producer, config, credentials=settings.ingest_credentials)
    app_runner = runner(app)
    await app_runner.setup()
    try:
        site = web.TCPSite(app_runner, settings.ingest_bind, settings.ingest_port)
        try:
            await site.start()
        except OSError as exc:
            log.error("cannot listen on %s:%d: %s", settings.ingest_bind, settings.ingest_port, exc)
            return 1
        log.info(
            "FreeSWITCH receiver on http://%s:%d/freeswitch",
            settings.ingest_bind,
            settings.ingest_port,
        )
        await stop.wait()
        log.info("stopping")
        return 0
    finally:
        await app_runner.cleanup()
        await producer.stop()


async def _asterisk_csv(
    settings: Settings, config: AsteriskConfig, args: argparse.Namespace
) -> int:
    from cdrstream.ingest.csv_tail import CsvTailer, PositionFile
    from cdrstream.ingest.producer import EventProducer

    stop = _stop_on_signals()
    position_path = args.position_file or DEFAULT_POSITION_DIR / f"{args.path.name}.position"
    producer = EventProducer(settings, source="asterisk_csv")
    await producer.start()
    try:
        tailer = CsvTailer(
            args.path,
            PositionFile(position_path),
            producer,
            config,
            follow=args.follow,
            settle_s=args.settle,
        )
        return await tailer.run(stop)
    finally:
        await producer.stop()


async def _asterisk_ami(
    settings: Settings, config: AsteriskConfig, args: argparse.Namespace
) -> int:
    from cdrstream.ingest.ami_client import AmiClient
    from cdrstream.ingest.producer import EventProducer

    stop = _stop_on_signals()
    producer = EventProducer(settings, source="asterisk_ami")
    await producer.start()
    try:
        client = AmiClient(
            args.host or settings.ami_host,
            args.port or settings.ami_port,
            settings.ami_username,
            settings.ami_secret,
            producer,
            config,
            settle_s=args.settle,
        )
        return await client.run(stop)
    finally:
        await producer.stop()
