"""Paging cursors: round trip, and every kind of tampering is refused."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdrstream.store.cursor import InvalidCursor, decode_cursor, encode_cursor
from cdrstream.store.reader import RecordQuery, query_binding

SECRET = b"secret"
BINDING = query_binding("t-1", RecordQuery(direction="inbound"))


@given(st.integers(min_value=0, max_value=2**48), st.text(min_size=1, max_size=40))
def test_round_trip(started: int, record_id: str) -> None:
    cursor = encode_cursor(SECRET, BINDING, started, record_id)
    assert cursor.isascii() and "=" not in cursor
    assert decode_cursor(SECRET, BINDING, cursor) == (started, record_id)


@given(st.data())
def test_any_changed_character_is_refused(data: st.DataObject) -> None:
    cursor = encode_cursor(SECRET, BINDING, 1_795_000_000_000, "gKeguVCtqrjC49hF")
    at = data.draw(st.integers(min_value=0, max_value=len(cursor) - 1))
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    char = data.draw(st.sampled_from(alphabet).filter(lambda c: c != cursor[at]))
    with pytest.raises(InvalidCursor):
        decode_cursor(SECRET, BINDING, cursor[:at] + char + cursor[at + 1 :])


def test_foreign_cursors_are_refused() -> None:
    cursor = encode_cursor(SECRET, BINDING, 42, "abc")
    other_tenant = query_binding("t-2", RecordQuery(direction="inbound"))
    other_query = query_binding("t-1", RecordQuery(direction="outbound"))
    for binding in (other_tenant, other_query, query_binding("t-1", RecordQuery())):
        with pytest.raises(InvalidCursor):
            decode_cursor(SECRET, binding, cursor)
    with pytest.raises(InvalidCursor):
        decode_cursor(b"another secret", BINDING, cursor)


def test_malformed_cursors_are_refused() -> None:
    cursor = encode_cursor(SECRET, BINDING, 42, "abc")
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    forged_version = base64.urlsafe_b64encode(b"\x02" + raw[1:]).rstrip(b"=").decode()
    for bad in (
        "",
        "A",
        "AAAA",
        cursor + "A",
        cursor[:-1],
        cursor + "=",
        cursor + " ",
        "é" + cursor,
        "!" + cursor[1:],
        "A" * 10_000,
        forged_version,
    ):
        with pytest.raises(InvalidCursor):
            decode_cursor(SECRET, BINDING, bad)


def test_invalid_cursor_is_a_value_error() -> None:
    assert issubclass(InvalidCursor, ValueError)
