"""A record as the outside world sees it (contract §4): its fields, once, and who sees what.

:data:`FIELDS` is the one definition of a served record's fields, in order. The JSON
record (:data:`RECORD_FIELDS`, `record_to_dict`), the CSV columns
(``cdrstream.api.csv_export.CSV_COLUMNS``) and the OpenAPI ``Record`` schema
(``cdrstream.api.openapi``) are all derived from it:

- a ``time`` field is UTC RFC 3339 with milliseconds and ``Z`` (``2026-11-25T08:14:03.120Z``)
  in JSON, under its name, and also in the display zone with that zone's offset
  (``2026-11-25T09:14:03.120+01:00``) under ``<name>_local`` when ``local_in_json``; in CSV
  it is always both, ``<name>_utc`` and ``<name>_local``. ``answered_at`` is None when the
  call was not answered;
- every other field is one JSON key and one CSV column of the same name.

:class:`RecordView` is how one reader is shown records: the display zone, and whether its
token's numbers are masked (`cdrstream.core.masking`). Every view of records (the JSON page,
the CSV export, the live tail, and any later one) renders through it. What a masked token is
served of each field is the field's ``when_masked``:

- ``number`` (``source``, ``destination``): masked (`mask_number`);
- ``withheld`` (``source_raw``, ``destination_raw``: the numbers as the PBX wrote them;
  ``call_id``: the PBX's own id, of no use to a partner who may not see the numbers, and
  often made of digits, such as Asterisk's ``1732522443.1187``): ``null`` in JSON, an empty
  field in CSV, their keys and columns kept;
- ``text`` (``extension``, ``disposition``: text the PBX wrote): as it is, unless it holds
  a number (a run of seven digits, `holds_number`): then masked whole like one
  (`mask_text`);
- ``shown``: the record's id (a hash, ours), times, duration, direction: nothing a PBX
  wrote.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass, replace
from typing import Literal

from cdrstream.core.masking import mask_number, mask_text
from cdrstream.core.record import CallRecord
from cdrstream.core.timestamps import format_local, format_utc

FieldKind = Literal["text", "time", "seconds", "direction"]
MaskedAs = Literal["shown", "number", "withheld", "text"]


@dataclass(frozen=True, slots=True)
class RecordField:
    name: str
    attribute: str  # of CallRecord
    kind: FieldKind
    when_masked: MaskedAs
    nullable: bool = False
    local_in_json: bool = False  # a time that JSON also shows in the display zone

    @property
    def json_keys(self) -> tuple[str, ...]:
        return (self.name, f"{self.name}_local") if self.local_in_json else (self.name,)


FIELDS: tuple[RecordField, ...] = (
    RecordField("id", "id", "text", "shown"),
    RecordField("call_id", "call_id", "text", "withheld"),
    RecordField("started_at", "started_at_ms", "time", "shown", local_in_json=True),
    RecordField("answered_at", "answered_at_ms", "time", "shown", nullable=True),
    RecordField("ended_at", "ended_at_ms", "time", "shown"),
    RecordField("duration", "duration", "seconds", "shown"),
    RecordField("source", "source", "text", "number"),
    RecordField("source_raw", "source_raw", "text", "withheld"),
    RecordField("destination", "destination", "text", "number"),
    RecordField("destination_raw", "destination_raw", "text", "withheld"),
    RecordField("extension", "extension", "text", "text"),
    RecordField("direction", "direction", "direction", "shown"),
    RecordField("disposition", "disposition", "text", "text", nullable=True),
)

#: The keys of a JSON record, in order.
RECORD_FIELDS: tuple[str, ...] = tuple(key for f in FIELDS for key in f.json_keys)
_NUMBERS = tuple(f.attribute for f in FIELDS if f.when_masked == "number")
_WITHHELD = tuple(f.attribute for f in FIELDS if f.when_masked == "withheld")
_TEXTS = tuple(f.attribute for f in FIELDS if f.when_masked == "text")
_WITHHELD_KEYS = tuple(f.name for f in FIELDS if f.when_masked == "withheld")


def record_to_dict(record: CallRecord, display_tz: zoneinfo.ZoneInfo) -> dict[str, object]:
    """The record's public fields, in `RECORD_FIELDS` order, as they are stored (numbers in
    full): for the operator's tools. What a token is served goes through `RecordView`."""
    out: dict[str, object] = {}
    for f in FIELDS:
        value = getattr(record, f.attribute)
        if f.kind == "time":
            out[f.name] = None if value is None else format_utc(value)
            if f.local_in_json:
                out[f"{f.name}_local"] = None if value is None else format_local(value, display_tz)
        else:
            out[f.name] = value
    return out


@dataclass(frozen=True, slots=True)
class RecordView:
    """How one reader is shown records (module docstring). ``masked_numbers`` has no
    default: whoever shows records to a token says which it is."""

    display_tz: zoneinfo.ZoneInfo
    masked_numbers: bool

    def served(self, record: CallRecord) -> CallRecord:
        """The record as this reader may see it: for a masked reader its numbers masked, its
        withheld fields blank and its texts masked where they hold a number."""
        if not self.masked_numbers:
            return record
        changes: dict[str, object] = {name: mask_number(getattr(record, name)) for name in _NUMBERS}
        changes.update(dict.fromkeys(_WITHHELD, ""))
        for name in _TEXTS:
            value = getattr(record, name)
            changes[name] = None if value is None else mask_text(value)
        return replace(record, **changes)  # type: ignore[arg-type]

    def served_number(self, number: str) -> str:
        """A ``number`` field's value as this reader may see it (masked or not); for views
        that render field by field, such as the CSV export's caches."""
        return mask_number(number) if self.masked_numbers else number

    def served_text(self, text: str) -> str:
        """A ``text`` field's value as this reader may see it (masked where it holds a
        number, for a masked reader)."""
        return mask_text(text) if self.masked_numbers else text

    def served_withheld(self, value: str) -> str:
        """A ``withheld`` field's value as this reader may see it: ``""`` when withheld."""
        return "" if self.masked_numbers else value

    def to_dict(self, record: CallRecord) -> dict[str, object]:
        """The JSON record this reader is served; withheld fields are ``None``."""
        out = record_to_dict(self.served(record), self.display_tz)
        if self.masked_numbers:
            out.update(dict.fromkeys(_WITHHELD_KEYS))
        return out
