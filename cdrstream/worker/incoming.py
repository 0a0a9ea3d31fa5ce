"""A consumed Kafka message, independent of Faust's event type."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class UndecodableSpan:
    """A record batch the consumer could not decode: it stands for the offsets from
    ``first_offset`` to the message's own offset (the batch's last)."""

    first_offset: int
    error: str


@dataclass(frozen=True, slots=True)
class Incoming:
    """One consumed Kafka message, as much of it as the pipeline needs."""

    value: bytes
    key: bytes | None
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    headers: tuple[tuple[str, bytes], ...] = ()
    #: Set when this message is a whole batch that could not be decoded (its raw bytes).
    undecodable: UndecodableSpan | None = None

    @property
    def offsets(self) -> range:
        """The Kafka offsets this message stands for (more than one for an undecodable batch)."""
        first = self.offset if self.undecodable is None else self.undecodable.first_offset
        return range(first, self.offset + 1)
