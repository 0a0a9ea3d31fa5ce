"""Daily summaries: per tenant, per day in the display zone, per direction, the calls, the
answered calls, the talk seconds, and the calls per disposition; answer rate and average
talk time are derived from them. Pure functions, no I/O.

The store keeps the summaries exact under replays and replacements (``store/summary.py``):
the write script adds a record's **contribution** when it stores it, takes the old one
away when it replaces it, and does nothing for a duplicate. A contribution is what one
record adds (`Contribution`), encoded in :data:`CONTRIBUTION_SIZE` bytes
(`encode_contribution`) so the store can keep it beside the record and subtract it later
without decoding the record (the script has no time zone database: the day is computed
here, in Python).

Definitions (docs/api.md, "Daily summaries"):

- the **day** of a call is the date of its ``started_at`` in the display zone;
- a call is **answered** when it has ``answered_at``; its **talk seconds** are its
  ``duration``; talk seconds are summed over answered calls only (an unanswered call has
  none, whatever a PBX wrote), so ``average_talk_seconds = talk_seconds / answered``;
- ``answer_rate = answered / calls`` (``None`` for a day without calls);
- dispositions: the five of the contract, ``other`` for any other word a PBX sent, and
  ``none`` for a call without one.

**Window**: a day is summarised only while it lies wholly inside the retention window:
days from :func:`first_day` (the first day whose midnight is not before ``now -
retention``) to today. A day that is partly outside would hold calls that are no longer
listed, so its summary could not equal the records; the sweep drops days before
:func:`first_day`, and the write script adds nothing to them.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Literal
from zoneinfo import ZoneInfo

from cdrstream.core.record import CallRecord

Direction = Literal["inbound", "outbound"]
DIRECTIONS: tuple[Direction, Direction] = ("inbound", "outbound")
#: Direction codes in summary field names.
DIRECTION_CODES: dict[Direction, str] = {"inbound": "i", "outbound": "o"}
#: Dispositions counted, in the order of their codes (0 is ``none``).
DISPOSITIONS: tuple[str, ...] = (
    "none",
    "answered",
    "no_answer",
    "busy",
    "failed",
    "cancelled",
    "other",
)
_DISPOSITION_CODE = {name: code for code, name in enumerate(DISPOSITIONS)}
#: Metric names in summary field names, besides the dispositions.
CALLS, ANSWERED, TALK = "c", "a", "t"

_EPOCH = date(1970, 1, 1)
_EPOCH_ORDINAL = _EPOCH.toordinal()
#: Days are stored as unsigned 16-bit numbers: 1970-01-01 .. 2149-06-06.
MAX_DAY = 0xFFFF
#: Talk seconds are stored as unsigned 32-bit numbers (136 years): longer is clamped.
MAX_TALK = 0xFFFF_FFFF

_CONTRIBUTION = struct.Struct(">HBI")
#: Bytes of an encoded contribution.
CONTRIBUTION_SIZE = _CONTRIBUTION.size


# ------------------------------------------------------------------------------- days


def day_number(d: date) -> int:
    """Days since 1970-01-01 of a calendar date."""
    return d.toordinal() - _EPOCH_ORDINAL


def day_date(day: int) -> date:
    return date.fromordinal(day + _EPOCH_ORDINAL)


#: ``local_day`` remembers the day of each 15-minute UTC slot it was asked about: every
#: record of a batch needs its day, and the zone conversion was 5 % of the worker's samples
#: (py-spy; 0.84 us a call alone, 0.37 remembered). Today's UTC offsets and DST changes all
#: fall on 15-minute boundaries, so a slot has one local date; one that does not (a
#: historical offset of minutes and seconds) is recognised and never remembered.
_SLOT_MS = 900_000
_SLOT_DAYS: dict[tuple[ZoneInfo, int], int] = {}
_SLOT_DAYS_MAX = 100_000


def _exact_local_day(ms: int, zone: ZoneInfo) -> int:
    return day_number(datetime.fromtimestamp(ms / 1000, zone).date())


def local_day(ms: int, zone: ZoneInfo) -> int:
    """The day number of the date, in ``zone``, of the instant ``ms`` (UTC epoch ms)."""
    slot = ms // _SLOT_MS
    day = _SLOT_DAYS.get((zone, slot))
    if day is not None:
        return day
    first = datetime.fromtimestamp(slot * _SLOT_MS / 1000, zone)
    last = datetime.fromtimestamp((slot * _SLOT_MS + _SLOT_MS - 1) / 1000, zone)
    if first.utcoffset() != last.utcoffset() or first.date() != last.date():
        return _exact_local_day(ms, zone)  # a change of offset or date inside the slot
    if len(_SLOT_DAYS) >= _SLOT_DAYS_MAX:
        _SLOT_DAYS.clear()
    day = _SLOT_DAYS[(zone, slot)] = day_number(first.date())
    return day


def day_start_ms(day: int, zone: ZoneInfo) -> int:
    """The instant local midnight starts ``day`` in ``zone`` (the first instant of that
    date; where a zone skips midnight, the instant the date begins)."""
    wall = datetime.combine(day_date(day), time(0), zone)
    ms = int(wall.timestamp() * 1000)
    # A skipped midnight (a DST change at 00:00) resolves to an instant of the day before
    # or after; step to the first millisecond whose local date is the day.
    if local_day(ms, zone) < day:
        ms = int(datetime.combine(day_date(day), time(1), zone).timestamp() * 1000) - 3_600_000
        while local_day(ms, zone) < day:
            ms += 60_000
    return ms


def first_day(now_ms: int, retention_ms: int, zone: ZoneInfo) -> int:
    """The oldest day summarised: the first whose start is not before ``now - retention``."""
    cutoff = now_ms - retention_ms
    day = local_day(cutoff, zone)
    return day if day_start_ms(day, zone) >= cutoff else day + 1


def parse_day(text: str) -> int | None:
    """``YYYY-MM-DD`` as a day number, or None when it is not such a date."""
    if len(text) != 10 or text[4] != "-" or text[7] != "-":
        return None
    try:
        return day_number(date.fromisoformat(text))
    except ValueError:
        return None


# ------------------------------------------------------------------------------- contributions


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one record adds to its tenant's summary."""

    day: int
    direction: Direction
    answered: bool
    talk_seconds: int  # 0 when not answered
    disposition: str  # one of DISPOSITIONS


def disposition_bucket(disposition: str | None) -> str:
    if disposition is None:
        return "none"
    return disposition if disposition in _DISPOSITION_CODE else "other"


def contribution(record: CallRecord, zone: ZoneInfo) -> Contribution:
    answered = record.answered_at_ms is not None
    return Contribution(
        day=local_day(record.started_at_ms, zone),
        direction=record.direction,
        answered=answered,
        talk_seconds=min(max(record.duration, 0), MAX_TALK) if answered else 0,
        disposition=disposition_bucket(record.disposition),
    )


def encode_contribution(c: Contribution) -> bytes:
    """7 bytes, ``>HBI``: day; flags (bit 0 outbound, bit 1 answered, bits 2-4 the
    disposition code); talk seconds. ``store/summary.py``'s Lua reads the same layout.
    A day outside 0..MAX_DAY (a clock gone wrong) is b"": such a record adds nothing."""
    if not 0 <= c.day <= MAX_DAY:
        return b""
    flags = (
        (1 if c.direction == "outbound" else 0)
        | (2 if c.answered else 0)
        | (_DISPOSITION_CODE[c.disposition] << 2)
    )
    return _CONTRIBUTION.pack(c.day, flags, c.talk_seconds)


def decode_contribution(data: bytes) -> Contribution | None:
    if len(data) != CONTRIBUTION_SIZE:
        return None
    day, flags, talk = _CONTRIBUTION.unpack(data)
    code = (flags >> 2) & 7
    return Contribution(
        day=day,
        direction="outbound" if flags & 1 else "inbound",
        answered=bool(flags & 2),
        talk_seconds=talk,
        disposition=DISPOSITIONS[code] if code < len(DISPOSITIONS) else "other",
    )


def field_names(c: Contribution) -> list[tuple[str, int]]:
    """The summary hash fields a contribution adds to, each with its amount:
    ``<day>:<i|o>:<metric>`` (metrics ``c``, ``a``, ``t`` and the disposition names)."""
    head = f"{c.day}:{DIRECTION_CODES[c.direction]}:"
    out = [(head + CALLS, 1), (head + c.disposition, 1)]
    if c.answered:
        out += [(head + ANSWERED, 1), (head + TALK, c.talk_seconds)]
    return out


def apply_change(
    fields: dict[str, int],
    old: Contribution | None,
    new: Contribution | None,
    floor: int,
) -> None:
    """The summary change of one write, as the write script makes it: the old contribution
    taken away and the new one added, each only for a day at or after ``floor``; fields
    that come to zero are removed."""
    for c, sign in ((old, -1), (new, 1)):
        if c is None or c.day < floor:
            continue
        for name, amount in field_names(c):
            value = fields.get(name, 0) + sign * amount
            if value:
                fields[name] = value
            else:
                fields.pop(name, None)


# ------------------------------------------------------------------------------- reading


@dataclass(frozen=True, slots=True)
class DirectionFigures:
    calls: int = 0
    answered: int = 0
    talk_seconds: int = 0
    dispositions: Mapping[str, int] = field(default_factory=lambda: dict.fromkeys(DISPOSITIONS, 0))

    @property
    def answer_rate(self) -> float | None:
        return None if self.calls == 0 else self.answered / self.calls

    @property
    def average_talk_seconds(self) -> float | None:
        return None if self.answered == 0 else self.talk_seconds / self.answered

    def to_json(self) -> dict[str, object]:
        rate, average = self.answer_rate, self.average_talk_seconds
        return {
            "calls": self.calls,
            "answered": self.answered,
            "talk_seconds": self.talk_seconds,
            "answer_rate": None if rate is None else round(rate, 4),
            "average_talk_seconds": None if average is None else round(average, 1),
            "dispositions": dict(self.dispositions),
        }


@dataclass(frozen=True, slots=True)
class DaySummary:
    day: int
    inbound: DirectionFigures
    outbound: DirectionFigures

    @property
    def date(self) -> str:
        return day_date(self.day).isoformat()

    def of(self, direction: Direction) -> DirectionFigures:
        return self.inbound if direction == "inbound" else self.outbound

    def to_json(self) -> dict[str, object]:
        return {
            "date": self.date,
            "inbound": self.inbound.to_json(),
            "outbound": self.outbound.to_json(),
        }


def _figures(fields: Mapping[str, int], day: int, direction: Direction) -> DirectionFigures:
    head = f"{day}:{DIRECTION_CODES[direction]}:"
    return DirectionFigures(
        calls=fields.get(head + CALLS, 0),
        answered=fields.get(head + ANSWERED, 0),
        talk_seconds=fields.get(head + TALK, 0),
        dispositions={name: fields.get(head + name, 0) for name in DISPOSITIONS},
    )


def summarize(fields: Mapping[str, int], first: int, last: int) -> list[DaySummary]:
    """Every day from ``first`` to ``last`` (inclusive), oldest first, from the summary
    hash's fields (a day without calls is all zeros)."""
    return [
        DaySummary(day, _figures(fields, day, "inbound"), _figures(fields, day, "outbound"))
        for day in range(first, last + 1)
    ]


def aggregate(records: Iterable[CallRecord], zone: ZoneInfo, floor: int = 0) -> dict[str, int]:
    """The summary fields the records add up to (days before ``floor`` left out): what
    the store's summary must equal (the tests compare the two)."""
    fields: dict[str, int] = {}
    for record in records:
        apply_change(fields, None, contribution(record, zone), floor)
    return fields


def parse_fields(raw: Mapping[bytes | str, bytes | str]) -> dict[str, int]:
    """A summary hash as Redis returns it (``HGETALL``): day fields only, as integers."""
    out: dict[str, int] = {}
    for name, value in raw.items():
        key = name.decode("utf-8", "replace") if isinstance(name, bytes) else name
        if not key[:1].isdigit():
            continue  # "floor" and any other bookkeeping field
        try:
            out[key] = int(value)
        except ValueError:
            continue
    return out


def totals(days: Iterable[DaySummary]) -> dict[str, DirectionFigures]:
    """Both directions summed over ``days``."""
    out: dict[str, DirectionFigures] = {}
    for direction in DIRECTIONS:
        calls = answered = talk = 0
        dispositions = dict.fromkeys(DISPOSITIONS, 0)
        for d in days:
            f = d.of(direction)
            calls += f.calls
            answered += f.answered
            talk += f.talk_seconds
            for name, count in f.dispositions.items():
                dispositions[name] += count
        out[direction] = DirectionFigures(calls, answered, talk, dispositions)
    return out


# ------------------------------------------------------------------------------- CSV

CSV_COLUMNS: tuple[str, ...] = (
    "date",
    "direction",
    "calls",
    "answered",
    "talk_seconds",
    "answer_rate",
    "average_talk_seconds",
    *(f"disposition_{name}" for name in DISPOSITIONS),
)


def csv_text(days: Iterable[DaySummary]) -> str:
    """Header and one row per day and direction; CRLF line ends; nothing needs quoting
    (dates, fixed words and numbers only). An undefined rate or average is empty."""
    lines = [",".join(CSV_COLUMNS)]
    for d in days:
        for direction in DIRECTIONS:
            f = d.of(direction)
            rate, average = f.answer_rate, f.average_talk_seconds
            lines.append(
                ",".join(
                    [
                        d.date,
                        direction,
                        str(f.calls),
                        str(f.answered),
                        str(f.talk_seconds),
                        "" if rate is None else f"{rate:.4f}",
                        "" if average is None else f"{average:.1f}",
                        *(str(f.dispositions[name]) for name in DISPOSITIONS),
                    ]
                )
            )
    return "\r\n".join(lines) + "\r\n"


def today(now_ms: int, zone: ZoneInfo) -> int:
    return local_day(now_ms, zone)
