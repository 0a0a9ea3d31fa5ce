"""The outcome of one call-ended event (contract §3): `decide` is the whole rule set.

Precedence, first match wins (deterministic, so metrics and DLQ reasons are stable):

1. ``invalid``: the event cannot be decoded or checked (`cdrstream.core.event`), or it
   starts more than a day after ``now_ms`` (``started_in_future``: a clock gone wrong would
   otherwise pin the record on top of every list for years);
2. ``hidden_internal``: the call is internal: both sides are extensions (whatever the PBX's
   word), or the PBX says ``internal``/``local``;
3. ``hidden_emergency``: the callee is an emergency number (`cdrstream.core.emergency`),
   whatever the direction;
4. ``hidden_social_value``: the callee is a ``116xxx`` number;
5. ``invalid`` with reason ``bad_number:callee``: the callee of a call that is not inbound
   still holds letters or symbols once the digits a switch would dial are taken out
   (`cdrstream.core.numbers`: not dialable, e.g. ``0800-FLOWERS``, ``sip:alice@example.com``);
   an inbound call's callee is the tenant's own side (its DID as the network presented it, or
   a dialplan name such as Asterisk's ``s``), not a number anyone dialled;
6. ``expired``: ``started_at`` is older than ``now_ms - retention_ms``;
7. ``stored``: everything else, with its `CallRecord`.

The reason of a hidden emergency or 116 call names the rule and the candidate it matched
(``emergency 112 (NL), after guessed outside line 0``): `cdrstream.core.dialled_digits`.

Hidden calls are hidden whatever their age: the rule that would hide them is the reason
they are not shown. ``duplicate`` is never returned here: the store turns ``stored`` into
``duplicate`` when identical content is already stored.

Numbers are parsed in the event's ``tenant_region``, else the tenant's configured region,
else ``policy.default_region``. The tenant's outside-line prefix applies to the dialled
side only: the callee, unless the PBX says the call is inbound (an inbound callee and every
caller were presented by the network or the PBX, never dialled through the outside line).

Record fields: ``source``/``destination`` are E.164, ``anonymous`` for withheld, else the
dialled text without wrappers (`cdrstream.core.numbers.display_number`); ``*_raw`` keep the
PBX's text as sent; ``extension`` follows `cdrstream.core.extension`; ``direction`` follows
`cdrstream.core.direction`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

from cdrstream.core.clock import DAY_MS
from cdrstream.core.direction import DirectionWord, derive_direction
from cdrstream.core.event import CallEvent, InvalidEvent, decode_event
from cdrstream.core.extension import record_extension
from cdrstream.core.numbers import display_number, normalize_number
from cdrstream.core.record import CallRecord, record_id

Outcome = Literal[
    "stored",
    "hidden_internal",
    "hidden_emergency",
    "hidden_social_value",
    "expired",
    "duplicate",
    "invalid",
]
OUTCOMES: tuple[str, ...] = get_args(Outcome)  # all seven, in that order

FUTURE_TOLERANCE_MS = DAY_MS
UNDIALABLE_CALLEE = "bad_number:callee"  # one of cdrstream.core.event.REASONS


@dataclass(frozen=True, slots=True)
class TenantProfile:
    """What the platform knows about a tenant: where its users dial from, how they reach
    the PSTN (an outside-line prefix such as ``0`` or ``9``, empty when none)."""

    region: str | None = None
    outside_line: str = ""


@dataclass(frozen=True, slots=True)
class Policy:
    retention_ms: int
    default_region: str = "NL"
    tenants: Mapping[str, TenantProfile] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    reason: str | None
    record: CallRecord | None
    event_id: str | None
    tenant_id: str | None
    call_id: str | None


_NO_PROFILE = TenantProfile()


def internal_error_reason(exc: BaseException) -> str:
    """The reason of an event that a bug failed on: ``internal_error:<ExceptionType>``,
    bounded, without the exception's message (it may quote the event's data)."""
    return f"internal_error:{type(exc).__name__}"[:128]


def decide(value: bytes | str, now_ms: int, policy: Policy) -> Decision:
    """The outcome of one raw event value (module docstring). Never raises, on any input:
    an unexpected failure is ``invalid`` with reason ``internal_error:<ExceptionType>``."""
    try:
        event = decode_event(value)
    except InvalidEvent as bad:
        return Decision("invalid", bad.reason, None, bad.event_id, bad.tenant_id, bad.call_id)
    except Exception as exc:
        return Decision("invalid", internal_error_reason(exc), None, None, None, None)
    try:
        return decide_event(event, now_ms, policy)
    except Exception as exc:
        return Decision(
            "invalid",
            internal_error_reason(exc),
            None,
            event.event_id,
            event.tenant_id,
            event.call_id,
        )


def decide_event(event: CallEvent, now_ms: int, policy: Policy) -> Decision:
    """The outcome of an already decoded event (module docstring)."""
    ids = (event.event_id, event.tenant_id, event.call_id)
    if event.started_at_ms > now_ms + FUTURE_TOLERANCE_MS:
        return Decision("invalid", "started_in_future", None, *ids)

    profile = policy.tenants.get(event.tenant_id, _NO_PROFILE)
    region = event.tenant_region or profile.region or policy.default_region
    caller = normalize_number(event.caller, region)
    callee = normalize_number(
        event.callee,
        region,
        "" if event.direction == "inbound" else profile.outside_line,
    )
    if caller.number_class == "extension" and callee.number_class == "extension":
        direction: DirectionWord = "internal"  # whatever the PBX's word: see direction.py
    else:
        direction = event.direction or derive_direction(
            caller.number_class, callee.number_class, event.routed_to
        )
    if direction == "internal":
        return Decision("hidden_internal", None, None, *ids)
    if callee.number_class == "emergency":
        return Decision("hidden_emergency", callee.hidden_by, None, *ids)
    if callee.number_class == "social_value":
        return Decision("hidden_social_value", callee.hidden_by, None, *ids)
    if not callee.dialable and direction != "inbound":
        return Decision("invalid", UNDIALABLE_CALLEE, None, *ids)
    if event.started_at_ms < now_ms - policy.retention_ms:
        return Decision("expired", None, None, *ids)

    record = CallRecord(  # positional: this runs once per stored event
        record_id(event.tenant_id, event.call_id),
        event.tenant_id,
        event.call_id,
        event.started_at_ms,
        event.answered_at_ms,
        event.ended_at_ms,
        event.duration,
        display_number(caller),
        event.caller,
        display_number(callee),
        event.callee,
        record_extension(direction, event.extension, event.routed_to, caller, callee),
        direction,
        event.disposition,
    )
    return Decision("stored", None, record, *ids)
