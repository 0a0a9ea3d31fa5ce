"""Asterisk -> `cdrstream ingest asterisk-csv` / `asterisk-ami` -> Kafka -> worker -> API.

CDR samples are written as ``cdr_csv`` writes ``Master.csv`` and sent as ``cdr_manager``
sends ``Event: Cdr`` (a fake Asterisk manager, a small asyncio TCP server speaking the
manager protocol, stands in for Asterisk); the records the API serves must be exactly what
the pure mapping and rules predict. The file adapter is stopped, restarted and fed partial
lines: every event reaches the topic exactly once.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from cdrstream.access.access_store import issue_token
from cdrstream.core.outcome import Policy, decide
from cdrstream.core.record_view import record_to_dict
from cdrstream.ingest.asterisk_cdr import (
    AMI_HEADERS,
    AsteriskCdr,
    AsteriskConfig,
    chain_events,
    parse_csv_line,
)
from cdrstream.ingest.results import Mapped
from cdrstream.settings import Settings
from cdrstream.stack.processes import free_port
from cdrstream.stack.roles import RoleProcess, settings_env
from tests.integration.pipeline_helpers import (
    api_records,
    create_topics,
    now_ms,
    start_worker,
    wait_for,
)
from tests.unit.test_ingest_asterisk import csv_row

pytestmark = pytest.mark.integration

ZONE = "Europe/Amsterdam"
#: The dialplan names the tenant with Set(CDR(userfield)=...): a trunk's accountcode never does.
CONFIG = AsteriskConfig(
    zone=ZoneInfo(ZONE), trunks=frozenset({"carrier"}), tenant_sources=("userfield",)
)
AMI_USER, AMI_SECRET = "cdrstream", "ami-S3cret"


@dataclass
class Pipeline:
    settings: Settings
    tenant: str
    token: str
    worker: RoleProcess
    api: RoleProcess
    work: Path


@pytest.fixture
def pipeline(stack_settings: Settings, tmp_path: Path) -> Iterator[Pipeline]:
    settings = create_topics(
        replace(
            stack_settings,
            worker_port=free_port(),
            api_port=free_port(),
            api_bind="127.0.0.1",
            asterisk_tz=ZONE,
            asterisk_trunks="carrier",
            asterisk_tenant_sources="userfield",
            ami_host="127.0.0.1",
            ami_username=AMI_USER,
            ami_secret=AMI_SECRET,
            log_level="DEBUG",
        )
    )
    tenant = f"acme-{uuid.uuid4().hex[:8]}"
    token, _ = issue_token(
        settings.access_file, partner="ast-partner", tenants=[tenant], airtime_reseller=True
    )
    worker = start_worker(settings, tmp_path / "worker.log")
    api = RoleProcess(["api"], env=settings_env(settings), log_file=tmp_path / "api.log").start()
    try:
        api.wait_http(f"http://127.0.0.1:{settings.api_port}/healthz")
        # Stopped only once it consumes: a worker stopped while Faust still starts once
        # exited by SIGSEGV.
        worker.wait_http(f"http://127.0.0.1:{settings.worker_port}/readyz", timeout_s=120)
        yield Pipeline(settings, tenant, token, worker, api, tmp_path)
    finally:
        codes = {p.argv[0]: p.stop() for p in (api, worker)}
    assert codes == {"api": 0, "worker": 0}, worker.log_tail()


# --- samples ----------------------------------------------------------------------------


def chains(tenant: str, start: datetime) -> list[list[dict[str, Any]]]:
    """Each call as its chain of CDRs (column values), starting at local time ``start``."""

    def at(seconds: int) -> str:
        return (start + timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S")

    def row(uid: str, **values: Any) -> dict[str, Any]:
        base = {
            "accountcode": tenant, "src": "+31612345678", "dst": "0201234567",
            "dcontext": "from-trunk", "clid": '"Jan" <+31612345678>',
            "channel": f"PJSIP/carrier-{uid[-4:]}a", "dstchannel": "PJSIP/201-0000001b",
            "lastapp": "Dial", "lastdata": "PJSIP/201,30", "start": at(0), "answer": at(5),
            "end": at(65), "duration": 65, "billsec": 60, "disposition": "ANSWERED",
            "amaflags": "DOCUMENTATION", "uniqueid": uid, "userfield": tenant, "peeraccount": "",
            "linkedid": uid, "sequence": 1,
        }  # fmt: skip
        return {**base, **values}

    unanswered = {"answer": "", "billsec": 0, "disposition": "NO ANSWER"}
    out = {"src": "+31201234567", "clid": '"Acme" <+31201234567>', "dcontext": "from-internal",
           "channel": "PJSIP/201-00000040", "dstchannel": "PJSIP/carrier-00000041"}  # fmt: skip
    u = uuid.uuid4().hex[:6]
    return [
        [row(f"{u}.1")],  # inbound, answered by 201
        [row(f"{u}.2", src="", clid="")],  # withheld caller
        [  # a queue rings 201, 202, 203; 202 answers
            row(
                f"{u}.3",
                dstchannel="PJSIP/201-00000021",
                lastapp="Queue",
                end=at(12),
                duration=12,
                **unanswered,
            ),
            row(
                f"{u}.3",
                dstchannel="PJSIP/202-00000022",
                lastapp="Queue",
                answer=at(12),
                billsec=53,
            ),
            row(
                f"{u}.3",
                dstchannel="PJSIP/203-00000023",
                lastapp="Queue",
                end=at(12),
                duration=12,
                **unanswered,
            ),
        ],
        [row(f"{u}.4", dstchannel="", lastapp="BackGround")],  # an IVR on the DID's context
        [  # 201 answers, then transfers to 202
            row(f"{u}.5", end=at(30), duration=30, billsec=25),
            row(
                f"{u}.5",
                dstchannel="PJSIP/202-00000032",
                start=at(30),
                answer=at(33),
                duration=35,
                billsec=32,
            ),
        ],
        [row(f"{u}.6", dst="0612345678", lastdata="PJSIP/0612345678@carrier", **out)],
        [row(f"{u}.7", dst="112", lastdata="PJSIP/112@carrier", **out)],  # emergency
        [
            row(
                f"{u}.8",
                src="201",
                dst="202",
                channel="PJSIP/201-00000050",
                dstchannel="PJSIP/202-00000051",
                dcontext="from-internal",
            )
        ],
        [
            row(
                f"{u}.9",
                dstchannel="PJSIP/carrier-0000005b",
                lastdata="PJSIP/0687654321@carrier,30",
            )
        ],  # forwarded: two PSTN legs
        [
            row(
                f"{u}.10",
                dst="0201112233",
                lastdata="PJSIP/0201112233@carrier",
                end=at(9),
                duration=9,
                **{**out, **unanswered, "disposition": "BUSY"},
            )
        ],
    ]


BAD_LINES = [
    csv_row(start="not a time"),
    '"too","few","columns"',
]


def predicted(settings: Settings, calls: list[list[dict[str, Any]]]) -> dict[str, dict]:
    policy = Policy(retention_ms=settings.retention_ms, default_region=settings.default_region)
    zone = ZoneInfo(settings.display_tz)
    expected: dict[str, dict] = {}
    for chain in calls:
        cdrs = [parse_csv_line(csv_row(**values), CONFIG) for values in chain]
        assert all(isinstance(c, AsteriskCdr) for c in cdrs)
        for result in chain_events(cdrs, CONFIG):  # type: ignore[arg-type]
            assert isinstance(result, Mapped), result
            decision = decide(orjson.dumps(result.event), now_ms(), policy)
            if decision.record is not None:
                expected[decision.record.call_id] = record_to_dict(decision.record, zone)
    return expected


async def served(pipeline: Pipeline) -> dict[str, dict]:
    records = await asyncio.to_thread(
        api_records, pipeline.settings, pipeline.tenant, pipeline.token
    )
    return {r["call_id"]: r for r in records}


async def topic(settings: Settings, name: str, count: int) -> list[Any]:
    """Every message of ``name`` from the start, once ``count`` have arrived."""
    consumer = AIOKafkaConsumer(
        name,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    messages: list[Any] = []
    try:
        while len(messages) < count:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                messages.extend(batch)
        # and whatever else is there already: a second copy would show here
        end = await consumer.end_offsets(list(consumer.assignment()))
        for partition, offset in end.items():
            while await consumer.position(partition) < offset:
                for batch in (await consumer.getmany(partition, timeout_ms=1000)).values():
                    messages.extend(batch)
    finally:
        await consumer.stop()
    return messages


def ingest_csv(pipeline: Pipeline, path: Path, position: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cdrstream", "ingest", "asterisk-csv", str(path),
         "--position-file", str(position)],
        env=settings_env(pipeline.settings), capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def local_start(minutes_ago: int) -> datetime:
    return datetime.now(ZoneInfo(ZONE)).replace(tzinfo=None, microsecond=0) - timedelta(
        minutes=minutes_ago
    )


# --- the CSV file -------------------------------------------------------------------------


async def test_master_csv_samples_come_out_as_the_rules_predict_exactly_once(
    pipeline: Pipeline,
) -> None:
    calls = chains(pipeline.tenant, local_start(90))
    lines = [csv_row(**values) for chain in calls for values in chain]
    master = pipeline.work / "Master.csv"
    position = pipeline.work / "master.position"
    master.write_text("\n".join([*lines[:5], BAD_LINES[0], *lines[5:], BAD_LINES[1]]) + "\n")

    done = await asyncio.to_thread(ingest_csv, pipeline, master, position)
    assert done.returncode == 0, done.stderr
    expected = predicted(pipeline.settings, calls)
    assert len(expected) == 9  # 10 PSTN legs; the emergency call is hidden
    records = await wait_for(lambda: served(pipeline), lambda r: len(r) >= len(expected))
    assert records == expected, pipeline.worker.log_tail()
    assert records[f"{calls[2][0]['uniqueid']}:{calls[2][0]['channel']}"]["extension"] == "0"
    assert records[f"{calls[4][0]['uniqueid']}:{calls[4][0]['channel']}"]["extension"] == "202"

    letters = await topic(pipeline.settings, pipeline.settings.dlq_topic, 2)
    reasons = Counter(dict(m.headers)["cdrstream.reason"].decode() for m in letters)
    assert reasons == Counter({"asterisk_csv:start": 1, "asterisk_csv:row": 1})
    assert sorted(m.value.decode() for m in letters) == sorted(BAD_LINES)

    # Asterisk appends more, the last line only half written yet (no newline).
    more = chains(pipeline.tenant, local_start(60))[:3]
    more_lines = [csv_row(**values) for chain in more for values in chain]
    with master.open("a") as handle:
        handle.write("\n".join(more_lines[:-1]) + "\n" + more_lines[-1][:40])
    assert (await asyncio.to_thread(ingest_csv, pipeline, master, position)).returncode == 0
    with master.open("a") as handle:
        handle.write(more_lines[-1][40:] + "\n")
    assert (await asyncio.to_thread(ingest_csv, pipeline, master, position)).returncode == 0
    assert (await asyncio.to_thread(ingest_csv, pipeline, master, position)).returncode == 0

    expected |= predicted(pipeline.settings, more)
    records = await wait_for(lambda: served(pipeline), lambda r: len(r) >= len(expected))
    assert records == expected
    events = await topic(pipeline.settings, pipeline.settings.topic, 10 + 3)
    ids = Counter(orjson.loads(m.value)["event_id"] for m in events)
    assert len(ids) == 13 and set(ids.values()) == {1}  # nothing lost, nothing sent twice
    assert {m.key.decode() for m in events} == {pipeline.tenant}
    assert orjson.loads(position.read_text())["offset"] == master.stat().st_size


async def test_following_the_file_across_a_restart(pipeline: Pipeline) -> None:
    master = pipeline.work / "Master.csv"
    position = pipeline.work / "follow.position"
    master.write_text("")
    argv = ["ingest", "asterisk-csv", str(master), "--follow", "--settle", "0.5",
            "--position-file", str(position)]  # fmt: skip
    env = settings_env(pipeline.settings)
    follower = RoleProcess(argv, env=env, log_file=pipeline.work / "follow.log").start()
    first = chains(pipeline.tenant, local_start(50))
    second = chains(pipeline.tenant, local_start(40))
    try:
        with master.open("a") as handle:
            for chain in first:
                handle.write("".join(csv_row(**values) + "\n" for values in chain))
                handle.flush()
        expected = predicted(pipeline.settings, first)
        records = await wait_for(lambda: served(pipeline), lambda r: len(r) >= len(expected))
        assert records == expected, follower.log_tail()
    finally:
        assert follower.stop() == 0, follower.log_tail()
    with master.open("a") as handle:  # written while the adapter was down
        handle.write("".join(csv_row(**v) + "\n" for chain in second[:5] for v in chain))
    follower = RoleProcess(argv, env=env, log_file=pipeline.work / "follow.log").start()
    try:
        with master.open("a") as handle:
            handle.write("".join(csv_row(**v) + "\n" for chain in second[5:] for v in chain))
        expected |= predicted(pipeline.settings, second)
        records = await wait_for(lambda: served(pipeline), lambda r: len(r) >= len(expected))
        assert records == expected, follower.log_tail()
    finally:
        assert follower.stop() == 0, follower.log_tail()
    events = await topic(pipeline.settings, pipeline.settings.topic, 20)
    ids = Counter(orjson.loads(m.value)["event_id"] for m in events)
    assert len(ids) == 20 and set(ids.values()) == {1}


# --- AMI -------------------------------------------------------------------------------------


class FakeAsterisk:
    """A manager port: greets, checks Login, then sends the Cdr events it is given."""

    def __init__(self, username: str, secret: str) -> None:
        self.username, self.secret = username, secret
        self.logins: list[tuple[str, bool]] = []
        self.logged_in = asyncio.Event()
        self.events: asyncio.Queue[bytes] = asyncio.Queue()
        self.with_login = b""
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> FakeAsterisk:
        self.server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(b"Asterisk Call Manager/9.0.0\r\n")
            raw = await reader.readuntil(b"\r\n\r\n")
            headers = dict(
                line.split(": ", 1) for line in raw.decode().split("\r\n") if ": " in line
            )
            ok = (
                headers.get("Action") == "Login"
                and headers.get("Username") == self.username
                and headers.get("Secret") == self.secret
                and headers.get("Events") == "cdr"
            )
            self.logins.append((headers.get("Username", ""), ok))
            if not ok:
                writer.write(b"Response: Error\r\nMessage: Authentication failed\r\n\r\n")
                await writer.drain()
                return
            writer.write(
                b"Response: Success\r\nMessage: Authentication accepted\r\n\r\n"
                b"Event: FullyBooted\r\nPrivilege: system,all\r\nStatus: Fully Booted\r\n\r\n"
                + self.with_login  # events already waiting: in the same write as the answer
            )
            await writer.drain()
            self.logged_in.set()
            while True:
                writer.write(await self.events.get())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def send(self, *chain: dict[str, Any]) -> None:
        """The ``Event: Cdr`` of each CDR of a chain, in one write (Asterisk dispatches a
        chain at once)."""
        self.events.put_nowait(self.render(*chain))

    @staticmethod
    def render(*chain: dict[str, Any]) -> bytes:
        """``Event: Cdr`` messages as cdr_manager's manager_log writes them."""
        names = {column: header for header, column in AMI_HEADERS.items()}
        data = b""
        for values in chain:
            lines = ["Event: Cdr", "Privilege: cdr,all"]
            for column in ("accountcode", "src", "dst", "dcontext", "clid", "channel",
                           "dstchannel", "lastapp", "lastdata", "start", "answer", "end",
                           "duration", "billsec", "disposition", "amaflags", "uniqueid",
                           "userfield"):  # fmt: skip
                lines.append(f"{names[column]}: {values[column]}")
            data += ("\r\n".join(lines) + "\r\n\r\n").encode()
        return data


@pytest.fixture
async def asterisk() -> AsyncIterator[FakeAsterisk]:
    fake = await FakeAsterisk(AMI_USER, AMI_SECRET).start()
    yield fake
    await fake.stop()


async def test_ami_cdr_events_come_out_as_the_rules_predict(
    pipeline: Pipeline, asterisk: FakeAsterisk
) -> None:
    settings = replace(pipeline.settings, ami_port=asterisk.port)
    calls = chains(pipeline.tenant, local_start(30))
    asterisk.with_login = asterisk.render(*calls[0])  # arrives with the login's answer
    client = RoleProcess(
        ["ingest", "asterisk-ami", "--settle", "0.5"],
        env=settings_env(settings),
        log_file=pipeline.work / "ami.log",
    ).start()
    try:
        await asyncio.wait_for(asterisk.logged_in.wait(), 60)
        for index, chain in enumerate(calls[1:], start=1):
            asterisk.send(*chain)
            if index == 3:
                asterisk.send({**calls[0][0], "start": "garbage", "uniqueid": "bad.1"})
        expected = predicted(pipeline.settings, calls)
        records = await wait_for(lambda: served(pipeline), lambda r: len(r) >= len(expected))
        assert records == expected, client.log_tail()
        letters = await topic(pipeline.settings, pipeline.settings.dlq_topic, 1)
        assert [dict(m.headers)["cdrstream.reason"] for m in letters] == [b"asterisk_ami:StartTime"]
        assert client.running
    finally:
        assert client.stop() == 0, client.log_tail()
    # the same CDRs from the CSV file are the same events: duplicates, not new records
    master = pipeline.work / "Master.csv"
    master.write_text("".join(csv_row(**v) + "\n" for chain in calls for v in chain))
    position = pipeline.work / "master.position"
    assert (await asyncio.to_thread(ingest_csv, pipeline, master, position)).returncode == 0
    events = await topic(pipeline.settings, pipeline.settings.topic, 20)
    ids = Counter(orjson.loads(m.value)["event_id"] for m in events)
    assert len(ids) == 10 and min(ids.values()) == 2  # each from AMI and from the file
    assert await served(pipeline) == expected
    log = (pipeline.work / "ami.log").read_text()
    assert AMI_SECRET not in log and "+31612345678" not in log


async def test_a_refused_ami_login_is_logged_without_the_secret_and_retried(
    pipeline: Pipeline, asterisk: FakeAsterisk
) -> None:
    settings = replace(pipeline.settings, ami_port=asterisk.port, ami_secret="wrong-S3cret")
    client = RoleProcess(
        ["ingest", "asterisk-ami"], env=settings_env(settings), log_file=pipeline.work / "bad.log"
    ).start()
    try:
        logins = await wait_for(
            lambda: asyncio.sleep(0, asterisk.logins), lambda seen: len(seen) >= 2
        )
        assert logins[:2] == [(AMI_USER, False), (AMI_USER, False)]
        assert client.running
    finally:
        assert client.stop() == 0
    log = (pipeline.work / "bad.log").read_text()
    assert "login refused" in log and "wrong-S3cret" not in log
