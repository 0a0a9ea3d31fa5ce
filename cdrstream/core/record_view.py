"""A record as the outside world sees it (SPEC section 4): field order, time rendering.

``started_at``/``answered_at``/``ended_at`` are UTC RFC 3339 with milliseconds and ``Z``
(``2026-11-25T08:14:03.120Z``), ``answered_at`` is None when the call was not answered;
``started_at_local`` is the same instant in the display zone, with that zone's offset
(``2026-11-25T09:14:03.120+01:00``).
"""

from __future__ import annotations

import zoneinfo

from cdrstream.core.record import CallRecord
from cdrstream.core.timestamps import format_local, format_utc

RECORD_FIELDS: tuple[str, ...] = (
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


def record_to_dict(record: CallRecord, display_tz: zoneinfo.ZoneInfo) -> dict[str, object]:
    """The record's public fields, in `RECORD_FIELDS` order."""
    answered = record.answered_at_ms
    return {
        "id": record.id,
        "call_id": record.call_id,
        "started_at": format_utc(record.started_at_ms),
        "started_at_local": format_local(record.started_at_ms, display_tz),
        "answered_at": None if answered is None else format_utc(answered),
        "ended_at": format_utc(record.ended_at_ms),
        "duration": record.duration,
        "source": record.source,
        "source_raw": record.source_raw,
        "destination": record.destination,
        "destination_raw": record.destination_raw,
        "extension": record.extension,
        "direction": record.direction,
        "disposition": record.disposition,
    }
