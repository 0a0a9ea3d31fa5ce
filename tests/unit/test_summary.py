"""Daily summaries, the pure part: days in the display zone, contributions, the arithmetic
of replacements, reading and CSV."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdrstream.core.record import CallRecord
from cdrstream.core.summary import (
    CONTRIBUTION_SIZE,
    CSV_COLUMNS,
    DISPOSITIONS,
    Contribution,
    aggregate,
    apply_change,
    contribution,
    csv_text,
    day_date,
    day_number,
    day_start_ms,
    decode_contribution,
    encode_contribution,
    first_day,
    local_day,
    parse_day,
    parse_fields,
    summarize,
    totals,
)

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
ZONES = [AMSTERDAM, ZoneInfo("America/New_York"), ZoneInfo("Asia/Kolkata"), ZoneInfo("UTC"),
         ZoneInfo("America/Santiago"), ZoneInfo("Pacific/Apia")]  # fmt: skip
NOW = 1_796_000_000_000  # 2026-12-01
DAY = 86_400_000


def record(
    n: int,
    started: int,
    *,
    direction: str = "outbound",
    answered: bool = True,
    duration: int = 60,
    disposition: str | None = "answered",
) -> CallRecord:
    return CallRecord(
        id=f"id-{n}",
        tenant_id="t",
        call_id=f"call-{n}",
        started_at_ms=started,
        answered_at_ms=started + 1000 if answered else None,
        ended_at_ms=started + 1000 + duration * 1000,
        duration=duration,
        source="+31201234567",
        source_raw="020 123 4567",
        destination="+31612345678",
        destination_raw="06 1234 5678",
        extension="201",
        direction=direction,  # type: ignore[arg-type]
        disposition=disposition,
    )


# ------------------------------------------------------------------------------- days


def test_the_day_is_the_date_in_the_display_zone() -> None:
    # 2026-11-25T23:30Z is the 26th in Amsterdam and the 25th in New York.
    ms = int(datetime(2026, 11, 25, 23, 30, tzinfo=UTC).timestamp() * 1000)
    assert day_date(local_day(ms, AMSTERDAM)) == date(2026, 11, 26)
    assert day_date(local_day(ms, ZoneInfo("America/New_York"))) == date(2026, 11, 25)
    assert day_number(date(1970, 1, 1)) == 0
    assert parse_day("2026-11-25") == day_number(date(2026, 11, 25))
    for bad in ("2026-11-31", "2026-1-5", "20261125", "2026-11-25T00", "", "yyyy-mm-dd"):
        assert parse_day(bad) is None, bad


_ODD_ZONES = [
    *ZONES,
    ZoneInfo("Australia/Lord_Howe"),  # DST of 30 minutes
    ZoneInfo("Asia/Kathmandu"),  # +05:45
    ZoneInfo("Pacific/Chatham"),  # +12:45 / +13:45
    ZoneInfo("America/Sao_Paulo"),  # DST changes at local midnight, until 2019
    ZoneInfo("Africa/Monrovia"),  # -00:44:30 until 1972
]


def _exact_day(ms: int, zone: ZoneInfo) -> int:
    return (datetime.fromtimestamp(ms / 1000, zone).date() - date(1970, 1, 1)).days


@settings(max_examples=2_000)
@given(ms=st.integers(-2_000_000_000_000, 4_000_000_000_000), zone=st.sampled_from(_ODD_ZONES))
def test_the_remembered_day_of_an_instant_is_its_exact_day(ms: int, zone: ZoneInfo) -> None:
    assert local_day(ms, zone) == _exact_day(ms, zone)
    # Asked again (now remembered for its slot), and around the slot's edges.
    for near in (ms, ms - 1, ms + 1, ms - ms % 900_000, ms - ms % 900_000 - 1):
        assert local_day(near, zone) == _exact_day(near, zone)


@pytest.mark.parametrize("zone", _ODD_ZONES, ids=str)
def test_the_day_is_exact_around_every_offset_change(zone: ZoneInfo) -> None:
    """Around each UTC-offset change of the zone from 1900 to 2060: the change itself, and
    every 15 minutes for two hours either side, each ±1 ms."""

    def offset(ms: int) -> object:
        return datetime.fromtimestamp(ms / 1000, zone).utcoffset()

    ms, end, step = -2_208_988_800_000, 2_840_140_800_000, 6 * 3_600_000
    changes = 0
    while ms < end:
        if offset(ms) != offset(ms + step):
            lo, hi = ms, ms + step  # the change is in (lo, hi]: find its first millisecond
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if offset(mid) == offset(lo) else (lo, mid)
            changes += 1
            for k in range(-8, 9):
                for instant in (hi + k * 900_000 - 1, hi + k * 900_000, hi + k * 900_000 + 1):
                    assert local_day(instant, zone) == _exact_day(instant, zone), instant
        ms += step
    assert changes > 0 or str(zone) == "UTC"


@settings(max_examples=300)
@given(ms=st.integers(0, 4_000_000_000_000), zone=st.sampled_from(ZONES))
def test_day_start_is_the_first_instant_of_the_day(ms: int, zone: ZoneInfo) -> None:
    day = local_day(ms, zone)
    start = day_start_ms(day, zone)
    assert local_day(start, zone) == day
    assert local_day(start - 1, zone) == day - 1
    assert start <= ms


@settings(max_examples=300)
@given(
    now=st.integers(10 * DAY, 4_000_000_000_000),
    days=st.integers(1, 60),
    zone=st.sampled_from(ZONES),
)
def test_first_day_is_the_first_whole_day_in_the_window(
    now: int, days: int, zone: ZoneInfo
) -> None:
    cutoff = now - days * DAY
    first = first_day(now, days * DAY, zone)
    assert day_start_ms(first, zone) >= cutoff
    assert day_start_ms(first - 1, zone) < cutoff


# ------------------------------------------------------------------------------- contributions

contributions = st.builds(
    Contribution,
    day=st.integers(0, 0xFFFF),
    direction=st.sampled_from(["inbound", "outbound"]),
    answered=st.booleans(),
    talk_seconds=st.integers(0, 0xFFFF_FFFF),
    disposition=st.sampled_from(DISPOSITIONS),
)


@given(contributions)
def test_a_contribution_round_trips_in_seven_bytes(c: Contribution) -> None:
    data = encode_contribution(c)
    assert len(data) == CONTRIBUTION_SIZE == 7
    assert decode_contribution(data) == c


def test_contribution_of_a_record() -> None:
    started = int(datetime(2026, 11, 25, 8, 0, tzinfo=UTC).timestamp() * 1000)
    c = contribution(record(1, started, duration=95), AMSTERDAM)
    assert c == Contribution(day_number(date(2026, 11, 25)), "outbound", True, 95, "answered")
    # Unanswered: no talk time whatever the PBX wrote; an unknown word is "other".
    c = contribution(record(2, started, answered=False, duration=7, disposition="weird"), AMSTERDAM)
    assert (c.answered, c.talk_seconds, c.disposition) == (False, 0, "other")
    assert contribution(record(3, started, disposition=None), AMSTERDAM).disposition == "none"
    # A day beyond what 16 bits hold (a clock gone wrong) adds nothing.
    assert encode_contribution(Contribution(70_000, "inbound", False, 0, "none")) == b""
    assert decode_contribution(b"") is None


# ------------------------------------------------------------------------------- arithmetic

versions = st.builds(
    lambda day, direction, answered, duration, disposition: record(
        0,
        NOW - day * DAY,
        direction=direction,
        answered=answered,
        duration=duration,
        disposition=disposition,
    ),
    day=st.integers(0, 5),
    direction=st.sampled_from(["inbound", "outbound"]),
    answered=st.booleans(),
    duration=st.integers(0, 5000),
    disposition=st.sampled_from([*DISPOSITIONS[1:6], None, "voicemail"]),
)


@settings(max_examples=300)
@given(
    writes=st.lists(st.tuples(st.integers(0, 6), versions), max_size=40),
    floor_back=st.integers(0, 7),
)
def test_replacements_and_duplicates_keep_the_summary_equal_to_the_records(
    writes: list[tuple[int, CallRecord]], floor_back: int
) -> None:
    """Whatever the order of writes, replacements and replays, applying each write's change
    gives the summary of the records finally stored."""
    floor = local_day(NOW, AMSTERDAM) - floor_back
    stored: dict[int, Contribution] = {}
    final: dict[int, CallRecord] = {}
    fields: dict[str, int] = {}
    for key, version in writes:
        new = contribution(version, AMSTERDAM)
        old = stored.get(key)
        if old == new:
            continue  # a duplicate: the store adds nothing
        apply_change(fields, old, new, floor)
        stored[key] = new
        final[key] = version
    assert fields == aggregate(final.values(), AMSTERDAM, floor)
    assert all(v > 0 for v in fields.values())


def test_summarize_and_the_derived_figures() -> None:
    today = local_day(NOW, AMSTERDAM)
    records = [
        record(1, NOW, duration=60),
        record(2, NOW, duration=30),
        record(3, NOW, answered=False, duration=0, disposition="no_answer"),
        record(4, NOW, direction="inbound", duration=100),
        record(5, NOW - 2 * DAY, direction="inbound", answered=False, disposition="busy"),
    ]
    fields = aggregate(records, AMSTERDAM)
    days = summarize(fields, today - 3, today)
    assert [d.day for d in days] == [today - 3, today - 2, today - 1, today]
    out = days[-1].outbound
    assert (out.calls, out.answered, out.talk_seconds) == (3, 2, 90)
    assert out.answer_rate == pytest.approx(2 / 3)
    assert out.average_talk_seconds == 45
    assert out.dispositions["answered"] == 2 and out.dispositions["no_answer"] == 1
    assert days[0].inbound.calls == 0 and days[0].inbound.answer_rate is None
    assert days[0].inbound.average_talk_seconds is None
    assert days[1].inbound.to_json() == {
        "calls": 1,
        "answered": 0,
        "talk_seconds": 0,
        "answer_rate": 0.0,
        "average_talk_seconds": None,
        "dispositions": {**dict.fromkeys(DISPOSITIONS, 0), "busy": 1},
    }
    both = totals(days)
    assert both["outbound"].calls == 3 and both["inbound"].calls == 2
    assert days[-1].to_json()["date"] == day_date(today).isoformat()


def test_parse_fields_keeps_day_fields_only() -> None:
    raw = {b"floor": b"20700", b"20800:i:c": b"3", "20800:o:t": "42", b"20800:i:a": b"x"}
    assert parse_fields(raw) == {"20800:i:c": 3, "20800:o:t": 42}


def test_csv() -> None:
    today = local_day(NOW, AMSTERDAM)
    fields = aggregate([record(1, NOW, duration=61), record(2, NOW, answered=False)], AMSTERDAM)
    text = csv_text(summarize(fields, today, today))
    lines = text.split("\r\n")
    assert lines[0] == ",".join(CSV_COLUMNS)
    date_text = day_date(today).isoformat()
    assert lines[1] == f"{date_text},inbound,0,0,0,,,0,0,0,0,0,0,0"
    assert lines[2] == f"{date_text},outbound,2,1,61,0.5000,61.0,0,2,0,0,0,0,0"
    assert lines[3] == "" and len(lines) == 4
