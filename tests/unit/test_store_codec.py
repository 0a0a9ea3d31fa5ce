"""The compact record encoding: every record round-trips, the Lua-read head stays simple."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from cdrstream.core.record import CallRecord, record_id
from cdrstream.store import codec
from cdrstream.store.layout import MAX_STORED_MS

E164 = st.from_regex(r"\+[1-9][0-9]{1,14}", fullmatch=True)
NUMBERS = st.one_of(
    E164,
    st.sampled_from(["anonymous", "+0123", "+1234567890123456", "201", "", "+"]),
    st.text(max_size=30),
)
OFFSETS = st.integers(min_value=0, max_value=2**40)


@st.composite
def records(draw: st.DrawFn) -> CallRecord:
    tenant = draw(st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True))
    call_id = draw(st.text(min_size=1, max_size=80))
    started = draw(st.integers(min_value=0, max_value=MAX_STORED_MS))
    source, destination = draw(NUMBERS), draw(NUMBERS)
    answered = draw(st.one_of(st.none(), OFFSETS))
    return CallRecord(
        id=draw(st.one_of(st.just(record_id(tenant, call_id)), st.text(min_size=1))),
        tenant_id=tenant,
        call_id=call_id,
        started_at_ms=started,
        answered_at_ms=None if answered is None else started + answered,
        ended_at_ms=started + draw(OFFSETS),
        duration=draw(st.integers(min_value=0, max_value=10**9)),
        source=source,
        source_raw=draw(st.one_of(st.just(source), st.text(max_size=60))),
        destination=destination,
        destination_raw=draw(st.one_of(st.just(destination), st.text(max_size=60))),
        extension=draw(st.one_of(st.from_regex(r"[0-9]{1,4}", fullmatch=True), st.text())),
        direction=draw(st.sampled_from(["inbound", "outbound"])),
        disposition=draw(
            st.one_of(st.none(), st.sampled_from(codec.DISPOSITIONS), st.text(max_size=12))
        ),
    )


@given(records())
def test_every_record_round_trips(record: CallRecord) -> None:
    payload = codec.encode(record)
    assert codec.decode(record.tenant_id, record.id, payload) == record
    assert codec.encode(codec.decode(record.tenant_id, record.id, payload)) == payload


@given(records())
def test_head_is_what_the_lua_scripts_read(record: CallRecord) -> None:
    fields = orjson.loads(codec.encode(record))
    assert fields[0] == record.started_at_ms
    assert fields[1] == record.extension
    for value, number in ((fields[2], record.source), (fields[3], record.destination)):
        if isinstance(value, int):
            # An int is exact as a Lua double and formats back to the same digits.
            assert value < 2**53
            assert "+" + format(float(value), ".0f") == number
        else:
            assert value == number


def test_typical_record_is_compact() -> None:
    call_id = "0a3c9d2e-5b1f-4c8a-9e7d-1f2a3b4c5d6e@pbx.example.net"
    record = CallRecord(
        id=record_id("t-42", call_id),
        tenant_id="t-42",
        call_id=call_id,
        started_at_ms=1_795_000_000_000,
        answered_at_ms=1_795_000_004_000,
        ended_at_ms=1_795_000_125_000,
        duration=121,
        source="+31612345678",
        source_raw="+31612345678",
        destination="+31201234567",
        destination_raw="+31201234567",
        extension="214",
        direction="inbound",
        disposition="answered",
    )
    payload = codec.encode(record)
    # call id (54 with quotes) + times, numbers as ints, codes; tenant and id not repeated.
    assert len(payload) <= 120, payload
    assert record.id.encode() not in payload
    assert b"t-42" not in payload


@given(
    records(),
    st.one_of(st.none(), st.sampled_from(["inbound", "outbound"])),
    st.one_of(st.none(), st.from_regex(r"[0-9]{0,2}", fullmatch=True), st.text(max_size=3)),
    st.one_of(st.none(), st.from_regex(r"\+[0-9]{0,4}", fullmatch=True), st.text(max_size=3)),
)
def test_filters_on_encoded_records_match_the_record(
    record: CallRecord, direction: str | None, extension: str | None, prefix: str | None
) -> None:
    from cdrstream.store.query import RecordFilter

    keep = RecordFilter(direction, extension, prefix)
    want = (
        (direction is None or record.direction == direction)
        and (extension is None or record.extension == extension)
        and (
            prefix is None
            or record.source.startswith(prefix)
            or record.destination.startswith(prefix)
        )
    )
    assert keep(orjson.loads(codec.encode(record))) == want
