"""Event times: parsing RFC 3339 / epoch milliseconds into UTC epoch ms, and rendering them.

Accepted input (contract §2):

- RFC 3339 with an offset: ``2026-11-25T09:14:03.120+01:00``, ``2026-11-25T08:14:03Z``; ``t``/``z``
  and a space instead of ``T`` (RFC 3339 section 5.6 note) are accepted; fractional seconds of any
  length are truncated to milliseconds; a leap second (``:60``) is read as ``:59.999``. A time
  without an offset is rejected: it does not name an instant.
- integer epoch milliseconds (a JSON integer, or an integral float such as ``1.7640584e12``).
  Booleans, strings of digits, NaN and infinities are rejected.

Every accepted time must fall in the years 2000-2100 (UTC), which also catches epoch *seconds*
sent where milliseconds were meant (they land in January 1970).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

MIN_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
MAX_MS = 4_133_980_800_000  # 2101-01-01T00:00:00Z (exclusive)

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)

# Events of a stream share their minutes: "2026-11-25T09:14" + offset -> UTC ms of its :00.
_MINUTES: dict[str, int | None] = {}
_MINUTES_MAX = 4096
_SECONDS = {f"{i:02d}": i for i in range(61)}
_MILLIS = {f".{i:03d}": i for i in range(1000)}


def parse_rfc3339(text: str) -> int | None:
    """UTC epoch ms of an RFC 3339 date-time with offset, or None when it is not one."""
    n = len(text)
    if n < 20 or n > 64:
        return None
    last = text[-1]
    if last == "Z" or last == "z":
        tail = n - 1
    elif text[-3] == ":" and text[-6] in "+-":
        tail = n - 6
    else:
        return None
    minute_key = text[:16] + text[tail:]
    base = _MINUTES.get(minute_key, -1)
    if base == -1:
        base = _parse_rfc3339_fields(text[:16] + ":00" + text[tail:])
        if len(_MINUTES) >= _MINUTES_MAX:
            _MINUTES.clear()
        _MINUTES[minute_key] = base
    if base is None or text[16] != ":":
        return None
    second = _SECONDS.get(text[17:19], -1)
    if second < 0:
        return None
    if tail == 19:
        ms = 0
    else:
        fraction = text[19:tail]
        ms = _MILLIS.get(fraction, -1)
        if ms < 0:
            digits = fraction[1:4]
            if fraction[0] != "." or not (fraction[1:].isdigit() and fraction.isascii()):
                return None
            ms = int(digits) * (1, 100, 10, 1)[len(digits)]
    if second == 60:  # leap second
        second, ms = 59, 999
    return base + second * 1000 + ms


def _parse_rfc3339_fields(text: str) -> int | None:
    m = _RFC3339.fullmatch(text)
    if m is None:
        return None
    year, month, day, hour, minute, second, frac, zulu, sign, off_h, off_m = m.groups()
    h, mi, s = int(hour), int(minute), int(second)
    if h > 23 or mi > 59 or s > 60:
        return None
    ms = int((frac + "00")[:3]) if frac else 0
    if s == 60:
        s, ms = 59, 999
    try:
        ordinal = date(int(year), int(month), int(day)).toordinal()
    except ValueError:
        return None
    offset_s = 0
    if not zulu:
        oh, om = int(off_h), int(off_m)
        if oh > 23 or om > 59:
            return None
        offset_s = oh * 3600 + om * 60
        if sign == "-":
            offset_s = -offset_s
    seconds = (ordinal - _EPOCH_ORDINAL) * 86_400 + h * 3600 + mi * 60 + s - offset_s
    return seconds * 1000 + ms


def parse_timestamp(value: object) -> int | None:
    """UTC epoch ms of an event time (RFC 3339 text or epoch ms), None when not acceptable."""
    if type(value) is str:
        ms = parse_rfc3339(value) if len(value) <= 64 else None
    elif type(value) is int:
        ms = value
    elif type(value) is float:
        if not value.is_integer():  # also False for NaN and infinities
            return None
        ms = int(value)
    else:  # bool, None, containers, int subclasses
        return None
    if ms is None or not MIN_MS <= ms < MAX_MS:
        return None
    return ms


def format_utc(ms: int) -> str:
    """``2026-11-25T08:14:03.120Z``: UTC, always three fractional digits."""
    dt = datetime.fromtimestamp(ms // 1000, UTC)
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:"
        f"{dt.second:02d}.{ms % 1000:03d}Z"
    )


def format_local(ms: int, zone: ZoneInfo, fraction_digits: int = 3) -> str:
    """``2026-11-25T09:14:03.120+01:00``: the instant in ``zone`` with that zone's offset.

    ``fraction_digits`` is 3 (milliseconds) for records; the simulator also uses 0 and 6.
    """
    dt = datetime.fromtimestamp(ms // 1000, zone)
    offset = dt.utcoffset() or timedelta(0)
    total_min = int(offset.total_seconds()) // 60
    sign = "-" if total_min < 0 else "+"
    off_h, off_m = divmod(abs(total_min), 60)
    if fraction_digits == 0:
        frac = ""
    else:
        frac = "." + f"{ms % 1000:03d}{'0' * max(0, fraction_digits - 3)}"[:fraction_digits]
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:"
        f"{dt.second:02d}{frac}{sign}{off_h:02d}:{off_m:02d}"
    )
