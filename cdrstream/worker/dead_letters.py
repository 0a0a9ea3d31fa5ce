"""What goes to the dead-letter topic for an invalid event: the original bytes, and why."""

from __future__ import annotations

from dataclasses import dataclass

from cdrstream.worker.incoming import Incoming

# Kafka's default max.message.bytes is ~1 MiB; an event that was accepted may not fit again
# once headers are added, so oversized values are cut and the cut is said in a header.
MAX_DEAD_LETTER_VALUE = 900_000


@dataclass(frozen=True, slots=True)
class DeadLetter:
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]


def dead_letter(message: Incoming, reason: str, event_id: str | None) -> DeadLetter:
    value = message.value
    headers = [
        ("cdrstream.reason", reason.encode()),
        ("cdrstream.source.topic", message.topic.encode()),
        ("cdrstream.source.partition", str(message.partition).encode()),
        ("cdrstream.source.offset", str(message.offset).encode()),
    ]
    if event_id is not None:
        headers.append(("cdrstream.event_id", event_id.encode()[:256]))
    if len(value) > MAX_DEAD_LETTER_VALUE:
        headers.append(("cdrstream.truncated_from", str(len(value)).encode()))
        value = value[:MAX_DEAD_LETTER_VALUE]
    return DeadLetter(key=message.key, value=value, headers=(*message.headers, *headers))
