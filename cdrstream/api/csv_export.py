"""CSV rows of call records, fast enough to stream well over 100,000 rows a second.

Columns (``CSV_COLUMNS``): the record fields of `cdrstream.core.record_view.FIELDS`, each
time twice, in UTC and in the display zone (``started_at_utc``, ``started_at_local``, ...).
The formats are those of the JSON records (``2026-11-25T08:14:03.120Z``,
``2026-11-25T09:14:03.120+01:00``); an absent ``answered_at`` is an empty field. Records
are shown through the reader's `RecordView`: for a token with masked numbers, the masked
numbers, empty withheld fields (raw numbers, call id) and extensions and dispositions masked
where they hold a number.

Text fields (ids, numbers, raw numbers, extension, direction, disposition) are always
quoted (a ``"`` inside is doubled), and one that could start a formula gets a leading
apostrophe (OWASP's advice against CSV formula injection): one that starts with a tab or a
carriage return, or whose first character that is neither whitespace (space, no-break
space, ...) nor an invisible format character (byte-order mark, zero-width space, ...) is
``=``, ``+``, ``-``, ``@`` or ``|``, or a compatibility form of one (fullwidth equals sign
U+FF1D, fullwidth plus U+FF0B, ...): spreadsheets skip the former and read the latter as
the former. That is also what keeps a spreadsheet from turning ``+31201234567`` into the
number 31201234567: the cell reads ``'+31201234567``. Lines end in CRLF (RFC 4180); the
file is UTF-8. Times and the duration are never quoted (they cannot hold a comma).

Speed: the export formats the store's decoded rows (``[id, ...payload]``, ``codec``)
without building record objects. The text of each minute (UTC and display zone, with the
zone's offset) is cached, seconds and milliseconds come from a table, repeating values
(numbers as the reader may see them, raw numbers, extensions, dispositions) are cached
quoted, and the apostrophe of an id or call id is chosen by a table lookup on its first
character (only a first character that is whitespace or invisible sends it to a function
that looks further), so a row is one f-string with no Python function call. The f-string
spells out the columns in `FIELDS` order; the unit tests hold every column of a row to the
JSON view of the same record (``tests/unit/test_csv_rows.py``: masked views and hostile
strings too).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cdrstream.core.record import CallRecord
from cdrstream.core.record_view import FIELDS, RecordView
from cdrstream.store import codec

CSV_COLUMNS: tuple[str, ...] = tuple(
    column
    for f in FIELDS
    for column in ((f"{f.name}_utc", f"{f.name}_local") if f.kind == "time" else (f.name,))
)

_HM = [f"{m // 60:02d}:{m % 60:02d}" for m in range(1440)]
_SS_MS = [f"{s // 1000:02d}.{s % 1000:03d}" for s in range(60_000)]  # "SS.mmm" by ms of minute
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_FORMULA_FIRST = frozenset("=+-@|")
_CACHE_MAX = 200_000
_Q = '"'
_QQ = '""'


def _blank(char: str) -> bool:
    """Whitespace or an invisible format character: what a spreadsheet skips."""
    return char.isspace() or unicodedata.category(char) == "Cf"


class _Defuse(dict[str, str | None]):
    """First character of a value -> the prefix it needs: an apostrophe, or nothing; None
    when the first character is blank and the answer depends on what follows
    (`_apostrophe`)."""

    def __missing__(self, first: str) -> str | None:
        prefix: str | None
        if first in ("\t", "\r"):
            prefix = "'"
        elif first and _blank(first):
            prefix = None
        else:
            prefix = "'" if unicodedata.normalize("NFKC", first)[:1] in _FORMULA_FIRST else ""
        self[first] = prefix
        return prefix


_DEFUSE = _Defuse()


def _apostrophe(text: str) -> str:
    """The prefix ``text`` needs (module docstring)."""
    prefix = _DEFUSE[text[:1]]
    if prefix is not None:
        return prefix
    for char in text:
        if not _blank(char):
            return _DEFUSE[char] or ""
    return ""


def _offset_suffix(offset: timedelta) -> str:
    total_min = int(offset.total_seconds()) // 60
    sign = "-" if total_min < 0 else "+"
    hours, minutes = divmod(abs(total_min), 60)
    return f"{sign}{hours:02d}:{minutes:02d}"


class _Minutes(dict[int, tuple[str, str, str]]):
    """Minute since the epoch -> ``("YYYY-MM-DDTHH:MM:" in UTC, the same in the zone,
    "+01:00")``, computed on first use.

    Zone offsets since 1970 change on whole minutes, so one minute has one offset; the
    offset is cached per quarter hour, and a quarter hour that holds a change of offset
    is looked up minute by minute.
    """

    def __init__(self, zone: ZoneInfo) -> None:
        super().__init__()
        self._zone = zone
        self._days: dict[int, str] = {}
        self._quarters: dict[int, tuple[int, str] | None] = {}

    def __missing__(self, minute: int) -> tuple[str, str, str]:
        if len(self) > _CACHE_MAX:
            self.clear()
        offset_min, suffix = self._offset(minute)
        entry = self[minute] = (self._naive(minute), self._naive(minute + offset_min), suffix)
        return entry

    def _offset(self, minute: int) -> tuple[int, str]:
        quarter = minute // 15
        try:
            cached = self._quarters[quarter]
        except KeyError:
            first, last = self._offset_at(quarter * 15), self._offset_at(quarter * 15 + 14)
            cached = self._quarters[quarter] = first if first == last else None
        return cached if cached is not None else self._offset_at(minute)

    def _offset_at(self, minute: int) -> tuple[int, str]:
        offset = datetime.fromtimestamp(minute * 60, self._zone).utcoffset() or timedelta(0)
        return int(offset.total_seconds()) // 60, _offset_suffix(offset)

    def _naive(self, minute: int) -> str:
        day, minute_of_day = divmod(minute, 1440)
        day_text = self._days.get(day)
        if day_text is None:
            day_text = self._days[day] = date.fromordinal(day + _EPOCH_ORDINAL).isoformat()
        return f"{day_text}T{_HM[minute_of_day]}:"


def _quoted(text: str) -> str:
    """A text field: quoted, ``"`` doubled, an apostrophe before a risky first character."""
    return f'"{_apostrophe(text)}{text.replace(_Q, _QQ)}"'


class _Fields(dict[int | str, str]):
    """A field value -> its CSV text (``_quoted``), computed on first use: an int is an
    E.164 number as the payload holds it (``codec.number_text``). ``show`` is what the
    reader may see of the value (`RecordView`). Values repeat (numbers, extensions), ids do
    not: ids are quoted inline instead."""

    def __init__(self, show: Callable[[str], str]) -> None:
        super().__init__()
        self._show = show

    def __missing__(self, value: int | str) -> str:
        if len(self) > _CACHE_MAX:
            self.clear()
        text = self[value] = _quoted(self._show(codec.number_text(value)))
        return text


class _Coded(dict[Any, str]):
    """Direction or disposition as the payload holds it (a code, a string, or None for no
    disposition) -> its CSV text."""

    def __init__(self, names: Sequence[str], quote: Callable[[str], str]) -> None:
        super().__init__({code: quote(name) for code, name in enumerate(names)})
        self[None] = quote("")
        self._quote = quote

    def __missing__(self, value: str) -> str:
        return self._quote(value)  # a rare uncoded value: not kept, so the table stays small


class CsvFormatter:
    """Header and rows for one export, as ``view`` shows records; keeps its caches for the
    whole stream."""

    def __init__(self, view: RecordView) -> None:
        self._minutes = _Minutes(view.display_tz)
        self._texts = _Fields(str)
        self._numbers = self._texts
        self._raws = self._texts
        self._extensions = self._texts
        self._call_ids = True
        if view.masked_numbers:
            self._numbers = _Fields(view.served_number)
            self._raws = _Fields(view.served_withheld)
            self._extensions = _Fields(view.served_text)
            self._call_ids = False  # withheld: an empty field
        # The direction is written as it is (it is never anything but these two words).
        self._directions = _Coded(codec.DIRECTIONS, lambda name: f'"{name}"')
        self._dispositions = _Coded(
            codec.DISPOSITIONS, lambda name: _quoted(view.served_text(name))
        )

    @staticmethod
    def header() -> str:
        return ",".join(CSV_COLUMNS) + "\r\n"

    def rows(self, records: Sequence[CallRecord]) -> str:
        """The rows of ``records`` (``payload_rows`` of their sealed rows)."""
        return self.payload_rows([codec.row_of(r) for r in records])

    def payload_rows(self, rows: Sequence[list[Any]]) -> str:
        """The rows of decoded sealed rows ``[id, ...payload]`` (``codec``), as the store's
        export stream yields them: no record object is built on the way."""
        minutes, ss_ms, p, q, qq = self._minutes, _SS_MS, _DEFUSE, _Q, _QQ
        numbers, raws, extensions = self._numbers, self._raws, self._extensions
        directions, dispositions, call_ids = self._directions, self._dispositions, self._call_ids
        lines: list[str] = []
        append = lines.append
        for f in rows:
            started = f[1]
            minute, rest = divmod(started, 60_000)
            s, s_sec = minutes[minute], ss_ms[rest]
            minute, rest = divmod(started + f[7], 60_000)
            e, e_sec = minutes[minute], ss_ms[rest]
            if f[8] is None:
                answered = ","
            else:
                minute, rest = divmod(started + f[8], 60_000)
                a, a_sec = minutes[minute], ss_ms[rest]
                answered = f"{a[0]}{a_sec}Z,{a[1]}{a_sec}{a[2]}"
            rid, src, dst = f[0], f[3], f[4]
            call = f[6] if call_ids else ""
            rid_p, call_p = p[rid[:1]], p[call[:1]]
            if rid_p is None:
                rid_p = _apostrophe(rid)
            if call_p is None:
                call_p = _apostrophe(call)
            # A raw number is 0 (or left out) when it equals its number.
            n = len(f)
            src_raw = f[11] if n > 11 and f[11] != 0 else src
            dst_raw = f[12] if n > 12 and f[12] != 0 else dst
            append(
                f'"{rid_p}{rid.replace(q, qq)}","{call_p}{call.replace(q, qq)}",'
                f"{s[0]}{s_sec}Z,{s[1]}{s_sec}{s[2]},{answered},"
                f"{e[0]}{e_sec}Z,{e[1]}{e_sec}{e[2]},{f[9]},"
                f"{numbers[src]},{raws[src_raw]},{numbers[dst]},{raws[dst_raw]},"
                f"{extensions[f[2]]},{directions[f[5]]},{dispositions[f[10]]}\r\n"
            )
        return "".join(lines)


def filename(tenant_id: str, zone: ZoneInfo, now_ms: int) -> str:
    """``cdrs-<tenant>-<date>.csv``; the date is today's in the display zone."""
    day = datetime.fromtimestamp(now_ms / 1000, zone).date().isoformat()
    return f"cdrs-{tenant_id}-{day}.csv"
