"""The extension a record shows (contract §3, rule 5).

In order:

1. an inbound call whose ``routed_to`` is given and is not ``extension`` (any case: ``queue``,
   ``ivr``, ``voicemail``, ``conference``, ...) shows ``0``: it was not connected straight to a
   phone extension, even when the event names the extension that finally answered;
2. the event's ``extension`` field, when given;
3. the number on the tenant's side when it is an extension: the caller of an outbound call,
   the callee of an inbound call;
4. otherwise ``0`` (no extension known: e.g. a forwarded PSTN-to-PSTN leg, or an inbound call
   logged with the tenant's DID as callee and nothing else).
"""

from __future__ import annotations

from cdrstream.core.numbers import NormalizedNumber, display_number
from cdrstream.core.record import Direction

NO_EXTENSION = "0"


def record_extension(
    direction: Direction,
    event_extension: str | None,
    routed_to: str | None,
    caller: NormalizedNumber,
    callee: NormalizedNumber,
) -> str:
    """The ``extension`` field of a record (module docstring)."""
    if direction == "inbound" and routed_to and routed_to.strip().lower() != "extension":
        return NO_EXTENSION
    if event_extension:
        return event_extension
    own_side = caller if direction == "outbound" else callee
    if own_side.number_class == "extension":
        return display_number(own_side)
    return NO_EXTENSION
