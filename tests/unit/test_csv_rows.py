"""The CSV export's row path: rows formatted from decoded sealed rows (``payload_rows``,
what the export streams) are exactly the rows a plain reference renders from the JSON view
of the same records, masked or not, hostile strings included, whatever the caches hold."""

from __future__ import annotations

import unicodedata
from dataclasses import replace
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from cdrstream.api import csv_export
from cdrstream.api.csv_export import CsvFormatter
from cdrstream.core.record import CallRecord
from cdrstream.core.record_view import FIELDS, RecordView
from cdrstream.core.timestamps import MAX_MS, MIN_MS, format_local, format_utc
from cdrstream.store import codec

ZONES = [ZoneInfo(name) for name in ("Europe/Amsterdam", "America/St_Johns", "Asia/Kathmandu")]
#: Texts a spreadsheet or a CSV reader could be fooled by, and plain ones.
#: Blanks a spreadsheet skips before a formula: space, no-break space, byte-order mark,
#: zero-width space, word joiner, ideographic space.
BLANKS = [" ", "\u00a0", "\ufeff", "\u200b", "\u2060", "\u3000"]
HOSTILE = st.one_of(
    st.sampled_from(["=1+1", "+31", "-2", "@SUM(A1)", "\tx", "\rx", 'a"b', '"', ",", "\r\n", ""]),
    st.builds(
        lambda blanks, text: "".join(blanks) + text,
        st.lists(st.sampled_from(BLANKS), max_size=3),
        st.sampled_from(["=1+1", "+1", "-1", "@A1", "|x", "\uff1d1", "\uff0b1", "x", ""]),
    ),
    st.text(max_size=20),
)
E164 = st.from_regex(r"\+[1-9][0-9]{1,14}", fullmatch=True)
NUMBERS = st.one_of(E164, st.just("+1"), st.sampled_from(["anonymous", "201", "*97"]), HOSTILE)
TIMES = st.integers(min_value=MIN_MS, max_value=MAX_MS - 1)
# 2026-03-29 01:59:59.999 and 2026-10-25 00:59:59.999 UTC: a change of offset in Europe.
DST = [1_774_749_599_999, 1_792_889_999_999]


@st.composite
def records(draw: st.DrawFn) -> CallRecord:
    started = draw(st.one_of(TIMES, st.sampled_from(DST)))
    source, destination = draw(NUMBERS), draw(NUMBERS)
    answered = draw(st.one_of(st.none(), st.integers(min_value=0, max_value=3_600_000)))
    return CallRecord(
        id=draw(st.one_of(st.from_regex(r"[A-Za-z0-9_-]{16}", fullmatch=True), HOSTILE)),
        tenant_id="t",
        call_id=draw(HOSTILE),
        started_at_ms=started,
        answered_at_ms=None if answered is None else started + answered,
        ended_at_ms=started + draw(st.integers(min_value=0, max_value=7_200_000)),
        duration=draw(st.integers(min_value=0, max_value=10**6)),
        source=source,
        source_raw=draw(st.one_of(st.just(source), HOSTILE)),
        destination=destination,
        destination_raw=draw(st.one_of(st.just(destination), HOSTILE)),
        extension=draw(st.one_of(st.from_regex(r"[0-9]{1,4}", fullmatch=True), HOSTILE)),
        direction=draw(st.sampled_from(["inbound", "outbound"])),
        disposition=draw(st.one_of(st.none(), st.sampled_from(codec.DISPOSITIONS), HOSTILE)),
    )


def defused(text: str) -> str:
    """``text`` with the apostrophe the module docstring asks for: a leading tab or CR, or a
    first visible character that is (a compatibility form of) ``= + - @ |``."""
    visible = [c for c in text if not (c.isspace() or unicodedata.category(c) == "Cf")]
    first = unicodedata.normalize("NFKC", visible[0])[:1] if visible else ""
    risky = text[:1] in ("\t", "\r") or (first != "" and first in "=+-@|")
    return "'" + text if risky else text


@pytest.mark.parametrize(
    ("text", "cell"),
    [
        ("=1+1", "'=1+1"),
        (" =1+1", "' =1+1"),
        ("\u00a0+31201234567", "'\u00a0+31201234567"),
        ("\ufeff-2", "'\ufeff-2"),
        ("\u200b@SUM(A1)", "'\u200b@SUM(A1)"),
        (" \u200b\u00a0=1", "' \u200b\u00a0=1"),
        ("|cmd", "'|cmd"),
        ("\uff1dcmd|' /C calc'!A0", "'\uff1dcmd|' /C calc'!A0"),
        ("\uff0b31", "'\uff0b31"),
        ("\tx", "'\tx"),
        ("\r=1", "'\r=1"),
        (" x=1", " x=1"),
        ("a|b", "a|b"),
        ("anonymous", "anonymous"),
        (" ", " "),
        ("\ufeff", "\ufeff"),
        ("", ""),
    ],
)
def test_a_cell_that_could_start_a_formula_gets_an_apostrophe(text: str, cell: str) -> None:
    record = replace(RECORD, call_id=text, extension=text, disposition=text)
    row = CsvFormatter(RecordView(ZONES[0], False)).rows([record])
    quoted = '"' + cell + '"'
    assert row.count(quoted) >= 3, (row, quoted)
    assert defused(text) == cell


def reference_row(view: RecordView, record: CallRecord) -> str:
    """A row as the module docstring of ``csv_export`` describes it, from the JSON view."""
    shown = view.to_dict(record)
    cells: list[str] = []
    for f in FIELDS:
        value = getattr(record, f.attribute) if f.kind == "time" else shown[f.name]
        if f.kind == "time":
            local = None if value is None else format_local(value, view.display_tz)
            cells += ["", ""] if value is None else [format_utc(value), str(local)]
        elif f.kind == "seconds":
            cells.append(str(value))
        else:
            text = "" if value is None else str(value)
            if f.kind != "direction":
                text = defused(text)
            cells.append('"' + text.replace('"', '""') + '"')
    return ",".join(cells) + "\r\n"


RECORD = CallRecord(
    "oT3b3k0mXoq4uJ2P", "t", "c1", DST[0], None, DST[0], 0, "+31201234567", "020 123 4567",
    "+49302299303", "+49302299303", "201", "inbound", None,
)  # fmt: skip
VIEWS = st.builds(RecordView, st.sampled_from(ZONES), st.booleans())


@given(VIEWS, st.lists(records(), max_size=12))
def test_payload_rows_are_the_reference_rows(view: RecordView, batch: list[CallRecord]) -> None:
    formatter = CsvFormatter(view)
    expected = "".join(reference_row(view, r) for r in batch)
    # Twice through one formatter: the second time every value comes from its caches.
    for _ in range(2):
        assert formatter.payload_rows([codec.row_of(r) for r in batch]) == expected
    assert formatter.rows(batch) == expected


@given(VIEWS, st.lists(records(), max_size=12))
@example(RecordView(ZONES[0], False), [])  # no rows
def test_rows_as_the_store_streams_them(view: RecordView, batch: list[CallRecord]) -> None:
    """Hot records come as ``[id, *payload]``, sealed ones as the row's JSON: both format
    as the records do."""
    hot = [[r.id, *orjson.loads(codec.encode(r))] for r in batch]
    sealed = [orjson.loads(codec.row(r.id, codec.encode(r))) for r in batch]
    expected = "".join(reference_row(view, r) for r in batch)
    assert CsvFormatter(view).payload_rows(hot) == expected
    assert CsvFormatter(view).payload_rows(sealed) == expected
    assert [codec.build_row("t", f) for f in sealed] == batch


@pytest.mark.parametrize("masked", [False, True])
def test_caches_cleared_when_full_give_the_same_rows(
    masked: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csv_export, "_CACHE_MAX", 2)
    view = RecordView(ZONES[0], masked)
    base = CallRecord(
        "id", "t", "c", DST[0], None, DST[0], 0, "+31201234567", "020 123 4567",
        "+49302299303", "+49302299303", "0", "inbound", None,
    )  # fmt: skip
    batch = [
        replace(
            base,
            id=f"id{n}",
            started_at_ms=DST[n % 2] + n * 61_000,
            ended_at_ms=DST[n % 2] + n * 90_000,
            source=f"+3120123{n:04d}",
            source_raw=f"020 123 {n:04d}",
            extension=str(n % 3),
            disposition=codec.DISPOSITIONS[n % 5],
        )
        for n in range(40)
    ]
    formatter = CsvFormatter(view)
    assert formatter.payload_rows([codec.row_of(r) for r in batch]) == "".join(
        reference_row(view, r) for r in batch
    )
