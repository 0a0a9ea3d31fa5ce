"""A dead letter always fits the producer and the broker, and cannot be forged."""

from __future__ import annotations

from aiokafka.record.default_records import DefaultRecordBatchBuilder
from hypothesis import given, settings
from hypothesis import strategies as st

from cdrstream.worker.dead_letters import DEAD_LETTER_BUDGET, dead_letter
from cdrstream.worker.incoming import Incoming

#: Faust's default producer_max_request_size; the broker's default message.max.bytes is larger.
PRODUCER_MAX_REQUEST = 1_000_000


def _message(key_size: int | None, value_size: int, headers: list[tuple[str, bytes]]) -> Incoming:
    return Incoming(
        value=b"v" * value_size,
        key=None if key_size is None else b"k" * key_size,
        topic="cdr.call-ended",
        partition=3,
        offset=42,
        timestamp_ms=None,
        headers=tuple(headers),
    )


def _fits(letter_key: bytes | None, value: bytes, headers: tuple[tuple[str, bytes], ...]) -> bool:
    size = DefaultRecordBatchBuilder.estimate_size_in_bytes(letter_key, value, list(headers))
    return size <= PRODUCER_MAX_REQUEST


_header = st.tuples(
    st.text(min_size=0, max_size=30),
    st.integers(0, 1_200_000).map(lambda n: b"h" * n),
)


@settings(max_examples=150, deadline=None)
@given(
    key_size=st.none() | st.integers(0, 2_000_000),
    value_size=st.integers(0, 2_000_000),
    headers=st.lists(_header, max_size=8),
    tiny_headers=st.integers(0, 20_000),
)
def test_any_input_gives_a_dead_letter_within_the_budget(
    key_size: int | None, value_size: int, headers: list[tuple[str, bytes]], tiny_headers: int
) -> None:
    headers = headers + [(f"t{i}", b"1") for i in range(tiny_headers)]
    letter = dead_letter(_message(key_size, value_size, headers), "not_json", "ev-1")
    assert letter.size <= DEAD_LETTER_BUDGET
    assert _fits(letter.key, letter.value, letter.headers)
    ours = dict(h for h in letter.headers if h[0].startswith("cdrstream."))
    assert ours["cdrstream.reason"] == b"not_json"
    assert ours["cdrstream.source.offset"] == b"42"
    assert ("cdrstream.truncated_from" in ours) == (len(letter.value) < value_size)
    if "cdrstream.truncated_from" in ours:
        assert ours["cdrstream.truncated_from"] == str(value_size).encode()
    kept = [h for h in letter.headers if not h[0].startswith("cdrstream.")]
    dropped = len(headers) - len(kept)
    assert int(ours.get("cdrstream.headers_dropped", b"0")) == dropped


def test_a_small_invalid_event_keeps_everything() -> None:
    message = _message(6, 100, [("traceparent", b"00-abc-01")])
    letter = dead_letter(message, "bad_number:caller", "ev-9")
    assert letter.key == message.key
    assert letter.value == message.value
    assert letter.headers == (
        ("traceparent", b"00-abc-01"),
        ("cdrstream.reason", b"bad_number:caller"),
        ("cdrstream.source.topic", b"cdr.call-ended"),
        ("cdrstream.source.partition", b"3"),
        ("cdrstream.source.offset", b"42"),
        ("cdrstream.event_id", b"ev-9"),
    )


def test_a_one_megabyte_header_is_dropped_and_said() -> None:
    letter = dead_letter(_message(6, 20, [("big", b"x" * 1_000_000)]), "not_json", None)
    assert letter.value == b"v" * 20
    assert ("cdrstream.headers_dropped", b"1") in letter.headers
    assert all(name != "big" for name, _ in letter.headers)


def test_a_one_megabyte_key_is_cut_and_said() -> None:
    letter = dead_letter(_message(1_000_000, 20, []), "not_json", None)
    assert letter.key is not None and len(letter.key) < 2_000
    assert ("cdrstream.key_truncated_from", b"1000000") in letter.headers


def test_headers_in_our_namespace_are_never_copied() -> None:
    forged = [
        ("cdrstream.reason", b"stored"),
        ("CDRSTREAM.Source.Offset", b"0"),
        ("cdrstream.event_id", b"someone-else"),
    ]
    letter = dead_letter(_message(6, 20, forged), "not_json", "ev-1")
    reasons = [v for name, v in letter.headers if name.lower() == "cdrstream.reason"]
    offsets = [v for name, v in letter.headers if name.lower() == "cdrstream.source.offset"]
    assert reasons == [b"not_json"]
    assert offsets == [b"42"]
    assert ("cdrstream.event_id", b"ev-1") in letter.headers
    assert ("cdrstream.headers_dropped", b"3") in letter.headers


def test_a_long_reason_and_event_id_are_bounded() -> None:
    letter = dead_letter(_message(6, 20, []), "x" * 10_000, "e" * 10_000)
    assert all(len(value) <= 256 for _, value in letter.headers)
