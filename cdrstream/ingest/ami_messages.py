"""The Asterisk Manager Interface's wire format (pure): messages in, actions out.

Read in asterisk/asterisk ``main/manager.c``: on connect the server sends one line,
``Asterisk Call Manager/<version>\\r\\n``; after that every message (a response to an action,
or an event) is lines of ``Name: value`` ended by ``\\r\\n``, and a message ends with an empty
line. An action is written the same way. ``Login`` takes ``Username``, ``Secret`` and
``Events`` (the event classes to receive: ``cdr`` for ``Event: Cdr``); the answer is
``Response: Success`` (``Message: Authentication accepted``) or ``Response: Error``.

`MessageReader` splits a byte stream into messages without ever raising: a line without a
colon is kept under the name ``""`` (and ignored by the caller), an over-long message is cut
at `MAX_MESSAGE_BYTES` and flagged, so a misbehaving server costs memory only up to that bound.

After junk (a line that never ends, a message whose empty line was lost) the reader
resynchronises on the next message: a line that begins a message (``Event:`` or
``Response:``) ends the one in progress, whatever came before it, so a valid message after
junk is never swallowed by it. A header whose value is not UTF-8 is kept (undecodable bytes
replaced) and named in `Message.undecodable`, for the caller to refuse where it matters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

GREETING_PREFIX = b"Asterisk Call Manager/"
#: Largest message kept, bytes (a Cdr event is well under 4 KiB).
MAX_MESSAGE_BYTES = 65_536
#: Most header lines kept per message.
MAX_HEADERS = 256


#: A line beginning with one of these starts a message (manager.c writes them first).
_STARTS = (b"Event:", b"Response:")


@dataclass(slots=True)
class Message:
    headers: dict[str, str] = field(default_factory=dict)
    truncated: bool = False
    undecodable: set[str] = field(default_factory=set)

    @property
    def event(self) -> str | None:
        return self.headers.get("Event")

    @property
    def response(self) -> str | None:
        return self.headers.get("Response")


class MessageReader:
    """Feed bytes, get whole messages (the greeting line is returned as its own message
    with header ``Greeting``)."""

    def __init__(self) -> None:
        self._buffer = b""
        self._current = Message()
        self._size = 0
        self._greeted = False
        self._rest_of_long_line = False  # dropping a line past the bound up to its end

    def feed(self, data: bytes) -> list[Message]:
        self._buffer += data
        messages: list[Message] = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_MESSAGE_BYTES:  # a line that never ends
                    self._buffer = b""
                    self._current.truncated = True
                    self._rest_of_long_line = True
                break
            line = self._buffer[:end].rstrip(b"\r")
            self._buffer = self._buffer[end + 1 :]
            if self._rest_of_long_line:
                self._rest_of_long_line = False
                continue
            if not self._greeted:
                self._greeted = True
                if line.startswith(GREETING_PREFIX):
                    messages.append(Message({"Greeting": _text(line)}))
                    continue
            if not line or (line.startswith(_STARTS) and self._started):
                if self._started:
                    messages.append(self._current)
                self._current = Message()
                self._size = 0
                if not line:
                    continue
            self._size += len(line)
            if self._size > MAX_MESSAGE_BYTES or len(self._current.headers) >= MAX_HEADERS:
                self._current.truncated = True
                continue
            name, sep, value = _text(line).partition(":")
            if not sep:
                name, value = "", name
            name = name.strip()
            if name not in self._current.headers and not _is_utf8(line):
                self._current.undecodable.add(name)
            self._current.headers.setdefault(name, value.strip())
        return messages

    @property
    def _started(self) -> bool:
        return bool(self._current.headers) or self._current.truncated


def _text(line: bytes) -> str:
    return line.decode("utf-8", errors="replace")


def _is_utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def action(name: str, **headers: str) -> bytes:
    """One action, e.g. ``action("Login", Username=..., Secret=..., Events="cdr")``. Values
    with a line break are refused (they would end the message early)."""
    lines = [f"Action: {name}"]
    for key, value in headers.items():
        if "\r" in value or "\n" in value:
            raise ValueError(f"AMI header {key} must be one line")
        lines.append(f"{key}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
