"""What an adapter's pure mapping returns for one CDR: an event, a skip, or a refusal.

- `Mapped`: a call-ended event (a dict in the form of contract §2, docs/contract.md, checked by
  `cdrstream.core.event.event_from_object`), ready to be produced keyed by its tenant;
- `Skipped`: a well-formed CDR that is not a call-ended event (a leg that does not face
  the PSTN); ``reason`` is a fixed word, so it can be a metrics label;
- `Rejected`: a CDR that cannot be mapped; ``field`` names where in the CDR the problem is
  (a variable, a column, an AMI header) and ``reason`` says what is wrong. Neither ever
  quotes the CDR's content (it may hold phone numbers), so both can be logged and answered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cdrstream.core.event import InvalidEvent, event_from_object


@dataclass(frozen=True, slots=True)
class Mapped:
    event: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Skipped:
    reason: str


@dataclass(frozen=True, slots=True)
class Rejected:
    field: str
    reason: str


Result = Mapped | Skipped | Rejected

#: What the core says of an event (``cdrstream.core.event.REASONS``) -> the event field it
#: is about, so a refusal can name the CDR field that produced it.
_REASON_FIELD = re.compile(r"[a-z_]+:([a-z_]+)")
_WHOLE_EVENT_REASONS = {
    "ended_before_started": "ended_at",
    "answered_out_of_range": "answered_at",
    "bad_duration": "duration",
    "bad_tenant_id": "tenant_id",
    "bad_tenant_region": "tenant_region",
    "bad_direction": "direction",
}

MAX_ID_CHARS = 200
_PRINTABLE_ID = re.compile(r"[\x21-\x7e]{1,200}")


def printable_id(text: str) -> bool:
    """An identifier an adapter may put into an event id: 1-200 visible ASCII characters."""
    return _PRINTABLE_ID.fullmatch(text) is not None


def checked(event: dict[str, Any], source_field: dict[str, str]) -> Result:
    """``event`` when the core accepts it, else a refusal naming the CDR field it came from
    (``source_field`` maps an event field to the adapter's name for it)."""
    try:
        event_from_object(event)
    except InvalidEvent as bad:
        match = _REASON_FIELD.fullmatch(bad.reason)
        event_field = match.group(1) if match else _WHOLE_EVENT_REASONS.get(bad.reason, "")
        field = source_field.get(event_field, event_field or "cdr")
        what = event_field or "content"
        return Rejected(field, f"not acceptable as the event's {what}: {bad.reason}")
    return Mapped(event)
