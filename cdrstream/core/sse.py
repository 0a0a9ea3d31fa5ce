"""Server-sent events (the live tail): framing, event ids, and the decisions of a stream.
Pure functions, no I/O.

- **Framing** (WHATWG HTML, "Server-sent events"): an event is ``event:``, ``id:`` and one
  ``data:`` line per line of its data, ended by a blank line; a comment is a line starting
  with ``:``. A frame with an ``id:`` and no data dispatches nothing but moves the client's
  last event id: the heartbeat uses that, so a client whose filter matched nothing for a
  while still resumes from where the stream is, not from its last matching event.
- **Event ids** are the ids of the tenant's Redis Stream entries, ``<ms>-<seq>``: totally
  ordered (`parse_id` gives a tuple that compares like the ids).
- **Resuming** (`resume_plan`): a client that sends ``Last-Event-ID`` is replayed every
  entry after it, if the stream still holds all of them; otherwise (entries after it were
  trimmed, the id is not one of this stream's, or it is malformed) it is told to reload.
  (Redis's ``max-deleted-entry-id`` moves with ``XDEL`` only, not with trimming, so the
  oldest entry held and the count of entries ever added are what tell.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from cdrstream.core.record import CallRecord

StreamId = tuple[int, int]
_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})", re.ASCII)
_U64 = (1 << 64) - 1
ZERO: StreamId = (0, 0)
#: Longest Last-Event-ID looked at (an id is at most 41 characters).
MAX_ID_CHARS = 64


def parse_id(text: str | bytes | None) -> StreamId | None:
    """``<ms>-<seq>`` (a Redis Stream entry id) as a tuple; None when it is not one."""
    if text is None:
        return None
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            return None
    if len(text) > MAX_ID_CHARS:
        return None
    text = text.strip()
    match = _ID.fullmatch(text)
    if match is None:
        return None
    ms, seq = int(match.group(1)), int(match.group(2))
    if ms > _U64 or seq > _U64:
        return None
    return ms, seq


def format_id(stream_id: StreamId) -> str:
    return f"{stream_id[0]}-{stream_id[1]}"


def _clean(text: str) -> str:
    """A field value on one line: CR, LF and NUL are not allowed in an event's fields."""
    return text.replace("\r", " ").replace("\n", " ").replace("\x00", " ")


def event(data: str, *, name: str | None = None, event_id: str | None = None) -> bytes:
    """One event: its name, its id, and its data (one ``data:`` line per line)."""
    lines = []
    if name is not None:
        lines.append(f"event: {_clean(name)}")
    if event_id is not None:
        lines.append(f"id: {_clean(event_id)}")
    for line in data.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        lines.append(f"data: {line}" if line else "data:")
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def heartbeat(event_id: str | None) -> bytes:
    """A comment that keeps the connection alive, with the stream's position as the id."""
    text = ": heartbeat\n"
    if event_id is not None:
        text += f"id: {_clean(event_id)}\n"
    return (text + "\n").encode("utf-8")


def retry(ms: int) -> bytes:
    """The reconnection delay a client should use."""
    return f"retry: {int(ms)}\n\n".encode("ascii")


# ------------------------------------------------------------------------------- resuming


@dataclass(frozen=True, slots=True)
class StreamState:
    """What Redis says of a tenant's stream (``XINFO STREAM``), or that it does not exist."""

    exists: bool
    last: StreamId = ZERO  # last-generated-id
    first: StreamId | None = None  # the oldest entry still held (None: the stream is empty)
    trimmed: bool = False  # some entries were removed (entries-added > length)
    max_deleted: StreamId = ZERO  # the largest id removed by XDEL


Plan = Literal["replay", "reload"]


def resume_plan(last_seen: StreamId | None, state: StreamState) -> Plan:
    """Whether a client that saw events up to ``last_seen`` can be replayed what came
    after it (every such entry is still in the stream), or must reload the list.

    Entries leave a stream from its old end only (trimming), so every entry after
    ``last_seen`` is still there when ``last_seen`` is not older than the oldest entry
    held, or when nothing was ever trimmed. Otherwise, and when the id is malformed (None),
    not this stream's (after its last id), or the stream is gone (a client that saw
    nothing, ``0-0``, excepted), the client is told to reload. (A client whose last event
    was exactly the last one trimmed is told to reload too: the stream cannot tell.)
    """
    if last_seen is None:
        return "reload"
    if not state.exists:
        return "replay" if last_seen == ZERO else "reload"
    if last_seen > state.last or state.max_deleted > last_seen:
        return "reload"
    if state.first is None:  # empty: every entry up to `last` is gone
        return "replay" if last_seen == state.last or not state.trimmed else "reload"
    if last_seen >= state.first or not state.trimmed:
        return "replay"
    return "reload"


# ------------------------------------------------------------------------------- filters


@dataclass(frozen=True, slots=True)
class LiveFilter:
    """The list's ``direction``/``extension``/``number`` filters, on one record: the same
    meaning as on ``GET .../cdrs`` (``number``: an E.164 number or prefix, normalized, that
    the source or the destination starts with)."""

    direction: str | None = None
    extension: str | None = None
    number_prefix: str | None = None

    def matches(self, record: CallRecord) -> bool:
        if self.direction is not None and record.direction != self.direction:
            return False
        if self.extension is not None and record.extension != self.extension:
            return False
        prefix = self.number_prefix
        return (
            prefix is None
            or record.source.startswith(prefix)
            or record.destination.startswith(prefix)
        )
