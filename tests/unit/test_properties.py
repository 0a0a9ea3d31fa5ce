"""Property tests: the rules never raise, normalization is idempotent, times round-trip."""

from __future__ import annotations

import random
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cdrstream.core.event import REASONS, InvalidEvent, decode_event
from cdrstream.core.numbers import normalize_number, normalize_query_number
from cdrstream.core.outcome import OUTCOMES, Policy, TenantProfile, decide
from cdrstream.core.record import CallRecord
from cdrstream.core.record_view import RECORD_FIELDS, record_to_dict
from cdrstream.core.timestamps import MAX_MS, MIN_MS, parse_rfc3339
from cdrstream.simulation.calls import valid_event

NOW = 1_795_594_443_120
POLICY = Policy(
    retention_ms=30 * 86_400_000,
    tenants={"acme": TenantProfile(region="GB", outside_line="9")},
)
REGIONS = st.sampled_from(["NL", "BE", "DE", "FR", "GB", "ES", "IT", "PL", "SE", "US", "ZZ", ""])

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)

# Strings that look like what a PBX writes, to reach deep into the number rules.
number_text = st.one_of(
    st.text(max_size=30),
    st.text(alphabet="0123456789\uff10\uff11\uff12\u0661\u06f2\u200b\u202d+*# -", max_size=20),
    st.text(alphabet="0123456789+*# -()./", max_size=20),
    st.builds(
        lambda scheme, user, tail: f"{scheme}{user}{tail}",
        st.sampled_from(["", "tel:", "sip:", "sips:", '"N" <sip:']),
        st.text(alphabet="0123456789+*#;=-", max_size=18),
        st.sampled_from(["", "@pbx.example", "@anonymous.invalid>", ";phone-context=+31", ">"]),
    ),
)

# The same PBX-like text with its digits in another Unicode script and invisible format
# characters inserted: the rules must not see any difference (core/text_folding.py).
DIGIT_ZEROS = st.sampled_from(["\uff10", "\u0660", "\u06f0", "\u0966", "\u09e6", "\U0001d7ce"])
FORMAT_CHARS = st.sampled_from(
    ["\u200b", "\u200c", "\u200d", "\u200e", "\u202d", "\u2066", "\ufeff"]
)
ascii_number_text = st.one_of(
    st.text(alphabet="0123456789+*# -()./", max_size=20),
    st.builds(
        lambda scheme, user, tail: f"{scheme}{user}{tail}",
        st.sampled_from(["", "tel:", "sip:", "+31 ", "0031 ", "+1 ", "011 44 "]),
        st.text(alphabet="0123456789 -", min_size=1, max_size=14),
        st.sampled_from(["", "@pbx.example", " ext. 12", " x7", ";ext=3", "#12"]),
    ),
)


def disguise(text: str, zero: str, inserts: list[tuple[int, str]]) -> str:
    chars = [chr(ord(zero) + int(ch)) if "0" <= ch <= "9" else ch for ch in text]
    for position, char in inserts:
        chars.insert(min(position, len(chars)), char)
    return "".join(chars)


# Events with the right field names and plausible-or-hostile values.
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "event_id": st.one_of(st.text(max_size=8), json_values),
    "tenant_id": st.one_of(st.sampled_from(["acme", "globex", "bad id"]), json_values),
    "call_id": st.one_of(st.text(max_size=8), json_values),
    "started_at": st.one_of(st.integers(MIN_MS - 10, MAX_MS + 10), st.text(max_size=32)),
    "ended_at": st.one_of(st.integers(MIN_MS - 10, MAX_MS + 10), json_values),
    "answered_at": st.one_of(st.none(), st.integers(MIN_MS, MAX_MS), st.text(max_size=32)),
    "duration": st.one_of(st.none(), st.integers(-5, 2**40), st.floats(), json_values),
    "caller": st.one_of(number_text, json_values),
    "callee": st.one_of(number_text, json_values),
    "direction": st.one_of(st.sampled_from(["in", "OUT", "local", "x"]), json_values),
    "extension": st.one_of(st.text(max_size=8), json_values),
    "routed_to": st.one_of(st.sampled_from(["queue", "extension"]), json_values),
    "tenant_region": st.one_of(st.sampled_from(["nl", "GB", "XX"]), json_values),
    "disposition": st.one_of(st.sampled_from(["ANSWERED", "busy"]), json_values),
}
events = st.fixed_dictionaries({}, optional=FIELD_VALUES)


def _check_decision(value: bytes | str) -> None:
    decision = decide(value, NOW, POLICY)
    assert decision.outcome in OUTCOMES and decision.outcome != "duplicate"
    assert (decision.reason is not None) == (
        decision.outcome in ("invalid", "hidden_emergency", "hidden_social_value")
    )
    if decision.outcome == "invalid":
        assert decision.reason in REASONS
    elif decision.reason is not None:  # the rule and the candidate that hid the call
        assert decision.reason.startswith(decision.outcome.removeprefix("hidden_") + " ")
    assert decision.reason != "internal_error"
    assert (decision.record is not None) == (decision.outcome == "stored")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
@example(b"\xff\xfe{}")
@example(b'{"event_id": 1e999}')
def test_decide_never_raises_on_bytes(value: bytes) -> None:
    _check_decision(value)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
@example("\ud800")
def test_decide_never_raises_on_text(value: str) -> None:
    _check_decision(value)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_decide_never_raises_on_any_json_value(value: Any) -> None:
    _check_decision(orjson.dumps(value))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events)
def test_decide_never_raises_on_event_shaped_objects(obj: dict[str, Any]) -> None:
    _check_decision(orjson.dumps(obj))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32), st.sampled_from(list(FIELD_VALUES)), json_values)
def test_one_bad_field_in_a_valid_event_never_raises(seed: int, name: str, value: Any) -> None:
    event = valid_event(random.Random(seed), "acme", NOW)
    event[name] = value
    _check_decision(orjson.dumps(event))
    try:
        decode_event(orjson.dumps(event))
    except InvalidEvent as bad:
        assert bad.reason in REASONS


@settings(max_examples=500, deadline=None)
@given(number_text, REGIONS, st.sampled_from(["", "0", "9", "00"]))
def test_normalize_number_never_raises_and_e164_is_idempotent(
    raw: str, region: str, outside_line: str
) -> None:
    number = normalize_number(raw, region, outside_line)
    assert number.raw == raw
    assert number.number_class in (
        "pstn",
        "emergency",
        "social_value",
        "withheld",
        "invalid",
        "extension",
    )
    assert (number.e164 is None) == (number.number_class not in ("pstn", "social_value")) or (
        number.number_class == "social_value" and region in ("ZZ", "")
    )
    if number.e164 is not None:
        assert number.e164.startswith("+") and number.e164[1:].isdigit()
        again = normalize_number(number.e164, region)
        assert (again.e164, again.number_class, again.valid) == (
            number.e164,
            number.number_class,
            number.valid,
        )


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), REGIONS)
def test_normalize_query_number_never_raises(text: str, region: str) -> None:
    result = normalize_query_number(text, region)
    assert result is None or (result.startswith("+") and result[1:].isdigit())


@settings(max_examples=400, deadline=None)
@given(
    ascii_number_text,
    REGIONS,
    st.sampled_from(["", "0", "9"]),
    DIGIT_ZEROS,
    st.lists(st.tuples(st.integers(0, 30), FORMAT_CHARS), max_size=3),
)
def test_numbers_in_other_digit_scripts_classify_like_ascii(
    text: str, region: str, outside_line: str, zero: str, inserts: list[tuple[int, str]]
) -> None:
    disguised = disguise(text, zero, inserts)
    plain = normalize_number(text, region, outside_line)
    folded = normalize_number(disguised, region, outside_line)
    assert folded.raw == disguised
    assert (folded.number_class, folded.e164, folded.valid) == (
        plain.number_class,
        plain.e164,
        plain.valid,
    )
    assert normalize_query_number(disguised, region) == normalize_query_number(text, region)


ZONES = st.sampled_from(
    [ZoneInfo(name) for name in ("Europe/Amsterdam", "Europe/London", "Asia/Kathmandu", "UTC")]
)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(MIN_MS, MAX_MS - 1),
    st.one_of(st.none(), st.integers(0, 10**7)),
    st.integers(0, 10**8),
    ZONES,
)
def test_record_to_dict_round_trips_times(
    started: int, answered_after: int | None, ended_after: int, zone: ZoneInfo
) -> None:
    answered = None if answered_after is None else started + answered_after
    ended = started + ended_after
    record = CallRecord(
        "id", "t", "c", started, answered, ended, 1, "s", "s", "d", "d", "0", "inbound", None
    )
    view = record_to_dict(record, zone)
    assert list(view) == list(RECORD_FIELDS)
    assert parse_rfc3339(str(view["started_at"])) == started
    assert parse_rfc3339(str(view["started_at_local"])) == started
    assert parse_rfc3339(str(view["ended_at"])) == ended
    if answered is None:
        assert view["answered_at"] is None
    else:
        assert parse_rfc3339(str(view["answered_at"])) == answered
    assert str(view["started_at"]).endswith("Z") and len(str(view["started_at"])) == 24
