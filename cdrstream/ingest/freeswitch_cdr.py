"""FreeSWITCH ``mod_json_cdr`` posts -> call-ended events (pure; docs/adapters/freeswitch.md).

What FreeSWITCH sends (read in signalwire/freeswitch, ``src/mod/event_handlers/mod_json_cdr/
mod_json_cdr.c`` and ``src/switch_ivr.c`` ``switch_ivr_generate_json_cdr``): one JSON document
per call *leg*, POSTed to ``<url>?uuid=<leg uuid>`` when the leg is reported, with
``core-uuid``, ``switchname``, ``channel_data`` (``direction`` inbound/outbound as the switch
sees the leg), ``callStats``, ``variables`` (every channel variable as a string), ``app_log``
(``applications``: ``app_name``/``app_data``) and ``callflow`` (one entry per caller profile,
newest first; each with ``caller_profile``: ``caller_id_number``, ``destination_number``,
``uuid``, ``chan_name``..., and ``originator``/``originatee`` profiles of the other leg).
Older versions wrote ``callflow`` as an object (repeated key); both forms are read.

The body (`decode_post`), by the module's ``encode`` setting:

- ``false`` (the module's default): the JSON itself, ``Content-Type: application/json``;
- ``true``: ``cdr=`` + the URL-encoded JSON, ``application/x-www-form-urlencoded``;
- ``base64``: ``cdr=`` + the base64 of the JSON (not URL-encoded),
  ``application/x-www-form-base64-encoded``.

Independently, ``encode-values`` (default true) URL-encodes every variable's value; values are
percent-decoded here when they contain ``%`` (never ``+``: FreeSWITCH encodes ``+`` as
``%2B``). With ``encode=true`` *and* ``encode-values=true`` a value holding ``"`` arrives as
a bare quote inside the JSON (FreeSWITCH does not double-encode ``%22``), so that pair can
produce unreadable posts: the adapter's docs recommend ``encode=false``.

**Which legs become events** (`pstn_basis`): only the leg that faces the PSTN. A leg faces
the PSTN when, first match wins:

1. the channel variable ``cdrstream_pstn`` says so (``true``/``false``): the dialplan's word;
2. it went through a SIP gateway: ``sip_gateway_name`` (set by mod_sofia on a leg it
   originates through ``sofia/gateway/<name>/...``) or ``sip_gateway`` (set on an incoming
   call that matched a registered gateway);
3. its Sofia profile (``sofia_profile_name``) is one of the trunk profiles (default
   ``external``, the vanilla configuration's profile for carriers).

Any other leg (a phone's own leg, the B-leg that rings an extension, a loopback) is answered
200 and skipped: an extension-to-extension call has no PSTN leg and so no event. A call
that crosses the PSTN twice (an inbound call forwarded to a mobile) has two PSTN legs and
becomes two events, each its own record, like the forwarded legs of contract §3.

**The event** of a PSTN leg, from its ``variables`` (percent-decoded) and callflow:

- ``event_id`` ``fs:<uuid>:<a|b>`` and ``call_id`` ``<uuid>``: the leg's own uuid (variable
  ``uuid``), and ``b`` when the leg has an originator (mod_json_cdr's own test for a B-leg).
  A re-post of the same CDR is the same event: the store calls it a duplicate.
- ``direction``: the switch's view of a PSTN leg is the tenant's view: ``inbound`` when the
  carrier called in, ``outbound`` when the switch called out (variable ``direction``, else
  ``channel_data.direction``).
- ``caller``/``callee``: ``caller_id_number`` and ``destination_number`` of the leg's first
  caller profile (the last ``callflow`` entry: before any transfer), so an inbound leg keeps
  the caller and the DID the carrier delivered, an outbound leg the presented number and the
  number sent to the carrier; else the variables ``caller_id_number``/``sip_from_user`` and
  ``destination_number``/``sip_req_user``/``sip_to_user``. The caller is withheld
  (``anonymous``) when the carrier asked for privacy (``sip_Privacy`` holds ``id``, which
  makes mod_sofia hide the number) or the dialplan hid it (``origination_privacy`` holds
  ``hide_number``).
- times: ``start_uepoch``/``answer_uepoch``/``end_uepoch`` (microseconds; ``0`` = never
  answered), else the ``*_epoch`` seconds; ``duration`` is ``billsec`` when answered, else 0.
- ``disposition`` from ``hangup_cause`` (`disposition_of`).
- inbound ``routed_to``: ``queue`` when mod_callcenter or mod_fifo had it (``cc_queue``,
  ``fifo_name``, their applications), else ``extension`` when it was bridged to a phone's
  leg, else ``forward`` when only to PSTN legs (a forward to a mobile), else
  ``voicemail``, ``conference`` or ``ivr`` by the applications it ran; ``extension``: the
  channel variable ``cdrstream_extension`` when the dialplan sets it, else, inbound, the
  destination of the newest bridged leg (``originatee``), outbound, the originating phone's
  caller-id number, in both cases only when it looks like an extension (1-6 digits, not
  starting with 0).
- ``tenant_id``: the channel variable named by ``tenant_variable`` (default
  ``cdrstream_tenant``), else ``domain_name``, else the configured default tenant;
  ``tenant_region``: the variable ``cdrstream_region`` when set.

Anything that cannot be read is a `Rejected` naming the variable; the event is then checked
by the core's own decoder, so nothing is produced that the worker would dead-letter.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

import orjson

from cdrstream.ingest.pbx_tenants import PbxTenants
from cdrstream.ingest.results import Rejected, Result, Skipped, checked, printable_id

#: Largest post read, bytes. A CDR with call statistics, SDP and a long app log is 10-40 KiB.
MAX_POST_BYTES = 1_048_576
#: Most variables read from one CDR (a channel has a few hundred).
MAX_VARIABLES = 5_000

FORM = "application/x-www-form-urlencoded"
BASE64_FORM = "application/x-www-form-base64-encoded"

TRUE_WORDS = frozenset({"true", "yes", "on", "1", "t", "y"})
FALSE_WORDS = frozenset({"false", "no", "off", "0", "f", "n"})
_EXTENSION = re.compile(r"[1-9][0-9]{0,5}")
_DIGITS = re.compile(r"[0-9]{1,20}")

#: ``hangup_cause`` of an unanswered leg -> disposition (Q.850 names as FreeSWITCH writes
#: them, ``switch_channel_cause2str``). An answered leg is ``answered`` whatever the cause.
_UNANSWERED_CAUSES: dict[str, str] = {
    "USER_BUSY": "busy",
    "NO_ANSWER": "no_answer",
    "NO_USER_RESPONSE": "no_answer",
    "ALLOTTED_TIMEOUT": "no_answer",
    "ORIGINATOR_CANCEL": "cancelled",
    "LOSE_RACE": "cancelled",
    "PICKED_OFF": "cancelled",
}

_QUEUE_APPS = frozenset({"callcenter", "fifo"})
_IVR_APPS = frozenset({"ivr", "play_and_get_digits", "read", "playback", "say", "phrase"})
_BRIDGE_APPS = frozenset({"bridge", "intercept"})

#: Event field -> the CDR field it is read from, for refusals.
_SOURCE_FIELDS: dict[str, str] = {
    "event_id": "variables.uuid",
    "call_id": "variables.uuid",
    "tenant_id": "variables.cdrstream_tenant",
    "started_at": "variables.start_epoch",
    "answered_at": "variables.answer_epoch",
    "ended_at": "variables.end_epoch",
    "duration": "variables.billsec",
    "caller": "callflow.caller_profile.caller_id_number",
    "callee": "callflow.caller_profile.destination_number",
    "direction": "variables.direction",
    "extension": "variables.cdrstream_extension",
    "tenant_region": "variables.cdrstream_region",
}


@dataclass(frozen=True, slots=True)
class FreeswitchConfig:
    """What the operator configures (`cdrstream.settings`: ``CDRSTREAM_INGEST_*``)."""

    tenant_variable: str = "cdrstream_tenant"
    default_tenant: str = ""
    trunk_profiles: frozenset[str] = field(default_factory=lambda: frozenset({"external"}))
    #: `TENANT_SOURCES` tried in this order (``CDRSTREAM_FREESWITCH_TENANT_SOURCES``).
    tenant_sources: tuple[str, ...] = ("variable", "domain", "map")
    tenants: PbxTenants = field(default_factory=PbxTenants)


#: Where a leg's tenant may come from: the channel variable ``tenant_variable``,
#: ``domain_name``, the tenants file (the leg's gateway in a tenant's ``trunks``, an inbound
#: leg's destination in its ``numbers``).
TENANT_SOURCES = ("variable", "domain", "map")


def decode_post(content_type: str, body: bytes) -> dict[str, Any] | Rejected:
    """The CDR document of one post, in any of the module's three encodings."""
    if len(body) > MAX_POST_BYTES:
        return Rejected("cdr", f"the post is larger than {MAX_POST_BYTES} bytes")
    kind = content_type.split(";", 1)[0].strip().lower()
    text: bytes | str = body
    if kind == BASE64_FORM or (kind != FORM and body[:4] == b"cdr=" and _is_base64(body[4:])):
        try:
            text = base64.b64decode(body[4:] if body[:4] == b"cdr=" else body, validate=True)
        except (binascii.Error, ValueError):
            return Rejected("cdr", "not base64 (encode=base64)")
    elif kind == FORM or body[:4] == b"cdr=":
        try:
            form = body.decode("ascii")
            fields = parse_qsl(form, keep_blank_values=True, max_num_fields=32, strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            return Rejected("cdr", "not a URL-encoded form (encode=true)")
        values = [value for name, value in fields if name == "cdr"]
        if not values:
            return Rejected("cdr", "the form has no 'cdr' field")
        text = values[0]
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError:
        return Rejected("cdr", "not JSON")
    if not isinstance(document, dict):
        return Rejected("cdr", "not a JSON object")
    return document


def _is_base64(data: bytes) -> bool:
    return (
        bool(data)
        and re.fullmatch(rb"[A-Za-z0-9+/]+={0,2}", data) is not None
        and (b"%" not in data)
    )


class _Variables:
    """Read access to ``variables``: strings, percent-decoded, stripped, empty = absent."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self._raw = raw

    def get(self, name: str) -> str | None:
        value = self._raw.get(name)
        if isinstance(value, bool) or value is None:
            return None
        if isinstance(value, int | float):
            value = str(value)
        if not isinstance(value, str):
            return None
        if "%" in value:
            value = unquote(value, errors="replace")
        value = value.strip()
        return value or None


def _profiles(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The callflow entries, newest first (an object in old versions: one entry)."""
    callflow = document.get("callflow")
    if isinstance(callflow, dict):
        callflow = [callflow]
    if not isinstance(callflow, list):
        return []
    return [entry for entry in callflow[:64] if isinstance(entry, dict)]


def _caller_profile(entry: Mapping[str, Any]) -> dict[str, Any]:
    profile = entry.get("caller_profile")
    return profile if isinstance(profile, dict) else {}


def _text(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    if "%" in value:
        value = unquote(value, errors="replace")
    return value.strip() or None


def _other_profiles(profile: Mapping[str, Any], side: str) -> list[dict[str, Any]]:
    """``originator``/``originatee`` caller profiles of one caller profile."""
    holder = profile.get(side)
    if not isinstance(holder, dict):
        return []
    profiles = holder.get(f"{side}_caller_profiles")
    if not isinstance(profiles, list):
        return []
    return [p for p in profiles[:64] if isinstance(p, dict)]


def is_b_leg(document: Mapping[str, Any]) -> bool:
    """mod_json_cdr's own test: a leg with an originator caller profile is a B-leg."""
    return any(_caller_profile(entry).get("originator") for entry in _profiles(document))


def pstn_basis(variables: Mapping[str, Any], trunk_profiles: frozenset[str]) -> str | None:
    """Why this leg faces the PSTN (``dialplan``, ``gateway``, ``profile``), None if it does
    not (module docstring, "Which legs become events")."""
    read = _Variables(variables)
    override = (read.get("cdrstream_pstn") or "").lower()
    if override in TRUE_WORDS:
        return "dialplan"
    if override in FALSE_WORDS:
        return None
    if read.get("sip_gateway_name") or read.get("sip_gateway"):
        return "gateway"
    if read.get("sofia_profile_name") in trunk_profiles:
        return "profile"
    return None


def disposition_of(answered: bool, hangup_cause: str | None) -> str:
    """``answered`` for an answered leg; else by cause: busy, no answer, cancelled by the
    caller (or lost to another phone), anything else (rejected, unallocated, congestion,
    a network failure, a plain hang-up before answer) ``failed``... except
    ``NORMAL_CLEARING`` before answer, which is the far end hanging up unanswered:
    ``no_answer``."""
    if answered:
        return "answered"
    cause = (hangup_cause or "").upper()
    if cause == "NORMAL_CLEARING":
        return "no_answer"
    return _UNANSWERED_CAUSES.get(cause, "failed")


def _epoch_ms(read: _Variables, name: str) -> int | Rejected | None:
    """``<name>_uepoch`` (µs) to ms, else ``<name>_epoch`` (s); None when absent or 0."""
    for suffix, divisor, multiplier in (("_uepoch", 1000, 1), ("_epoch", 1, 1000)):
        text = read.get(name + suffix)
        if text is None:
            continue
        if _DIGITS.fullmatch(text) is None:
            return Rejected(f"variables.{name}{suffix}", "not a whole number")
        value = int(text)
        return value // divisor * multiplier if value else None
    return None


def _applications(document: Mapping[str, Any], read: _Variables) -> set[str]:
    apps: set[str] = set()
    app_log = document.get("app_log")
    entries = app_log.get("applications") if isinstance(app_log, dict) else None
    if isinstance(entries, list):
        for entry in entries[:1000]:
            if isinstance(entry, dict) and isinstance(entry.get("app_name"), str):
                apps.add(entry["app_name"].strip().lower())
    for name in ("last_app", "current_application"):
        value = read.get(name)
        if value:
            apps.add(value.lower())
    return apps


def _routed_to(
    document: Mapping[str, Any], read: _Variables, bridged: bool, forwarded: bool
) -> str | None:
    """``forward`` when the leg was bridged only to PSTN legs (a forward to a mobile, a
    transfer to an outside number before any phone answered): no extension took it."""
    apps = _applications(document, read)
    if read.get("cc_queue") or read.get("fifo_name") or apps & _QUEUE_APPS:
        return "queue"
    if bridged:
        return "extension"
    if forwarded:
        return "forward"
    if apps & _BRIDGE_APPS and read.get("bridge_uuid"):
        return "extension"
    if "voicemail" in apps:
        return "voicemail"
    if "conference" in apps:
        return "conference"
    if apps & _IVR_APPS:
        return "ivr"
    return None


def _extension_like(text: str | None) -> str | None:
    return text if text and _EXTENSION.fullmatch(text) else None


def _withheld(read: _Variables) -> bool:
    privacy = (read.get("sip_Privacy") or "").lower()
    if "id" in re.split(r"[\s;,]+", privacy):
        return True
    return "hide_number" in (read.get("origination_privacy") or "").lower()


def freeswitch_event(document: Mapping[str, Any], config: FreeswitchConfig) -> Result:
    """The call-ended event of one CDR, a skip, or a refusal naming the field (module
    docstring). Never raises."""
    try:
        return _event(document, config)
    except Exception as exc:  # pragma: no cover - a bug; the shell answers 400, not 500
        return Rejected("cdr", f"could not be read ({type(exc).__name__})")


def _event(document: Mapping[str, Any], config: FreeswitchConfig) -> Result:
    raw_variables = document.get("variables")
    if not isinstance(raw_variables, dict):
        return Rejected("variables", "missing, or not an object")
    if len(raw_variables) > MAX_VARIABLES:
        return Rejected("variables", f"more than {MAX_VARIABLES} variables")
    read = _Variables(raw_variables)
    profiles = _profiles(document)
    first = _caller_profile(profiles[-1]) if profiles else {}

    uuid = read.get("uuid") or _text(first.get("uuid"))
    if uuid is None:
        return Rejected("variables.uuid", "missing")
    if not printable_id(uuid):
        return Rejected("variables.uuid", "not 1-200 visible ASCII characters")

    if pstn_basis(raw_variables, config.trunk_profiles) is None:
        return Skipped("not_pstn_leg")

    channel_data = document.get("channel_data")
    word = read.get("direction") or (
        _text(channel_data.get("direction")) if isinstance(channel_data, dict) else None
    )
    direction = (word or _legacy_direction(document, read)).lower()
    if direction not in ("inbound", "outbound"):
        return Rejected("variables.direction", "missing, or not inbound/outbound")

    times: dict[str, int | None] = {}
    for name in ("start", "answer", "end"):
        value = _epoch_ms(read, name)
        if isinstance(value, Rejected):
            return value
        times[name] = value
    if times["start"] is None:
        return Rejected("variables.start_epoch", "missing")
    if times["end"] is None:
        return Rejected("variables.end_epoch", "missing")

    caller, callee = _numbers(first, read)
    if callee is None:
        return Rejected("callflow.caller_profile.destination_number", "missing")

    tenant = _tenant(read, callee if direction == "inbound" else None, config)
    if not tenant:
        sources = ", ".join(config.tenant_sources) or "none"
        return Rejected(
            f"variables.{config.tenant_variable}",
            f"no tenant from the tenant sources ({sources}): set this channel variable, map "
            "the gateway or number in the tenants file, or set a default tenant",
        )

    answered = times["answer"] is not None
    event: dict[str, Any] = {
        "event_id": f"fs:{uuid}:{'b' if is_b_leg(document) else 'a'}",
        "tenant_id": tenant,
        "call_id": uuid,
        "started_at": times["start"],
        "ended_at": times["end"],
        "caller": caller,
        "callee": callee,
        "direction": direction,
        "disposition": disposition_of(answered, read.get("hangup_cause")),
    }
    if answered:
        event["answered_at"] = times["answer"]
        billsec = read.get("billsec")
        if billsec is not None:
            if _DIGITS.fullmatch(billsec) is None:
                return Rejected("variables.billsec", "not a whole number")
            event["duration"] = int(billsec)
    else:
        event["duration"] = 0

    extension = _extension_like(read.get("cdrstream_extension"))
    if direction == "inbound":
        bridged_to = _bridged_destination(profiles, config.trunk_profiles, phones=True)
        forwarded = _bridged_destination(profiles, config.trunk_profiles, phones=False)
        routed_to = _routed_to(document, read, bridged_to is not None, forwarded is not None)
        if routed_to:
            event["routed_to"] = routed_to
        extension = extension or _extension_like(bridged_to)
    else:
        extension = extension or _originating_extension(profiles)
    if extension:
        event["extension"] = extension
    region = read.get("cdrstream_region") or config.tenants.region(tenant)
    if region:
        event["tenant_region"] = region
    return checked(event, {**_SOURCE_FIELDS, "tenant_id": f"variables.{config.tenant_variable}"})


def _legacy_direction(document: Mapping[str, Any], read: _Variables) -> str:
    """The direction of a leg from a FreeSWITCH that wrote neither ``variables.direction``
    nor ``channel_data.direction`` (e.g. 1.6, 2018): ``outbound`` when the switch created
    the leg (``is_outbound``, or it has an originator: a B-leg), else ``inbound``."""
    if (read.get("is_outbound") or "").lower() in TRUE_WORDS or is_b_leg(document):
        return "outbound"
    return "inbound"


def _numbers(first: Mapping[str, Any], read: _Variables) -> tuple[str, str | None]:
    """(caller, callee) of the leg. On a leg FreeSWITCH originated itself (``originate``:
    dialers, click-to-call, callbacks) it flips the caller id (``channel_cid_flipped``): the
    caller profile then shows the called number as the caller, and the number presented to
    the called party is ``origination_caller_id_number`` (else the effective caller id)."""
    caller = _text(first.get("caller_id_number"))
    if (read.get("channel_cid_flipped") or "").lower() in TRUE_WORDS:
        caller = (
            read.get("origination_caller_id_number")
            or read.get("effective_caller_id_number")
            or _text(first.get("ani"))
        )
    caller = caller or read.get("caller_id_number") or read.get("sip_from_user") or ""
    if _withheld(read):
        caller = "anonymous"
    callee = _text(first.get("destination_number"))
    callee = (
        callee
        or read.get("destination_number")
        or read.get("sip_req_user")
        or read.get("sip_to_user")
    )
    return caller, callee


def _tenant(read: _Variables, inbound_callee: str | None, config: FreeswitchConfig) -> str:
    """The first tenant the configured sources name, else the default tenant ("": none)."""
    for source in config.tenant_sources:
        found: str | None = None
        if source == "variable":
            found = read.get(config.tenant_variable)
        elif source == "domain":
            found = read.get("domain_name")
        elif source == "map":
            found = config.tenants.by_trunk(
                read.get("sip_gateway_name") or "", read.get("sip_gateway") or ""
            )
            if found is None and inbound_callee:
                found = config.tenants.by_number(inbound_callee)
        if found:
            return found
    return config.default_tenant


def _bridged_destination(
    profiles: list[dict[str, Any]], trunk_profiles: frozenset[str], *, phones: bool
) -> str | None:
    """The destination number of the newest leg this leg was bridged to (``originatee``):
    of a phone's leg (``phones``), else of a PSTN leg (`is_pstn_channel`)."""
    for entry in profiles:  # newest first
        for other in _other_profiles(_caller_profile(entry), "originatee"):
            number = _text(other.get("destination_number"))
            if number and is_pstn_channel(_text(other.get("chan_name")), trunk_profiles) != phones:
                return number
    return None


def is_pstn_channel(chan_name: str | None, trunk_profiles: frozenset[str]) -> bool:
    """A channel name of a PSTN leg: ``sofia/gateway/<gateway>/<number>`` or
    ``sofia/<trunk profile>/<number>`` (a gateway leg is named after its profile)."""
    parts = (chan_name or "").split("/")
    return (
        len(parts) >= 3
        and parts[0] == "sofia"
        and (parts[1] == "gateway" or parts[1] in trunk_profiles)
    )


def _originating_extension(profiles: list[dict[str, Any]]) -> str | None:
    """The caller-id number (else user name) of the phone that originated this leg."""
    for entry in profiles:
        for other in _other_profiles(_caller_profile(entry), "originator"):
            for key in ("caller_id_number", "username"):
                found = _extension_like(_text(other.get(key)))
                if found:
                    return found
    return None
