"""Event times: RFC 3339 and epoch ms in, UTC/local RFC 3339 out."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from cdrstream.core.record import CallRecord
from cdrstream.core.record_view import RECORD_FIELDS, record_to_dict
from cdrstream.core.timestamps import (
    MAX_MS,
    MIN_MS,
    format_local,
    format_utc,
    parse_rfc3339,
    parse_timestamp,
)

MS = 1_795_594_443_120  # 2026-11-25T08:14:03.120Z
AMSTERDAM = ZoneInfo("Europe/Amsterdam")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-25T09:14:03.120+01:00", MS),
        ("2026-11-25T08:14:03.120Z", MS),
        ("2026-11-25T08:14:03.12Z", MS),
        ("2026-11-25T08:14:03.1Z", MS - 20),
        ("2026-11-25T08:14:03.1209Z", MS),
        ("2026-11-25T08:14:03.120999999Z", MS),
        ("2026-11-25T08:14:03Z", MS - 120),
        ("2026-11-25t08:14:03.120z", MS),
        ("2026-11-25 08:14:03.120Z", MS),
        ("2026-11-25 08:14:03.120z", MS),
        ("2026-11-25T03:14:03.120-05:00", MS),
        ("2026-11-25T08:14:03.120-00:00", MS),
        ("2026-11-25T13:59:03.120+05:45", MS),
        ("2026-11-25T08:14:60Z", MS + 56_879),  # leap second: read as :59.999
        ("2024-02-29T00:00:00Z", 1_709_164_800_000),
    ],
)
def test_rfc3339_accepted(text: str, expected: int) -> None:
    assert parse_rfc3339(text) == expected
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-25T08:14:03",  # no offset
        "2026-11-25T08:14Z",
        "2026-11-25",
        "20261125T081403Z",
        "2026-11-25T08:14:03+0100",
        "2026-11-25T08:14:03+01",
        "2026-11-25T08:14:03.Z",
        "2026-11-25T08:14:03,120Z",
        "2026-02-30T08:14:03Z",
        "2026-11-25T24:00:00Z",
        "2026-11-25T08:60:00Z",
        "2026-11-25T08:14:61Z",
        "2026-11-25T08:14:03+24:00",
        "2026-W48-3T08:14:03Z",
        "\uff12\uff10\uff12\uff16-11-25T08:14:03Z",
        "2026-11-25T08:14:0\uff13Z",
        "2026-11-25T08:14:03.1\uff12Z",
        " 2026-11-25T08:14:03Z",
        "2026-11-25T08:14:03Z ",
        "",
        "now",
    ],
)
def test_rfc3339_rejected(text: str) -> None:
    assert parse_rfc3339(text) is None
    assert parse_timestamp(text) is None


def test_leap_second_reads_as_last_millisecond() -> None:
    assert parse_rfc3339("2026-11-25T08:14:60Z") == parse_rfc3339("2026-11-25T08:14:59.999Z")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (MS, MS),
        (float(MS), MS),
        (MIN_MS, MIN_MS),
        (MAX_MS - 1, MAX_MS - 1),
        (MIN_MS - 1, None),
        (MAX_MS, None),
        (1_795_594_443, None),  # epoch seconds
        (MS + 0.5, None),
        (float("nan"), None),
        (float("inf"), None),
        (True, None),
        (None, None),
        ([MS], None),
        (str(MS), None),
        ("1999-12-31T23:59:59.999Z", None),
        ("2101-01-01T00:00:00Z", None),
        ("2100-12-31T23:59:59.999Z", MAX_MS - 1),
    ],
)
def test_parse_timestamp_values(value: object, expected: int | None) -> None:
    assert parse_timestamp(value) == expected


def test_format_utc_and_local() -> None:
    assert format_utc(MS) == "2026-11-25T08:14:03.120Z"
    assert format_local(MS, AMSTERDAM) == "2026-11-25T09:14:03.120+01:00"
    summer = parse_rfc3339("2026-07-01T12:00:00.005Z")
    assert summer is not None
    assert format_local(summer, AMSTERDAM) == "2026-07-01T14:00:00.005+02:00"
    assert format_local(summer, ZoneInfo("America/St_Johns")) == "2026-07-01T09:30:00.005-02:30"
    assert format_local(MS, AMSTERDAM, 0) == "2026-11-25T09:14:03+01:00"
    assert format_local(MS, AMSTERDAM, 6) == "2026-11-25T09:14:03.120000+01:00"


def test_record_to_dict_fields_and_times() -> None:
    record = CallRecord(
        id="abc",
        tenant_id="acme",
        call_id="call-1",
        started_at_ms=MS,
        answered_at_ms=None,
        ended_at_ms=MS + 61_000,
        duration=0,
        source="+31201234567",
        source_raw="020 123 4567",
        destination="anonymous",
        destination_raw="",
        extension="0",
        direction="inbound",
        disposition="no_answer",
    )
    view = record_to_dict(record, AMSTERDAM)
    assert (
        tuple(view)
        == RECORD_FIELDS
        == (
            "id",
            "call_id",
            "started_at",
            "started_at_local",
            "answered_at",
            "ended_at",
            "duration",
            "source",
            "source_raw",
            "destination",
            "destination_raw",
            "extension",
            "direction",
            "disposition",
        )
    )
    assert view == {
        "id": "abc",
        "call_id": "call-1",
        "started_at": "2026-11-25T08:14:03.120Z",
        "started_at_local": "2026-11-25T09:14:03.120+01:00",
        "answered_at": None,
        "ended_at": "2026-11-25T08:15:04.120Z",
        "duration": 0,
        "source": "+31201234567",
        "source_raw": "020 123 4567",
        "destination": "anonymous",
        "destination_raw": "",
        "extension": "0",
        "direction": "inbound",
        "disposition": "no_answer",
    }
