"""``Master.csv`` as CSV records, not lines (pure; the file tailer's reading rules).

``cdr_csv`` quotes every string field and doubles a quote inside one, but writes the
content raw: a ``userfield`` (or ``lastdata``) holding a line break spans two lines of the
file and is still one record. `split_records` ends a record at a line break outside
quotes. A line whose quotes never close (not something cdr_csv writes) must not swallow the
rows after it: once the open record is longer than `MAX_RECORD_BYTES`, or when no more is
coming (``final``: the end of an import, or the file quiet while following), its first line
is taken as a record on its own (it will be refused as invalid CSV) and the rest is read
again.

`one_line` turns a record into the single line `asterisk_cdr.parse_csv_line` reads (a line
break inside quotes becomes a space: no field the events are made of holds one), and
`undecodable_number` refuses a record whose ``src`` or ``dst`` is not UTF-8: the mapping
would read those bytes as Latin-1 and store a garbled number. Other fields keep that
fallback (a caller name in Latin-1 is still a call).
"""

from __future__ import annotations

import csv

from cdrstream.ingest.results import Rejected

#: The longest record the tailer waits to see closed (cdr_csv writes well under 2 KiB).
MAX_RECORD_BYTES = 8192
#: cdr_csv's first columns, in every layout: accountcode, src, dst.
NUMBER_COLUMNS = {1: "src", 2: "dst"}


def _record_end(data: bytes, *, final: bool) -> int:
    """Index of the line break that ends the first record of ``data``, or -1 (unfinished)."""
    first = data.find(b"\n")
    at, quotes = 0, 0
    while True:
        newline = data.find(b"\n", at)
        if newline < 0:
            break
        quotes += data.count(b'"', at, newline)
        if quotes % 2 == 0:
            return newline
        if newline >= MAX_RECORD_BYTES:
            return first
        at = newline + 1
    return first if final else -1


def split_records(data: bytes, *, final: bool = False) -> tuple[list[bytes], bytes]:
    """The complete records at the start of ``data`` (without their final line break) and
    what is left (a record not finished yet)."""
    records: list[bytes] = []
    while True:
        end = _record_end(data, final=final)
        if end < 0:
            return records, data
        records.append(data[:end])
        data = data[end + 1 :]


def one_line(record: bytes) -> bytes:
    """The record with every line break inside quotes replaced by a space."""
    if b"\n" not in record and b"\r" not in record.rstrip(b"\r"):
        return record
    parts = record.rstrip(b"\r").split(b'"')
    parts[1::2] = [
        p.replace(b"\r\n", b" ").replace(b"\n", b" ").replace(b"\r", b" ") for p in parts[1::2]
    ]
    return b'"'.join(parts)


def undecodable_number(record: bytes) -> Rejected | None:
    """A refusal naming ``src`` or ``dst`` when that field's bytes are not UTF-8."""
    try:
        record.decode("utf-8")
        return None
    except UnicodeDecodeError:
        pass
    try:
        [fields] = csv.reader([one_line(record).decode("latin-1")], strict=True)
    except (csv.Error, ValueError):
        return None  # not CSV at all: the mapping says so
    for index, name in NUMBER_COLUMNS.items():
        if index < len(fields):
            try:
                fields[index].encode("latin-1").decode("utf-8")
            except UnicodeDecodeError:
                return Rejected(name, "not valid UTF-8")
    return None
