"""The Asterisk Manager Interface client (a shell around `ami_messages` and `asterisk_cdr`).

Connects to the manager port, logs in with ``Events: cdr`` (so Asterisk sends only the CDR
event class), and turns every ``Event: Cdr`` into events exactly as the CSV tailer does
(same chains, same event ids: running both is safe, the store counts the second copy as a
duplicate). A chain counts as complete when the next one starts or after `settle_s` quiet
seconds. A connection that drops is made again (0.5 s doubling to 30 s); a refused login is
logged (never the secret) and tried again on the same schedule.

AMI has no replay: CDRs Asterisk emits while this client is disconnected are not sent again
(docs/adapters/asterisk.md: use the CSV file where that matters). While Kafka is away the
client stops reading, so Asterisk buffers, and past its ``writetimeout`` drops, the session.
An unreadable Cdr event goes to the dead-letter topic (its headers as ``Name: value`` lines),
among them one whose ``Source`` or ``Destination`` is not UTF-8 (``asterisk_ami:Source``).
After junk on the connection the reader resynchronises on the next message
(`ami_messages`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from cdrstream.ingest.ami_messages import Message, MessageReader, action
from cdrstream.ingest.asterisk_cdr import AsteriskCdr, AsteriskConfig, Chains, parse_ami_event
from cdrstream.ingest.asterisk_delivery import Stopped, dead_letter, deliver_chain
from cdrstream.ingest.metrics import AMI_CONNECTED
from cdrstream.ingest.producer import EventProducer
from cdrstream.ingest.results import Rejected

log = logging.getLogger("cdrstream.ingest")
SOURCE = "asterisk_ami"
CONNECT_TIMEOUT_S = 10.0
#: Headers holding a number: bytes that are not UTF-8 there would be stored as a garbled
#: number, so such an event is refused (elsewhere, e.g. in a caller name, they are replaced).
NUMBER_HEADERS = frozenset({"Source", "Destination"})


class LoginRefused(Exception):
    pass


def _raw(message: Message) -> bytes:
    return "\r\n".join(f"{k}: {v}" for k, v in message.headers.items()).encode()


class AmiClient:
    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        secret: str,
        producer: EventProducer,
        config: AsteriskConfig,
        *,
        settle_s: float = 2.0,
    ) -> None:
        self.host, self.port = host, port
        self._username, self._secret = username, secret
        self.producer = producer
        self.config = config
        self.settle_s = settle_s
        self._chains: Chains[bytes] = Chains()
        self._reader = MessageReader()

    async def run(self, stop: asyncio.Event) -> int:
        delay = 0.5
        while not stop.is_set():
            try:
                await self._session(stop)
                delay = 0.5
            except Stopped:
                break
            except LoginRefused:
                log.error("AMI login refused for user %r; check manager.conf", self._username)
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
                log.warning("AMI %s:%d: %s", self.host, self.port, type(exc).__name__)
            finally:
                AMI_CONNECTED.set(0)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await stop.wait()
            delay = min(delay * 2, 30.0)
        with contextlib.suppress(Stopped):  # one attempt for the chain in hand
            await self._deliver(self._chains.take(), stop)
        return 0

    async def _session(self, stop: asyncio.Event) -> None:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            early = await self._login(reader, writer)
            AMI_CONNECTED.set(1)
            log.info("AMI connected to %s:%d", self.host, self.port)
            await self._events(reader, stop, early)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _login(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> list[Message]:
        """Log in; returns the messages that came after the answer in the same read (the
        first events may arrive with it)."""
        messages = self._reader = MessageReader()
        writer.write(action("Login", Username=self._username, Secret=self._secret, Events="cdr"))
        await writer.drain()
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            while True:
                data = await reader.read(4096)
                if not data:
                    raise ConnectionResetError("closed during login")
                received = messages.feed(data)
                for index, message in enumerate(received):
                    if message.response == "Success":
                        return received[index + 1 :]
                    if message.response is not None:
                        raise LoginRefused()

    async def _events(
        self, reader: asyncio.StreamReader, stop: asyncio.Event, early: list[Message]
    ) -> None:
        messages = self._reader
        last_event_at = time.monotonic()
        for message in early:
            if message.event == "Cdr":
                await self._cdr(message, stop)
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                read = asyncio.ensure_future(reader.read(65536))
                done, _ = await asyncio.wait(
                    {read, stopping}, timeout=0.25, return_when=asyncio.FIRST_COMPLETED
                )
                if read not in done:
                    read.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await read
                    if self._chains.pending and time.monotonic() - last_event_at >= self.settle_s:
                        await self._deliver(self._chains.take(), stop)
                    continue
                data = read.result()
                if not data:
                    raise ConnectionResetError("closed by the server")
                for message in messages.feed(data):
                    if message.event != "Cdr":
                        continue
                    last_event_at = time.monotonic()
                    await self._cdr(message, stop)
        finally:
            stopping.cancel()

    async def _cdr(self, message: Message, stop: asyncio.Event) -> None:
        raw = _raw(message)
        numbers = sorted(message.undecodable & NUMBER_HEADERS)
        parsed = (
            Rejected("Event", "longer than the message limit")
            if message.truncated
            else Rejected(numbers[0], "not valid UTF-8")
            if numbers
            else parse_ami_event(message.headers, self.config)
        )
        if isinstance(parsed, Rejected):
            await self._deliver(self._chains.take(), stop)
            await dead_letter(self.producer, SOURCE, raw, parsed, stop, host=self.host)
            return
        done = self._chains.add(parsed, raw)
        if done:
            await self._deliver(done, stop)

    async def _deliver(self, chain: list[tuple[AsteriskCdr, bytes]], stop: asyncio.Event) -> None:
        if chain:
            await deliver_chain(chain, self.producer, self.config, SOURCE, stop, host=self.host)
