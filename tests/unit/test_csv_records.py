"""Master.csv read as CSV records: a quoted line break stays in its row, an unclosed quote
never swallows the rows after it, and a number that is not UTF-8 is refused."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdrstream.ingest.asterisk_cdr import AsteriskCdr, AsteriskConfig, parse_csv_line
from cdrstream.ingest.csv_records import (
    MAX_RECORD_BYTES,
    one_line,
    split_records,
    undecodable_number,
)
from cdrstream.ingest.results import Rejected
from tests.unit.test_ingest_asterisk import csv_row

ROW = csv_row().encode()
#: cdr_csv writes userfield raw: this one was set by the dialplan to two lines.
NOTE_ROW = csv_row(userfield="callback\nrequested", uniqueid="1795590000.27").encode()


def test_a_quoted_line_break_is_part_of_one_record() -> None:
    data = ROW + b"\n" + NOTE_ROW + b"\n" + ROW + b"\n"
    assert split_records(data) == ([ROW, NOTE_ROW, ROW], b"")


def test_a_record_cut_inside_its_quoted_line_break_waits_for_the_rest() -> None:
    cut = NOTE_ROW.index(b"\n") + 1
    assert split_records(ROW + b"\n" + NOTE_ROW[:cut]) == ([ROW], NOTE_ROW[:cut])


def test_the_record_reads_as_the_row_it_is() -> None:
    parsed = parse_csv_line(one_line(NOTE_ROW), AsteriskConfig())
    assert isinstance(parsed, AsteriskCdr)
    assert (parsed.uniqueid, parsed.userfield) == ("1795590000.27", "callback requested")


@pytest.mark.parametrize("final", [False, True])
def test_an_unclosed_quote_does_not_swallow_the_rows_after_it(final: bool) -> None:
    bad = b'"acme","+3161234'
    rows = [csv_row(uniqueid=f"1795590000.{n}").encode() for n in range(60)]
    data = bad + b"\n" + b"\n".join(rows) + b"\n"
    assert len(data) > MAX_RECORD_BYTES or final
    records, rest = split_records(data, final=final)
    assert (records, rest) == ([bad, *rows], b"")


@pytest.mark.parametrize(
    ("src", "dst", "refused"),
    [
        (b"+31612345678", b"0201234567", None),
        (b"+3161\xff345678", b"0201234567", "src"),
        (b"+31612345678", b"020\xc3(1234567", "dst"),
        (b"+31612345678", b"0201234567\xe9", "dst"),
    ],
)
def test_a_number_that_is_not_utf8_is_refused(src: bytes, dst: bytes, refused: str | None) -> None:
    row = ROW.replace(b"+31612345678", src, 1).replace(b"0201234567", dst, 1)
    expected = None if refused is None else Rejected(refused, "not valid UTF-8")
    assert undecodable_number(row) == expected


def test_a_caller_name_in_latin1_is_not_refused() -> None:
    assert undecodable_number(ROW.replace(b"Jan de Vries", b"Jos\xe9 Garc\xeda")) is None


_FIELD = st.text(alphabet=st.sampled_from('ab,"\n\r 1+'), max_size=12)


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.lists(_FIELD, min_size=1, max_size=5), max_size=6), cut=st.integers(0))
def test_records_are_what_the_csv_module_reads(rows: list[list[str]], cut: int) -> None:
    """Rows written with every field quoted (as cdr_csv does), split anywhere: the records
    read back are the rows written, and the rest is a prefix of the next one."""
    lines = []
    for fields in rows:
        out = io.StringIO()
        csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n").writerow(fields)
        lines.append(out.getvalue().encode())
    data = b"".join(lines)
    cut = cut % (len(data) + 1)
    records, rest = split_records(data[:cut])
    assert b"\n".join([*records, rest]) == data[:cut] if records else rest == data[:cut]
    for record, line in zip(records, lines, strict=False):
        assert record + b"\n" == line
    assert len(records) == sum(1 for n in range(len(lines)) if sum(map(len, lines[: n + 1])) <= cut)
