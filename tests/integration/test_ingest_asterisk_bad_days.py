"""The Asterisk adapters on a bad day, against the real Kafka: ``Master.csv`` rotated with
logrotate's ``copytruncate`` (tailer running, and restarted), a quoted line break in a row,
a number that is not UTF-8, and junk on the manager connection (a fake Asterisk manager of
the test's own, `FakeAsterisk`). Every row or event that can be read arrives exactly once;
what cannot is dead-lettered with its reason.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from cdrstream.settings import Settings
from cdrstream.stack.roles import RoleProcess, settings_env
from tests.integration.pipeline_helpers import create_topics
from tests.integration.test_ingest_asterisk import (
    AMI_SECRET,
    AMI_USER,
    ZONE,
    FakeAsterisk,
    local_start,
    topic,
)
from tests.unit.test_ingest_asterisk import csv_row

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(stack_settings: Settings) -> Settings:
    return create_topics(
        replace(
            stack_settings,
            asterisk_tz=ZONE,
            asterisk_trunks="carrier",
            ami_host="127.0.0.1",
            ami_username=AMI_USER,
            ami_secret=AMI_SECRET,
            log_level="DEBUG",
        )
    )


@pytest.fixture
async def asterisk() -> AsyncIterator[FakeAsterisk]:
    fake = await FakeAsterisk(AMI_USER, AMI_SECRET).start()
    yield fake
    await fake.stop()


class Calls:
    """Inbound calls of one CDR each, answered by 201; their event ids by the documented
    form ``ast:<uniqueid>:<trunk channel>``."""

    def __init__(self) -> None:
        self.prefix = uuid.uuid4().hex[:6]
        self.start = local_start(30)

    def values(self, n: int, **changes: Any) -> dict[str, Any]:
        at = self.start + timedelta(seconds=n)
        fmt = "%Y-%m-%d %H:%M:%S"
        values = {
            "accountcode": "acme", "src": "+31612345678", "dst": "0201234567",
            "dcontext": "from-trunk", "clid": '"Jan" <+31612345678>',
            "channel": f"PJSIP/carrier-{n:08x}", "dstchannel": "PJSIP/201-0000001b",
            "lastapp": "Dial", "lastdata": "PJSIP/201,30", "start": at.strftime(fmt),
            "answer": (at + timedelta(seconds=5)).strftime(fmt),
            "end": (at + timedelta(seconds=65)).strftime(fmt), "duration": 65, "billsec": 60,
            "disposition": "ANSWERED", "amaflags": "DOCUMENTATION",
            "uniqueid": f"{self.prefix}.{n}", "userfield": "", "peeraccount": "",
            "linkedid": f"{self.prefix}.{n}", "sequence": n,
        }  # fmt: skip
        return {**values, **changes}

    def row(self, n: int, **changes: Any) -> bytes:
        return (csv_row(**self.values(n, **changes)) + "\n").encode()

    def event_id(self, n: int) -> str:
        return f"ast:{self.prefix}.{n}:PJSIP/carrier-{n:08x}"


async def event_ids(settings: Settings, count: int) -> Counter[str]:
    events = await asyncio.wait_for(topic(settings, settings.topic, count), 120)
    return Counter(orjson.loads(m.value)["event_id"] for m in events)


def copytruncate(master: Path) -> None:
    """What logrotate's copytruncate does: copy the file aside, truncate it in place."""
    shutil.copyfile(master, master.with_name(master.name + ".1"))
    with master.open("r+b") as handle:
        handle.truncate(0)


def _tailer(settings: Settings, master: Path, work: Path, *extra: str) -> RoleProcess:
    argv = ["ingest", "asterisk-csv", str(master), "--position-file", str(work / "pos"), *extra]
    return RoleProcess(argv, env=settings_env(settings), log_file=work / "tail.log").start()


async def _run_once(settings: Settings, master: Path, work: Path) -> None:
    tailer = _tailer(settings, master, work)
    assert await asyncio.to_thread(tailer.proc.wait, 120) == 0, tailer.log_tail()  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", ["running", "restarted"])
async def test_copytruncate_then_longer_rows_loses_nothing(
    settings: Settings, tmp_path: Path, mode: str
) -> None:
    calls = Calls()
    master = tmp_path / "Master.csv"
    master.write_bytes(b"".join(calls.row(n) for n in range(10)))
    later = b"".join(calls.row(n) for n in range(10, 30))
    assert len(later) > master.stat().st_size  # the new content passes the saved offset
    if mode == "running":
        tailer = _tailer(settings, master, tmp_path, "--follow", "--settle", "0.5")
        try:
            assert set(await event_ids(settings, 10)) == {calls.event_id(n) for n in range(10)}
            copytruncate(master)
            with master.open("ab") as handle:  # Asterisk appends to the truncated file
                handle.write(later)
            ids = await event_ids(settings, 30)
        finally:
            assert tailer.stop() == 0, tailer.log_tail()
    else:
        await _run_once(settings, master, tmp_path)
        copytruncate(master)
        master.write_bytes(later)
        await _run_once(settings, master, tmp_path)
        ids = await event_ids(settings, 30)
    assert ids == Counter({calls.event_id(n): 1 for n in range(30)})
    assert "dead letter" not in (tmp_path / "tail.log").read_text()


async def test_a_quoted_line_break_is_one_row_and_a_garbled_number_a_dead_letter(
    settings: Settings, tmp_path: Path
) -> None:
    calls = Calls()
    garbled = calls.row(2).replace(b"+31612345678", b"+3161\xff345678", 1)
    master = tmp_path / "Master.csv"
    master.write_bytes(
        calls.row(0) + calls.row(1, userfield="callback\nrequested") + garbled + calls.row(3)
    )
    await _run_once(settings, master, tmp_path)
    ids = await event_ids(settings, 3)
    assert ids == Counter({calls.event_id(n): 1 for n in (0, 1, 3)})
    [letter] = await asyncio.wait_for(topic(settings, settings.dlq_topic, 1), 120)
    assert dict(letter.headers)["cdrstream.reason"] == b"asterisk_csv:src"
    assert letter.value + b"\n" == garbled


async def test_ami_resynchronises_after_junk_and_refuses_a_garbled_number(
    settings: Settings, asterisk: FakeAsterisk, tmp_path: Path
) -> None:
    calls = Calls()
    client = RoleProcess(
        ["ingest", "asterisk-ami", "--settle", "0.5"],
        env=settings_env(replace(settings, ami_port=asterisk.port)),
        log_file=tmp_path / "ami.log",
    ).start()
    try:
        await asyncio.wait_for(asterisk.logged_in.wait(), 60)
        render = asterisk.render
        asterisk.events.put_nowait(b"x" * 70_000 + b"\r\n")  # a 70 KB line, no empty line
        asterisk.events.put_nowait(render(calls.values(0)))
        asterisk.events.put_nowait(b"y" * 70_000 + b"\r\n\r\n")  # ... and with one
        asterisk.events.put_nowait(render(calls.values(1)))
        asterisk.events.put_nowait(b"Event: Cdr\r\nPrivilege: cdr,all\r\nSource: +3\r\n")  # cut
        asterisk.events.put_nowait(render(calls.values(2)))
        garbled = render(calls.values(3)).replace(b"0201234567", b"020\xc3(1234567", 1)
        asterisk.events.put_nowait(garbled)
        asterisk.events.put_nowait(render(calls.values(4)))
        ids = await event_ids(settings, 4)
        assert ids == Counter({calls.event_id(n): 1 for n in (0, 1, 2, 4)}), client.log_tail()
        letters = await asyncio.wait_for(topic(settings, settings.dlq_topic, 2), 120)
        reasons = sorted(dict(m.headers)["cdrstream.reason"] for m in letters)
        assert reasons == [b"asterisk_ami:AccountCode", b"asterisk_ami:Destination"]
        assert client.running
    finally:
        assert client.stop() == 0, client.log_tail()
