"""Following Asterisk's ``Master.csv`` (a shell around `asterisk_cdr` and `csv_records`).

Reads whole CSV records only (cdr_csv appends each row with one ``fputs``; a record without
its final line break yet is left for the next read; a line break inside quotes is part of
the record), groups them into chains, produces each chain's events, and remembers how far it
got in a **position file**: JSON with the CSV's path, device, inode, a fingerprint of its
first bytes (up to `FINGERPRINT_BYTES`) and the byte offset up to which every row has been
produced (or dead-lettered). A row whose ``src`` or ``dst`` is not UTF-8 is dead-lettered
(``asterisk_csv:src``, ``asterisk_csv:dst``).
The position moves only after Kafka acknowledged, and is written atomically (temporary file,
fsync, rename), at most every `SAVE_EVERY_S` and always when idle and on exit. So a restart
continues where the last run stopped: nothing is lost, and nothing is sent twice after a
clean stop. After a crash, the rows of the last fraction of a second may be sent again; they
carry the same event ids, so the store counts them as duplicates, not new records.

Rotation and truncation: when the path names a new file (another inode) the old one is read
to its end first, then the new one from its start. A file rewritten in place (logrotate's
``copytruncate``: truncated, then appended to) is recognised by its size falling below what
was read or by its first bytes no longer matching the fingerprint, checked before every
read is used, so new rows longer than the old offset are still read from the start; the
rows of the old content not read yet are in the rotated copy. A saved position for another
path or file, or whose fingerprint no longer matches, is ignored (logged), and the file is
read from its start, whether the tailer was running or restarted.

With ``follow`` false the file is read to its end once and the command exits (an import,
resumable); with ``follow`` it keeps reading. A chain counts as complete when the next
chain starts, or, while no line is half written, at the end of the file (an import) or
when no row arrived for `settle_s` seconds (following). A chain held back is not produced
and the position stays before it: the next run reads it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import orjson

from cdrstream.ingest.asterisk_cdr import AsteriskCdr, AsteriskConfig, Chains, parse_csv_line
from cdrstream.ingest.asterisk_delivery import Stopped, dead_letter, deliver_chain
from cdrstream.ingest.csv_records import one_line, split_records, undecodable_number
from cdrstream.ingest.metrics import CSV_POSITION
from cdrstream.ingest.producer import EventProducer
from cdrstream.ingest.results import Rejected

log = logging.getLogger("cdrstream.ingest")
SOURCE = "asterisk_csv"
SAVE_EVERY_S = 0.5
READ_BYTES = 1 << 16
FINGERPRINT_BYTES = 1024


@dataclass(frozen=True, slots=True)
class Position:
    path: str
    device: int
    inode: int
    offset: int
    fingerprint_bytes: int = 0
    fingerprint: str = ""


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class PositionFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> Position | None:
        try:
            data = orjson.loads(self.path.read_bytes())
            return Position(
                str(data["path"]),
                int(data["device"]),
                int(data["inode"]),
                int(data["offset"]),
                int(data.get("fingerprint_bytes", 0)),  # absent in positions of older versions
                str(data.get("fingerprint", "")),
            )
        except FileNotFoundError:
            return None
        except Exception as exc:
            log.warning("position file %s unreadable (%s): starting over", self.path, exc)
            return None

    def save(self, position: Position) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("wb") as handle:
            handle.write(
                orjson.dumps(
                    {
                        "path": position.path,
                        "device": position.device,
                        "inode": position.inode,
                        "offset": position.offset,
                        "fingerprint_bytes": position.fingerprint_bytes,
                        "fingerprint": position.fingerprint,
                    }
                )
            )
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)
        with contextlib.suppress(OSError):
            fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        CSV_POSITION.set(position.offset)


class CsvTailer:
    def __init__(
        self,
        csv_path: Path,
        positions: PositionFile,
        producer: EventProducer,
        config: AsteriskConfig,
        *,
        follow: bool,
        settle_s: float = 2.0,
        poll_s: float = 0.25,
    ) -> None:
        self.csv_path = csv_path
        self.positions = positions
        self.producer = producer
        self.config = config
        self.follow = follow
        self.settle_s = settle_s
        self.poll_s = poll_s
        self._chains: Chains[tuple[bytes, int, int]] = Chains()
        self._file: BinaryIO | None = None
        self._identity = (0, 0)
        self._read_offset = 0  # end of the last complete line read
        self._committed = 0  # every row before it produced
        self._saved = -1
        self._saved_at = 0.0
        self._last_row_at = 0.0
        self._partial = b""
        self._fingerprint = (0, _digest(b""))

    # -- files --------------------------------------------------------------------------

    def _open(self, resume: Position | None) -> bool:
        try:
            handle = self.csv_path.open("rb")
        except FileNotFoundError:
            return False
        stat = os.fstat(handle.fileno())
        self._file = handle
        self._identity = (stat.st_dev, stat.st_ino)
        self._fingerprint = (0, _digest(b""))
        offset = 0
        if resume is not None:
            same = (resume.path, resume.device, resume.inode) == (
                str(self.csv_path.resolve()),
                *self._identity,
            )
            head = os.pread(handle.fileno(), resume.fingerprint_bytes, 0)
            unchanged = not resume.fingerprint or _digest(head) == resume.fingerprint
            if same and resume.offset <= stat.st_size and unchanged:
                offset = resume.offset
                if resume.fingerprint:
                    self._fingerprint = (resume.fingerprint_bytes, resume.fingerprint)
            else:
                log.warning(
                    "the saved position is for another file, or the file was truncated or"
                    " rewritten: reading %s from its start",
                    self.csv_path,
                )
        handle.seek(offset)
        self._read_offset = self._committed = offset
        self._partial = b""
        log.info("reading %s from byte %d", self.csv_path, offset)
        return True

    def _position(self) -> Position:
        return Position(
            str(self.csv_path.resolve()), *self._identity, self._committed, *self._fingerprint
        )

    def _save(self, *, force: bool = False) -> None:
        if self._committed == self._saved:
            return
        now = time.monotonic()
        if force or now - self._saved_at >= SAVE_EVERY_S:
            self.positions.save(self._position())
            self._saved, self._saved_at = self._committed, now

    def _replaced(self) -> bool:
        """The path now names another file (renamed away and created again)."""
        try:
            stat = self.csv_path.stat()
        except FileNotFoundError:
            return False
        return (stat.st_dev, stat.st_ino) != self._identity

    def _rewritten(self) -> bool:
        """The open file was truncated or rewritten in place: shorter than what was read, or
        its first bytes are no longer the ones read."""
        assert self._file is not None
        fd = self._file.fileno()
        if os.fstat(fd).st_size < self._read_offset:
            return True
        size, digest = self._fingerprint
        return size > 0 and _digest(os.pread(fd, size, 0)) != digest

    def _extend_fingerprint(self) -> None:
        assert self._file is not None
        if self._fingerprint[0] < min(FINGERPRINT_BYTES, self._read_offset):
            head = os.pread(self._file.fileno(), min(FINGERPRINT_BYTES, self._read_offset), 0)
            self._fingerprint = (len(head), _digest(head))

    async def _read_from_start(self, stop: asyncio.Event) -> None:
        """After a rewrite in place: the chain in hand was read before it; then byte 0."""
        log.warning(
            "%s was truncated or rewritten in place: reading it from its start", self.csv_path
        )
        await self._flush(stop)
        assert self._file is not None
        self._file.seek(0)
        self._read_offset = self._committed = 0
        self._partial = b""
        self._fingerprint = (0, _digest(b""))
        self._save(force=True)

    # -- rows ---------------------------------------------------------------------------

    async def _flush(self, stop: asyncio.Event) -> None:
        chain = self._chains.take()
        if chain:
            await self._deliver(chain, stop)

    async def _deliver(
        self, chain: list[tuple[AsteriskCdr, tuple[bytes, int, int]]], stop: asyncio.Event
    ) -> None:
        rows = [(cdr, tag[0]) for cdr, tag in chain]
        await deliver_chain(
            rows, self.producer, self.config, SOURCE, stop,
            file=str(self.csv_path), offset=str(chain[0][1][1]),
        )  # fmt: skip
        self._committed = chain[-1][1][2]

    async def _row(self, line: bytes, start: int, end: int, stop: asyncio.Event) -> None:
        self._last_row_at = time.monotonic()
        if not line.strip():
            if not self._chains.pending:
                self._committed = end
            return
        parsed = undecodable_number(line) or parse_csv_line(one_line(line), self.config)
        if isinstance(parsed, Rejected):
            await self._flush(stop)  # keep the position monotonic: earlier rows first
            await dead_letter(
                self.producer, SOURCE, line, parsed, stop,
                file=str(self.csv_path), offset=str(start),
            )  # fmt: skip
            self._committed = end
            return
        done = self._chains.add(parsed, (line, start, end))
        if done:
            await self._deliver(done, stop)

    async def _read_available(self, stop: asyncio.Event, *, final: bool = False) -> None:
        """Process every complete record now in the file. ``final``: nothing more is coming
        for now, so an unclosed quote does not hold back the lines after it."""
        assert self._file is not None
        while not stop.is_set():
            if self._rewritten():
                await self._read_from_start(stop)
            chunk = self._file.read(READ_BYTES)
            if not chunk:
                break
            if self._rewritten():  # while it was read: that chunk may start mid-row
                await self._read_from_start(stop)
                continue
            records, self._partial = split_records(self._partial + chunk)
            await self._records(records, stop)
            self._extend_fingerprint()
            if len(self._partial) > 1 << 20:  # a "row" of a megabyte: not cdr_csv's
                await self._records([self._partial], stop)
                self._partial = b""
        if final and b"\n" in self._partial:
            records, self._partial = split_records(self._partial, final=True)
            await self._records(records, stop)

    async def _records(self, records: list[bytes], stop: asyncio.Event) -> None:
        start = self._read_offset
        for record in records:
            end = start + len(record) + 1
            await self._row(record, start, end, stop)
            start = self._read_offset = end
            self._save()

    # -- the loop -----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> int:
        """Read (and follow) until the end (not following) or until ``stop``."""
        try:
            return await self._run(stop)
        except Stopped:
            log.info("stopped while kafka was away; the position stays before the unsent rows")
            return 0
        finally:
            with contextlib.suppress(Exception):
                if self._file is not None:
                    self._save(force=True)
                    self._file.close()

    async def _run(self, stop: asyncio.Event) -> int:
        resume = self.positions.load()
        while not self._open(resume):
            if not self.follow:
                log.error("%s: no such file", self.csv_path)
                return 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await stop.wait()
            if stop.is_set():
                return 0
        while not stop.is_set():
            quiet = time.monotonic() - self._last_row_at >= self.settle_s
            await self._read_available(stop, final=not self.follow or quiet)
            if not self.follow:
                if not self._partial:  # else Asterisk is writing: its chain may go on
                    await self._flush(stop)
                self._save(force=True)
                return 0
            if self._replaced():
                await self._read_available(stop, final=True)  # the old file's last rows
                await self._flush(stop)
                assert self._file is not None
                self._file.close()
                self._committed = 0
                self._open(None)
                self._save(force=True)
                continue
            if self._chains.pending and quiet and not self._partial:
                await self._flush(stop)
            if not self._chains.pending:
                self._save(force=True)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_s):
                    await stop.wait()
        # A chain still pending is not produced: the position stays before it, so the next
        # run reads it again.
        return 0
