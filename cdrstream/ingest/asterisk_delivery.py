"""Delivering Asterisk chains to Kafka (a shell, shared by the file tailer and the AMI
client): each PSTN leg's event onto the call-ended topic, an unreadable row or chain onto
the dead-letter topic with its reason (``asterisk_csv:<field>``, ``asterisk_ami:<field>``).

Kafka being away never drops anything and never stops the adapter: a send that Kafka did not
acknowledge is tried again (0.5 s doubling to 10 s) until it is, or until the adapter is
asked to stop, in which case `Stopped` is raised and the caller does not move its position.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import partial

from cdrstream.ingest.asterisk_cdr import AsteriskCdr, AsteriskConfig, chain_events
from cdrstream.ingest.metrics import CDRS, DEAD_LETTERS
from cdrstream.ingest.producer import EventProducer, Unavailable
from cdrstream.ingest.results import Mapped, Rejected

log = logging.getLogger("cdrstream.ingest")


class Stopped(Exception):
    """Asked to stop while Kafka was away: the chain was not (fully) delivered."""


async def until_acknowledged(
    send: Callable[[], Awaitable[None]], stop: asyncio.Event, what: str
) -> None:
    delay = 0.5
    while True:
        try:
            await send()
            return
        except Unavailable as exc:
            log.warning("kafka did not acknowledge %s (%s); retrying in %.1f s", what, exc, delay)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await stop.wait()
        if stop.is_set():
            raise Stopped(what)
        delay = min(delay * 2, 10.0)


async def dead_letter(
    producer: EventProducer,
    source: str,
    value: bytes,
    rejected: Rejected,
    stop: asyncio.Event,
    **where: str,
) -> None:
    reason = f"{source}:{rejected.field}"
    log.info("dead letter: %s: %s", rejected.field, rejected.reason, extra={"reason": reason})
    await until_acknowledged(
        lambda: producer.send_dead_letter(value, reason, **where), stop, "a dead letter"
    )
    CDRS.labels(source, "rejected").inc()
    DEAD_LETTERS.labels(source).inc()


async def deliver_chain(
    chain: Sequence[tuple[AsteriskCdr, bytes]],
    producer: EventProducer,
    config: AsteriskConfig,
    source: str,
    stop: asyncio.Event,
    **where: str,
) -> None:
    """Produce the events of one chain (its raw records are the dead letter's value)."""
    results = chain_events([cdr for cdr, _ in chain], config)
    if not results:
        CDRS.labels(source, "skipped").inc(len(chain))
        return
    for result in results:
        if isinstance(result, Mapped):
            event = result.event
            await until_acknowledged(partial(producer.send_event, event), stop, "an event")
            CDRS.labels(source, "produced").inc()
            log.debug(
                "produced",
                extra={"event_id": event["event_id"], "tenant_id": event["tenant_id"]},
            )
        elif isinstance(result, Rejected):
            value = b"\n".join(raw for _, raw in chain)
            await dead_letter(producer, source, value, result, stop, **where)
