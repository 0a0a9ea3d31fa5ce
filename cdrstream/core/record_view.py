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
the CSV export, and any later one) renders through it, so a masked token is served masked
numbers wherever it reads: its ``number`` fields are masked, and its ``raw_number`` fields
are withheld (``null`` in JSON, an empty field in CSV), their keys and columns kept.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass, replace
from typing import Literal

from cdrstream.core.masking import mask_number
from cdrstream.core.record import CallRecord
from cdrstream.core.timestamps import format_local, format_utc

FieldKind = Literal["text", "time", "seconds", "number", "raw_number", "direction"]


@dataclass(frozen=True, slots=True)
class RecordField:
    name: str
    attribute: str  # of CallRecord
    kind: FieldKind
    nullable: bool = False
    local_in_json: bool = False  # a time that JSON also shows in the display zone

    @property
    def json_keys(self) -> tuple[str, ...]:
        return (self.name, f"{self.name}_local") if self.local_in_json else (self.name,)


FIELDS: tuple[RecordField, ...] = (
    RecordField("id", "id", "text"),
    RecordField("call_id", "call_id", "text"),
    RecordField("started_at", "started_at_ms", "time", local_in_json=True),
    RecordField("answered_at", "answered_at_ms", "time", nullable=True),
    RecordField("ended_at", "ended_at_ms", "time"),
    RecordField("duration", "duration", "seconds"),
    RecordField("source", "source", "number"),
    RecordField("source_raw", "source_raw", "raw_number"),
    RecordField("destination", "destination", "number"),
    RecordField("destination_raw", "destination_raw", "raw_number"),
    RecordField("extension", "extension", "text"),
    RecordField("direction", "direction", "direction"),
    RecordField("disposition", "disposition", "text", nullable=True),
)

#: The keys of a JSON record, in order.
RECORD_FIELDS: tuple[str, ...] = tuple(key for f in FIELDS for key in f.json_keys)
_NUMBERS = tuple(f.attribute for f in FIELDS if f.kind == "number")
_RAW_NUMBERS = tuple(f.attribute for f in FIELDS if f.kind == "raw_number")
_WITHHELD_KEYS = tuple(f.name for f in FIELDS if f.kind == "raw_number")


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
        """The record as this reader may see it: for a masked reader its numbers masked and
        its raw numbers blank (withheld)."""
        if not self.masked_numbers:
            return record
        changes = {name: self.served_number(getattr(record, name)) for name in _NUMBERS}
        for name in _RAW_NUMBERS:
            changes[name] = self.served_raw_number(getattr(record, name))
        return replace(record, **changes)  # type: ignore[arg-type]

    def served_number(self, number: str) -> str:
        """A ``number`` field's value as this reader may see it (masked or not); for views
        that render field by field, such as the CSV export's caches."""
        return mask_number(number) if self.masked_numbers else number

    def served_raw_number(self, raw: str) -> str:
        """A ``raw_number`` field's value as this reader may see it: ``""`` when withheld."""
        return "" if self.masked_numbers else raw

    def to_dict(self, record: CallRecord) -> dict[str, object]:
        """The JSON record this reader is served; withheld fields are ``None``."""
        out = record_to_dict(self.served(record), self.display_tz)
        if self.masked_numbers:
            out.update(dict.fromkeys(_WITHHELD_KEYS))
        return out
