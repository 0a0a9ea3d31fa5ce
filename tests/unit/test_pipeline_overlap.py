"""Rules of batch N+1 overlap the write of batch N; writes stay in order; acks after writes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from cdrstream.core.outcome import Policy
from cdrstream.core.record import CallRecord
from cdrstream.worker.batch import BatchHandler, DecidedBatch
from cdrstream.worker.dead_letters import DeadLetter
from cdrstream.worker.incoming import Incoming
from cdrstream.worker.pipeline import OverlappedBatches
from cdrstream.worker.progress import Progress


class NoRecords:
    async def write_batch(self, records: Sequence[CallRecord], now_ms: int) -> Sequence[str]:
        return []


class TracingHandler(BatchHandler):
    """Logs decide and write steps; each write waits for its gate."""

    def __init__(self, log: list[str], gates: dict[str, asyncio.Event]) -> None:
        async def no_letters(letters: Sequence[DeadLetter]) -> None:
            return None

        super().__init__(
            records=NoRecords(),
            dead_letters=no_letters,
            policy=Policy(retention_ms=1),
            progress=Progress(stall_after_s=30),
        )
        self.log = log
        self.gates = gates

    async def decide(self, batch: Sequence[Incoming]) -> DecidedBatch:
        name = batch[0].value.decode()
        self.log.append(f"decide {name}")
        return DecidedBatch(batch, [], 0, 0.0)

    async def store(self, decided: DecidedBatch):  # type: ignore[no-untyped-def, override]
        name = decided.messages[0].value.decode()
        self.log.append(f"write {name} start")
        await self.gates[name].wait()
        self.log.append(f"write {name} end")


def _batch(name: str) -> list[Incoming]:
    return [Incoming(name.encode(), None, "t", 0, 0, None)]


async def test_the_next_batch_is_decided_while_the_previous_is_written_and_acked_after() -> None:
    log: list[str] = []
    gates = {name: asyncio.Event() for name in ("a", "b", "c")}
    pipeline: OverlappedBatches[str] = OverlappedBatches(
        TracingHandler(log, gates), lambda token: log.append(f"ack {token}")
    )
    await pipeline.feed(_batch("a"), "a")
    await asyncio.sleep(0)
    # "a" is being written; "b" is decided meanwhile, and waits for "a" before its write.
    feeding_b = asyncio.ensure_future(pipeline.feed(_batch("b"), "b"))
    await asyncio.sleep(0.01)
    assert log == ["decide a", "write a start", "decide b"]
    in_flight = pipeline.in_flight()
    assert in_flight is not None and in_flight[1] == "a"
    gates["a"].set()
    await feeding_b
    await asyncio.sleep(0.01)
    assert log == ["decide a", "write a start", "decide b", "write a end", "ack a", "write b start"]
    gates["b"].set()
    gates["c"].set()
    await pipeline.feed(_batch("c"), "c")
    await pipeline.flush()
    assert log[-7:] == [
        "write b start",
        "decide c",
        "write b end",
        "ack b",
        "write c start",
        "write c end",
        "ack c",
    ]
    assert pipeline.in_flight() is None
