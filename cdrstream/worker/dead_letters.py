"""What goes to the dead-letter topic for an invalid event: the original bytes, and why.

A dead letter always fits: key, value and headers together stay within ``DEAD_LETTER_BUDGET``,
below the producer's maximum request size (Faust's default 1,000,000 bytes) and the broker's
default ``message.max.bytes`` (1,048,588), whatever the sizes of the input's parts. The
original was accepted by the broker, but our headers come on top, so a message just under
the limit would not fit again. What does not fit is cut and said in a header of ours:

- the key beyond ``MAX_KEY_BYTES`` -> ``cdrstream.key_truncated_from`` (its original length);
- original headers beyond ``MAX_ORIGINAL_HEADERS`` or ``MAX_ORIGINAL_HEADER_BYTES`` ->
  ``cdrstream.headers_dropped`` (how many were left out);
- the value beyond what is left -> ``cdrstream.truncated_from`` (its original length).

Original headers whose name starts with ``cdrstream.`` (any case) are never copied: a
producer cannot forge a dead letter's reason or source offset; they count as dropped.

A record batch that could not be decoded is one dead letter: its raw bytes as the value
(cut like any value), ``cdrstream.source.offset`` its first offset,
``cdrstream.source.last_offset`` its last, ``cdrstream.error`` why it could not be decoded.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdrstream.worker.incoming import Incoming

DEAD_LETTER_BUDGET = 900_000
MAX_KEY_BYTES = 1_024
MAX_ORIGINAL_HEADERS = 64
MAX_ORIGINAL_HEADER_BYTES = 16_384
MAX_REASON_BYTES = 256
#: Per-header framing in a Kafka record (two length varints and the count's share), rounded up.
HEADER_OVERHEAD = 12
OWN_HEADER_PREFIX = "cdrstream."


@dataclass(frozen=True, slots=True)
class DeadLetter:
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]

    @property
    def size(self) -> int:
        """Bytes of key, value and headers with their framing (what the budget bounds)."""
        return (
            len(self.key or b"")
            + len(self.value)
            + sum(_header_size(name, value) for name, value in self.headers)
        )


def _header_size(name: str, value: bytes) -> int:
    return len(name.encode("utf-8", "replace")) + len(value) + HEADER_OVERHEAD


def dead_letter(message: Incoming, reason: str, event_id: str | None) -> DeadLetter:
    offsets = message.offsets
    ours: list[tuple[str, bytes]] = [
        ("cdrstream.reason", reason.encode()[:MAX_REASON_BYTES]),
        ("cdrstream.source.topic", message.topic.encode()[:MAX_REASON_BYTES]),
        ("cdrstream.source.partition", str(message.partition).encode()),
        ("cdrstream.source.offset", str(offsets[0]).encode()),
    ]
    if message.undecodable is not None:
        ours.append(("cdrstream.source.last_offset", str(offsets[-1]).encode()))
        ours.append(("cdrstream.error", message.undecodable.error.encode()[:MAX_REASON_BYTES]))
    if event_id is not None:
        ours.append(("cdrstream.event_id", event_id.encode()[:MAX_REASON_BYTES]))

    key = message.key
    if key is not None and len(key) > MAX_KEY_BYTES:
        ours.append(("cdrstream.key_truncated_from", str(len(key)).encode()))
        key = key[:MAX_KEY_BYTES]

    kept: list[tuple[str, bytes]] = []
    kept_bytes = 0
    for name, value in message.headers:
        size = _header_size(name, value)
        if (
            name[: len(OWN_HEADER_PREFIX)].lower() == OWN_HEADER_PREFIX
            or len(kept) >= MAX_ORIGINAL_HEADERS
            or kept_bytes + size > MAX_ORIGINAL_HEADER_BYTES
        ):
            continue
        kept.append((name, value))
        kept_bytes += size
    if len(kept) < len(message.headers):
        ours.append(("cdrstream.headers_dropped", str(len(message.headers) - len(kept)).encode()))

    value = message.value
    # The truncation header's own size is reserved up front, so adding it cannot overflow.
    reserve = _header_size("cdrstream.truncated_from", b"9" * 20)
    room = DEAD_LETTER_BUDGET - reserve - len(key or b"") - kept_bytes
    room -= sum(_header_size(name, v) for name, v in ours)
    if len(value) > room:
        ours.append(("cdrstream.truncated_from", str(len(value)).encode()))
        value = value[: max(0, room)]
    return DeadLetter(key=key, value=value, headers=(*kept, *ours))
