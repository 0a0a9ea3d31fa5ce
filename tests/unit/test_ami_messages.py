"""The manager protocol reader after junk: it resynchronises on the next message and loses
nothing valid; header values that are not UTF-8 are named."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdrstream.ingest.ami_messages import Message, MessageReader
from tests.unit.test_ingest_asterisk import ami_headers

GREETING = b"Asterisk Call Manager/9.0.0\r\n"


def _event(headers: dict[str, str]) -> bytes:
    return b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items()) + b"\r\n"


def _read(stream: bytes, step: int) -> list[Message]:
    reader = MessageReader()
    messages: list[Message] = []
    for at in range(0, len(stream), step):
        messages += reader.feed(stream[at : at + step])
    return messages


def _cdrs(messages: list[Message]) -> list[dict[str, str]]:
    return [m.headers for m in messages if m.event == "Cdr" and not m.truncated]


# 70 KB without a newline, then a line break or an empty line, then a valid Cdr (issue 18):
# in one read, in the client's 64 KiB reads, in small reads.
@pytest.mark.parametrize("end", [b"\r\n", b"\r\n\r\n"])
def test_after_a_70_kb_line_the_next_cdr_comes_out_whole(end: bytes) -> None:
    valid = ami_headers(UniqueID="1795590000.70")
    stream = GREETING + b"x" * 70_000 + end + _event(valid)
    for step in (len(stream), 65_536, 4096, 7):
        assert _cdrs(_read(stream, step)) == [valid], step


def test_junk_lines_without_the_empty_line_do_not_swallow_the_next_event() -> None:
    first = ami_headers(UniqueID="1795590000.1")
    second = ami_headers(UniqueID="1795590000.2")
    stream = (
        GREETING
        + _event(first)
        + b"Event: Bogus\r\n"
        + b"y" * 70_000  # never ended by an empty line
        + b"\r\n"
        + _event(second)
    )
    for step in (len(stream), 65_536, 1000):
        assert _cdrs(_read(stream, step)) == [first, second], step


def test_a_value_that_is_not_utf8_is_named() -> None:
    stream = GREETING + _event(ami_headers()).replace(b"Source: +31612345678", b"Source: +316\xff1")
    [_greeting, message] = _read(stream, len(stream))
    assert message.undecodable == {"Source"}
    assert message.headers["Source"] == "+316\ufffd1"


@settings(max_examples=100, deadline=None)
@given(
    junk=st.binary(max_size=3000) | st.binary(min_size=65_000, max_size=70_000),
    step=st.integers(min_value=500, max_value=70_000) | st.integers(min_value=1, max_value=9),
)
def test_after_any_junk_the_next_message_comes_out_whole(junk: bytes, step: int) -> None:
    valid = ami_headers(UniqueID="1795590000.99")
    stream = GREETING + junk + b"\r\n" + _event(valid)
    if len(junk) > 3000:
        step = max(step, 500)  # byte by byte through 70 KB is only slow
    assert valid in _cdrs(_read(stream, step))
