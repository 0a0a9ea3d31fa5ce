"""The `cdrstream` command: one subcommand per module in `cdrstream.commands`.

Each command module exposes ``configure(parser)`` and ``run(args) -> int``. Modules are
imported only when their subcommand runs, so `normalize` does not pay for Faust's import.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

COMMANDS: dict[str, str] = {
    "stack": "local single-node Kafka (KRaft) + Redis + Prometheus: up | down | status",
    "topics": "create or check the call-ended and dead-letter topics on a real cluster",
    "worker": "the Faust worker (consumer group member); metrics on its own port",
    "api": "the query endpoint and web page",
    "generate": "realistic call-ended events onto the topic",
    "ingest": "PBX CDRs (FreeSWITCH mod_json_cdr, Asterisk cdr_csv / AMI) -> call-ended events",
    "token": "issue or revoke partner access tokens",
    "normalize": "normalize A/B numbers, one JSON line each",
    "explain": "stdin events -> one JSON line each: outcome, reason, record",
    "rebuild": "the retention window rebuilt from the call-ended topic (after Redis was lost)",
    "bench": "the benchmark of contract §9",
    "demo": "everything at once: stack, worker, api, generator; prints URL and token",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cdrstream", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        command_parser.set_defaults(_module=name)
        _module(name).configure(command_parser)
    return parser


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"cdrstream.commands.{name}")


def enable_crash_tracebacks() -> None:
    """On a fatal signal (SIGSEGV, SIGBUS, SIGFPE, SIGABRT, SIGILL: a crash in native code)
    write every thread's Python traceback to stderr, which is the process log.

    A setting already made (``python -X faulthandler``, PYTHONFAULTHANDLER, pytest) is kept.
    faulthandler leaves the signals Faust and mode handle (SIGTERM, SIGINT, SIGUSR1/2) alone.
    """
    if faulthandler.is_enabled():
        return
    # stderr without a file descriptor (closed, None, replaced in-process): nothing to write to
    with contextlib.suppress(AttributeError, OSError, RuntimeError, ValueError):
        faulthandler.enable(all_threads=True)


def main(argv: Sequence[str] | None = None) -> int:
    enable_crash_tracebacks()
    args = build_parser().parse_args(argv)
    try:
        return int(_module(args._module).run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        sys.stderr.close()
        return 0
