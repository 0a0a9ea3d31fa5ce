"""A crash in native code under `cdrstream <command>` leaves every thread's traceback in the log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import cdrstream

# A command whose run() starts a second thread, then crashes the way a native extension
# would (faulthandler._sigsegv raises SIGSEGV in C), through the real entry point.
CRASHING_COMMAND = textwrap.dedent(
    """
    import faulthandler
    import threading

    import cdrstream.commands.normalize as normalize
    from cdrstream.cli import main

    def waiting_thread():
        threading.Event().wait()

    def crash(args):
        threading.Thread(target=waiting_thread, daemon=True).start()
        faulthandler._sigsegv()

    normalize.run = crash
    main(["normalize", "020 123 4567"])
    """
)


def test_a_segfault_under_the_cli_writes_every_threads_traceback_to_stderr() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONFAULTHANDLER"}
    env["PYTHONPATH"] = str(Path(cdrstream.__file__).parent.parent)
    done = subprocess.run(
        [sys.executable, "-c", CRASHING_COMMAND],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == -signal.SIGSEGV
    assert "Fatal Python error: Segmentation fault" in done.stderr
    assert "in crash" in done.stderr  # the crashing thread, down from the CLI's main
    assert "cdrstream/cli.py" in done.stderr
    assert "in waiting_thread" in done.stderr  # and the other thread
