"""Decoding events: what is accepted, and one test per invalid reason."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from cdrstream.core.event import (
    FIELDS,
    MAX_EVENT_BYTES,
    REASONS,
    REQUIRED_FIELDS,
    InvalidEvent,
    decode_event,
)
from cdrstream.core.timestamps import parse_rfc3339

STARTED = parse_rfc3339("2026-11-25T09:14:03.120+01:00")
assert STARTED == 1_795_594_443_120


def event(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": "ev-1",
        "tenant_id": "acme",
        "call_id": "call-1",
        "started_at": "2026-11-25T09:14:03.120+01:00",
        "answered_at": "2026-11-25T08:14:08.000Z",
        "ended_at": STARTED + 120_000,
        "caller": "201",
        "callee": "020 123 4567",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not _DROP}


_DROP = object()


def reason_of(value: bytes | str) -> str:
    with pytest.raises(InvalidEvent) as info:
        decode_event(value)
    return info.value.reason


def test_a_valid_event_decodes_with_derived_fields() -> None:
    decoded = decode_event(orjson.dumps(event()))
    assert decoded.event_id == "ev-1"
    assert decoded.tenant_id == "acme"
    assert decoded.started_at_ms == STARTED
    assert decoded.answered_at_ms == STARTED + 4_880
    assert decoded.ended_at_ms == STARTED + 120_000
    assert decoded.duration == 115  # 115.12 s of talk, rounded
    assert decoded.disposition == "answered"  # derived from answered_at
    assert (decoded.direction, decoded.extension, decoded.routed_to) == (None, None, None)


def test_str_input_is_accepted_too() -> None:
    assert decode_event(orjson.dumps(event()).decode()).call_id == "call-1"


def test_optional_fields_are_normalized() -> None:
    decoded = decode_event(
        orjson.dumps(
            event(
                direction=" Incoming ",
                extension=" 201 ",
                routed_to="Queue",
                tenant_region="be",
                disposition="NO ANSWER",
                duration=42.0,
                unknown_field={"ignored": True},
            )
        )
    )
    assert decoded.direction == "inbound"
    assert decoded.extension == "201"
    assert decoded.routed_to == "queue"
    assert decoded.tenant_region == "BE"
    assert decoded.disposition == "no_answer"
    assert decoded.duration == 42


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("inbound", "inbound"),
        ("IN", "inbound"),
        ("Incoming", "inbound"),
        ("outbound", "outbound"),
        ("Out", "outbound"),
        ("OUTGOING", "outbound"),
        ("internal", "internal"),
        ("Local", "internal"),
        ("", None),
        ("  ", None),
        (None, None),
    ],
)
def test_direction_words(word: str | None, expected: str | None) -> None:
    assert decode_event(orjson.dumps(event(direction=word))).direction == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ANSWERED", "answered"),
        ("canceled", "cancelled"),
        ("CONGESTION", "failed"),
        ("no-answer", "no_answer"),
        ("Transferred", "transferred"),
        ("x" * 40, None),
        ("bad\nword", None),
    ],
)
def test_dispositions(value: str, expected: str | None) -> None:
    assert decode_event(orjson.dumps(event(disposition=value))).disposition == expected


def test_unanswered_call_has_duration_zero_and_no_disposition() -> None:
    decoded = decode_event(orjson.dumps(event(answered_at=None)))
    assert (decoded.answered_at_ms, decoded.duration, decoded.disposition) == (None, 0, None)


def test_explicit_duration_wins_over_derived() -> None:
    assert decode_event(orjson.dumps(event(duration=7))).duration == 7


def test_null_caller_means_withheld_and_numbers_may_be_integers() -> None:
    decoded = decode_event(orjson.dumps(event(caller=None, callee=31201234567, extension=201)))
    assert (decoded.caller, decoded.callee, decoded.extension) == ("", "31201234567", "201")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", "not_json"),
        (b"{", "not_json"),
        (b"\xff\xfe", "not_json"),
        ('{"a": "\ud800"}', "not_json"),
        (b"[1, 2]", "not_object"),
        (b'"text"', "not_object"),
        (b"null", "not_object"),
        (b"42", "not_object"),
        (b" " * (MAX_EVENT_BYTES + 1), "too_large"),
        ("é" * (MAX_EVENT_BYTES // 2 + 1), "too_large"),
    ],
)
def test_values_that_are_not_event_objects(value: bytes | str, reason: str) -> None:
    assert reason_of(value) == reason


def test_value_of_wrong_python_type_is_not_json() -> None:
    assert reason_of(12345) == "not_json"  # type: ignore[arg-type]


@pytest.mark.parametrize("name", REQUIRED_FIELDS)
def test_missing_required_fields(name: str) -> None:
    assert reason_of(orjson.dumps(event(**{name: _DROP}))) == f"missing_field:{name}"


@pytest.mark.parametrize("name", ["event_id", "tenant_id", "call_id", "started_at", "ended_at"])
def test_null_required_fields_count_as_missing(name: str) -> None:
    assert reason_of(orjson.dumps(event(**{name: None}))) == f"missing_field:{name}"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"event_id": 17}, "bad_type:event_id"),
        ({"event_id": ""}, "bad_value:event_id"),
        ({"event_id": "a\x00b"}, "bad_value:event_id"),
        ({"event_id": "e" * 257}, "too_long:event_id"),
        ({"tenant_id": ["acme"]}, "bad_type:tenant_id"),
        ({"tenant_id": "bad tenant!"}, "bad_tenant_id"),
        ({"tenant_id": ""}, "bad_tenant_id"),
        ({"tenant_id": "x" * 65}, "bad_tenant_id"),
        ({"tenant_id": "acme\n"}, "bad_tenant_id"),
        ({"call_id": {"id": 1}}, "bad_type:call_id"),
        ({"call_id": "c" * 257}, "too_long:call_id"),
        ({"call_id": "c\x1b[31m"}, "bad_value:call_id"),
        ({"started_at": "yesterday"}, "bad_timestamp:started_at"),
        ({"started_at": "2026-11-25T09:14:03"}, "bad_timestamp:started_at"),
        ({"started_at": "2026-13-25T09:14:03Z"}, "bad_timestamp:started_at"),
        ({"started_at": True}, "bad_timestamp:started_at"),
        ({"started_at": 1_795_594_443}, "bad_timestamp:started_at"),  # epoch seconds
        ({"started_at": 1.5e20}, "bad_timestamp:started_at"),
        ({"started_at": "1795594443120"}, "bad_timestamp:started_at"),
        ({"ended_at": "1999-12-31T23:59:59Z"}, "bad_timestamp:ended_at"),
        ({"ended_at": [1]}, "bad_timestamp:ended_at"),
        ({"answered_at": "soon"}, "bad_timestamp:answered_at"),
        ({"ended_at": STARTED - 1, "answered_at": None}, "ended_before_started"),
        ({"answered_at": STARTED - 1}, "answered_out_of_range"),
        ({"answered_at": STARTED + 120_001}, "answered_out_of_range"),
        ({"duration": -1}, "bad_duration"),
        ({"duration": 1.5}, "bad_duration"),
        ({"duration": "42"}, "bad_duration"),
        ({"duration": True}, "bad_duration"),
        ({"duration": 2**31}, "bad_duration"),
        ({"caller": ["+31201234567"]}, "bad_type:caller"),
        ({"callee": 3.14}, "bad_type:callee"),
        ({"caller": False}, "bad_type:caller"),
        ({"caller": "x" * 257}, "bad_number:caller"),
        ({"callee": "020\x00123"}, "bad_number:callee"),
        ({"direction": "sideways"}, "bad_direction"),
        ({"direction": 1}, "bad_type:direction"),
        ({"direction": ["in"]}, "bad_type:direction"),
        ({"extension": ["201"]}, "bad_type:extension"),
        ({"extension": "2" * 257}, "too_long:extension"),
        ({"extension": "20\x071"}, "bad_value:extension"),
        ({"routed_to": 5}, "bad_type:routed_to"),
        ({"routed_to": "q" * 257}, "too_long:routed_to"),
        ({"tenant_region": "XX"}, "bad_tenant_region"),
        ({"tenant_region": "Netherlands"}, "bad_tenant_region"),
        ({"tenant_region": ["NL"]}, "bad_type:tenant_region"),
        ({"disposition": 3}, "bad_type:disposition"),
        ({"disposition": "d" * 257}, "too_long:disposition"),
    ],
)
def test_invalid_reasons(changes: dict[str, Any], reason: str) -> None:
    assert reason in REASONS
    assert reason_of(orjson.dumps(event(**changes))) == reason


def test_invalid_event_carries_the_ids_it_could_read() -> None:
    with pytest.raises(InvalidEvent) as info:
        decode_event(orjson.dumps(event(direction="sideways", call_id="c" * 300)))
    error = info.value
    assert (error.event_id, error.tenant_id) == ("ev-1", "acme")
    assert error.call_id == "c" * 256  # truncated for logs
    with pytest.raises(InvalidEvent) as info:
        decode_event(orjson.dumps(event(event_id=5, tenant_id=None)))
    assert (info.value.event_id, info.value.tenant_id, info.value.call_id) == (
        None,
        None,
        "call-1",
    )


def test_reasons_are_bounded_and_never_contain_event_text() -> None:
    assert len(REASONS) == len(set(REASONS)) < 100
    for reason in REASONS:
        word, _, name = reason.partition(":")
        assert word.replace("_", "").isalpha()
        assert not name or name in FIELDS


def test_times_in_all_forms() -> None:
    for started in (
        "2026-11-25T08:14:03.120Z",
        "2026-11-25T08:14:03.12Z",
        "2026-11-25T08:14:03.120999999Z",
        "2026-11-25t08:14:03.120z",
        "2026-11-25 09:14:03.120+01:00",
        "2026-11-25T03:14:03.120-05:00",
        STARTED,
        float(STARTED),
    ):
        assert decode_event(orjson.dumps(event(started_at=started))).started_at_ms == STARTED


def _with_raw_member(member: bytes, value: dict[str, Any] | None = None) -> bytes:
    """The event's JSON with ``member`` (raw JSON text) added as its last member."""
    return orjson.dumps(value if value is not None else event())[:-1] + b"," + member + b"}"


@pytest.mark.parametrize(
    "number",
    [b"1e309", b"-1e309", b"9" * 5_000, b"-" + b"9" * 5_000, b"1" + b"0" * 400 + b".5"],
)
def test_an_out_of_range_number_in_an_unknown_field_is_ignored_like_the_field(
    number: bytes,
) -> None:
    value = _with_raw_member(b'"pbx_cost":' + number)
    assert decode_event(value) == decode_event(orjson.dumps(event()))
    assert decode_event(value.decode()) == decode_event(orjson.dumps(event()))
    nested = _with_raw_member(b'"pbx":{"cost":[' + number + b"]}")
    assert decode_event(nested).event_id == "ev-1"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("duration", "bad_duration"),
        ("started_at", "bad_timestamp:started_at"),
        ("ended_at", "bad_timestamp:ended_at"),
        ("answered_at", "bad_timestamp:answered_at"),
        ("caller", "bad_type:caller"),
        ("callee", "bad_type:callee"),
        ("event_id", "bad_type:event_id"),
        ("tenant_id", "bad_type:tenant_id"),
        ("extension", "bad_type:extension"),
        ("direction", "bad_type:direction"),
    ],
)
@pytest.mark.parametrize("number", [b"1e309", b"9" * 5_000])
def test_an_out_of_range_number_in_a_known_field_gets_that_fields_reason(
    name: str, reason: str, number: bytes
) -> None:
    value = _with_raw_member(f'"{name}":'.encode() + number, event(**{name: _DROP}))
    assert reason_of(value) == reason


@pytest.mark.parametrize(
    "value",
    [
        b'{"a":1e309,"b":NaN}',
        b'{"a":1e309,"b":Infinity}',
        b'{"a":1e309,"b":"\\ud800"}',
        b'{"a":1e309,"b":"\xff"}',
        b'{"a":1e309,',
        b'{"a":1e309} x',
    ],
)
def test_the_slower_parse_refuses_what_orjson_would(value: bytes) -> None:
    assert reason_of(value) == "not_json"


@pytest.mark.parametrize("name", FIELDS)
def test_a_known_field_written_twice_is_refused(name: str) -> None:
    first = orjson.dumps(event(**{name: "x"}))
    assert reason_of(_with_raw_member(f'"{name}":"y"'.encode(), orjson.loads(first))) == (
        f"duplicate_field:{name}"
    )


def test_a_repeated_tenant_id_does_not_name_either_tenant() -> None:
    value = _with_raw_member(b'"tenant_id":"t3"', event(tenant_id="t2"))
    with pytest.raises(InvalidEvent) as info:
        decode_event(value)
    assert info.value.reason == "duplicate_field:tenant_id"
    assert (info.value.event_id, info.value.tenant_id) == ("ev-1", None)


@pytest.mark.parametrize(
    "value",
    [
        # The same key written with an escape, with blanks around the colon, as text.
        _with_raw_member(b'"tenant\\u005fid":"t3"'),
        _with_raw_member(b'"tenant_id"  :  "t3"'),
    ],
)
def test_a_repeated_known_field_is_found_however_it_is_written(value: bytes) -> None:
    assert reason_of(value) == "duplicate_field:tenant_id"
    assert reason_of(value.decode()) == "duplicate_field:tenant_id"


@pytest.mark.parametrize(
    "value",
    [
        _with_raw_member(b'"note":"a","note":"b"'),  # an unknown field twice: ignored
        _with_raw_member(b'"pbx":{"tenant_id":"x","tenant_id":"y"}'),  # not top level
        _with_raw_member(b'"note":"a, b, c"'),  # commas in a string
        orjson.dumps(event(caller='"O\'Brien, Pat" <sip:+441615928373@pbx.example>')),
    ],
)
def test_what_is_not_a_repeated_known_field_is_accepted(value: bytes) -> None:
    assert decode_event(value).tenant_id == "acme"
