"""What FreeSWITCH's ``mod_json_cdr`` would post for a simulated call (``cdrstream generate
--as freeswitch``, tests).

`freeswitch_legs` turns one call-ended event of `cdrstream.simulation.calls` into the CDR
documents of the call's legs, in the shape ``switch_ivr_generate_json_cdr`` writes
(``core-uuid``, ``switchname``, ``channel_data``, ``variables``, ``app_log``, ``callflow``):

- inbound: the carrier's A-leg on the ``external`` profile (sometimes through a registered
  gateway, ``sip_gateway``), and, when it was bridged to a phone, the B-leg that rang it
  (``internal`` profile, an originator profile: not a PSTN leg);
- outbound (also calls to emergency and 116 numbers, forwarded legs): the phone's A-leg on
  the ``internal`` profile (not a PSTN leg) and the B-leg through the carrier's gateway
  (``sip_gateway_name``), whose caller is the presented number;
- internal: two ``internal`` legs, neither a PSTN leg.

The mapping of `cdrstream.ingest.freeswitch_cdr` applied to these legs gives an event the
rules decide like the original (same outcome; same numbers, times, duration, direction and
extension on the record): a unit test checks it on thousands of simulated calls. Leg uuids
derive from the call id, so a re-sent event is a re-post of the same CDR.

`freeswitch_post` encodes a document as the module's ``encode`` option would
(``false``: JSON; ``true``: ``cdr=`` + URL-encoded; ``base64``), optionally with
``encode-values`` (every variable's value URL-encoded, as ``switch_url_encode`` does).
"""

from __future__ import annotations

import base64
import hashlib
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from cdrstream.core.direction import DirectionWord, derive_direction
from cdrstream.core.event import CallEvent, InvalidEvent, decode_event
from cdrstream.core.numbers import normalize_number
from cdrstream.simulation.calls import tenant_region

CORE_UUID = "5d6f3a2e-8b1c-4f7e-9a0d-3c2b1a0f9e8d"
SWITCHNAME = "pbx1.example"
GATEWAY = "carrier"
_URL_UNSAFE = '\r\n #%&+:;<=>?@[\\]^`{|}"'  # switch_utils.h SWITCH_URL_UNSAFE
_ALWAYS_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in _URL_UNSAFE)
_CAUSES = {
    "answered": "NORMAL_CLEARING",
    "no_answer": "NO_ANSWER",
    "busy": "USER_BUSY",
    "failed": "CALL_REJECTED",
    "cancelled": "ORIGINATOR_CANCEL",
}
_SERVICE_APPS = {
    "queue": ("answer", "callcenter"),
    "ivr": ("answer", "ivr"),
    "voicemail": ("answer", "voicemail"),
    "conference": ("answer", "conference"),
}


@dataclass(frozen=True, slots=True)
class FreeswitchPost:
    uuid: str
    content_type: str
    body: bytes


def _leg_uuid(tenant_id: str, call_id: str, leg: str) -> str:
    digest = hashlib.blake2b(f"{tenant_id}\x00{call_id}\x00{leg}".encode(), digest_size=16)
    return str(uuid.UUID(bytes=digest.digest(), version=4))


def _plain_number(text: str) -> tuple[str, str]:
    """(caller-id name, number) as FreeSWITCH keeps them: a name-addr is split."""
    text = text.strip()
    if text.endswith(">") and "<" in text:
        name, _, inner = text.rpartition("<")
        return name.strip().strip('"'), inner[:-1]
    return "", text


def _effective_direction(event: CallEvent) -> DirectionWord:
    region = event.tenant_region or tenant_region(event.tenant_id)
    caller = normalize_number(event.caller, region)
    callee = normalize_number(event.callee, region)
    if caller.number_class == "extension" and callee.number_class == "extension":
        return "internal"
    return event.direction or derive_direction(
        caller.number_class, callee.number_class, event.routed_to
    )


def _times(event: CallEvent, rng: random.Random) -> dict[str, str]:
    def micros(ms: int | None) -> int:
        return 0 if ms is None else ms * 1000 + rng.randrange(1000)

    start, answer, end = (
        micros(event.started_at_ms),
        micros(event.answered_at_ms),
        micros(event.ended_at_ms),
    )
    variables = {
        "start_uepoch": str(start),
        "answer_uepoch": str(answer),
        "end_uepoch": str(end),
        "start_epoch": str(start // 1_000_000),
        "answer_epoch": str(answer // 1_000_000),
        "end_epoch": str(end // 1_000_000),
        "duration": str((end - start) // 1_000_000),
        "billsec": str(event.duration if answer else 0),
        "hangup_cause": _CAUSES.get(
            event.disposition or "", "NORMAL_CLEARING" if answer else "NO_ANSWER"
        ),
    }
    return variables


def _profile(
    number_name: str, number: str, destination: str, leg_uuid: str, chan_name: str, context: str
) -> dict[str, Any]:
    return {
        "username": number,
        "dialplan": "XML",
        "caller_id_name": number_name or number,
        "ani": number,
        "aniii": "",
        "caller_id_number": number,
        "network_addr": "192.0.2.10",
        "rdnis": "",
        "destination_number": destination,
        "uuid": leg_uuid,
        "source": "mod_sofia",
        "context": context,
        "chan_name": chan_name,
    }


def _document(
    leg_uuid: str,
    direction: str,
    variables: dict[str, str],
    profile: dict[str, Any],
    apps: tuple[str, ...],
) -> dict[str, Any]:
    return {
        "core-uuid": CORE_UUID,
        "switchname": SWITCHNAME,
        "channel_data": {
            "state": "CS_REPORTING",
            "direction": direction,
            "state_number": "11",
            "flags": "0=1;1=1;3=1;38=1;39=1;41=1",
            "caps": "1=1;2=1;3=1;4=1;5=1;6=1",
        },
        "variables": {"uuid": leg_uuid, "direction": direction, **variables},
        "app_log": {
            "applications": [{"app_name": app, "app_data": ""} for app in apps],
        },
        "callflow": [
            {
                "dialplan": "XML",
                "profile_index": "1",
                "caller_profile": profile,
                "times": {
                    "created_time": variables.get("start_uepoch", "0"),
                    "answered_time": variables.get("answer_uepoch", "0"),
                    "hangup_time": variables.get("end_uepoch", "0"),
                },
            }
        ],
    }


def freeswitch_legs(
    event_json: bytes | Mapping[str, Any],
    rng: random.Random,
    *,
    tenant_variable: str = "cdrstream_tenant",
) -> list[dict[str, Any]]:
    """The CDR documents of every leg of the call ``event_json`` describes (module
    docstring); an empty list for an event that is not valid."""
    value = event_json if isinstance(event_json, bytes) else orjson.dumps(event_json)
    try:
        event = decode_event(value)
    except InvalidEvent:
        return []
    direction = _effective_direction(event)
    tenant = event.tenant_id
    common: dict[str, str] = _times(event, rng)
    if rng.random() < 0.8:
        common[tenant_variable] = tenant
    else:
        common["domain_name"] = tenant
    if event.tenant_region:
        common["cdrstream_region"] = event.tenant_region
    a_uuid = _leg_uuid(tenant, event.call_id, "a")
    b_uuid = _leg_uuid(tenant, event.call_id, "b")
    caller_name, caller = _plain_number(event.caller)
    _, callee = _plain_number(event.callee)
    caller = caller or "0000000000"  # SWITCH_DEFAULT_CLID_NUMBER

    if direction == "internal":
        a_vars = {**common, "sofia_profile_name": "internal", "sip_from_user": caller}
        a_profile = _profile(caller_name, caller, callee, a_uuid, f"sofia/internal/{caller}",
                             "default")  # fmt: skip
        b_profile = _profile(caller_name, caller, callee, b_uuid, f"sofia/internal/{callee}",
                             "default")  # fmt: skip
        b_profile["originator"] = {"originator_caller_profiles": [a_profile]}
        a_profile = {**a_profile, "originatee": {"originatee_caller_profiles": [b_profile]}}
        b_vars = {**common, "sofia_profile_name": "internal", "call_uuid": a_uuid}
        return [
            _document(a_uuid, "inbound", a_vars, a_profile, ("bridge",)),
            _document(b_uuid, "outbound", b_vars, b_profile, ()),
        ]

    if direction == "inbound":
        a_vars = {**common, "sofia_profile_name": "external", "sip_from_user": caller,
                  "sip_req_user": callee, "sip_to_user": callee}  # fmt: skip
        if rng.random() < 0.3:
            a_vars["sip_gateway"] = GATEWAY
        withheld = normalize_number(
            event.caller, event.tenant_region or tenant_region(tenant)
        ).number_class
        if withheld == "withheld" and rng.random() < 0.5:
            # A carrier that sends the real number with "Privacy: id" (RFC 3323).
            caller = "+31201234567"
            a_vars["sip_Privacy"] = "id"
        a_profile = _profile(caller_name, caller, callee, a_uuid,
                             f"sofia/external/{caller}@192.0.2.1", "public")  # fmt: skip
        routed = event.routed_to or "extension"
        apps = _SERVICE_APPS.get(routed, ("bridge",))
        legs: list[dict[str, Any]] = []
        use_variable = event.extension is not None and rng.random() < 0.5
        if routed == "queue":
            a_vars["cc_queue"] = "support@" + tenant
        if event.extension and (use_variable or routed != "extension"):
            a_vars["cdrstream_extension"] = event.extension
        if routed == "extension" and event.extension and not use_variable:
            b_profile = _profile(caller_name, caller, event.extension, b_uuid,
                                 f"sofia/internal/{event.extension}@pbx", "default")  # fmt: skip
            b_profile["originator"] = {"originator_caller_profiles": [a_profile]}
            a_profile = {**a_profile, "originatee": {"originatee_caller_profiles": [b_profile]}}
            a_vars["bridge_uuid"] = b_uuid
            b_vars = {**common, "sofia_profile_name": "internal", "call_uuid": a_uuid}
            legs.append(_document(b_uuid, "outbound", b_vars, b_profile, ()))
        elif routed == "extension":
            a_vars["bridge_uuid"] = b_uuid
        legs.insert(0, _document(a_uuid, "inbound", a_vars, a_profile, apps))
        return legs

    # outbound: the phone's leg, then the carrier leg through the gateway
    extension = event.extension or "0"
    a_vars = {**common, "sofia_profile_name": "internal", "sip_from_user": extension}
    a_profile = _profile("", extension, callee, a_uuid, f"sofia/internal/{extension}@pbx",
                         "default")  # fmt: skip
    b_vars = {**common, "sofia_profile_name": "external", "sip_gateway_name": GATEWAY,
              "call_uuid": a_uuid}  # fmt: skip
    if normalize_number(event.caller, event.tenant_region or tenant_region(tenant)).number_class \
            == "withheld":  # fmt: skip
        b_vars["origination_privacy"] = "hide_number"
        caller = "+31201234567"  # sent with Privacy: id; the carrier withholds it
    b_profile = _profile(caller_name, caller, callee, b_uuid,
                         f"sofia/gateway/{GATEWAY}/{callee}", "default")  # fmt: skip
    forwarded = event.extension is None
    if forwarded or rng.random() < 0.5:
        if event.extension:
            b_vars["cdrstream_extension"] = event.extension
        originator = _profile("", caller, callee, a_uuid, "sofia/external/x", "public")
    else:
        originator = a_profile
    b_profile["originator"] = {"originator_caller_profiles": [originator]}
    a_profile = {**a_profile, "originatee": {"originatee_caller_profiles": [b_profile]}}
    return [
        _document(a_uuid, "inbound", a_vars, a_profile, ("bridge",)),
        _document(b_uuid, "outbound", b_vars, b_profile, ()),
    ]


def _url_encode(text: str) -> str:
    """``switch_url_encode``: every byte outside ``!``..``~`` or in SWITCH_URL_UNSAFE becomes
    ``%XX`` (an existing ``%XX`` is kept, as FreeSWITCH does)."""
    out = []
    data = text.encode("utf-8")
    i = 0
    while i < len(data):
        ch = chr(data[i])
        if ch in _ALWAYS_SAFE or (ch == "%" and _is_hex(data[i + 1 : i + 3])):
            out.append(ch)
        else:
            out.append(f"%{data[i]:02X}")
        i += 1
    return "".join(out)


def _is_hex(pair: bytes) -> bool:
    return len(pair) == 2 and all(chr(b) in "0123456789ABCDEF" for b in pair)


def freeswitch_post(
    document: Mapping[str, Any], *, encode: str = "false", encode_values: bool = False
) -> FreeswitchPost:
    """The HTTP post mod_json_cdr makes of ``document`` (module docstring)."""
    if encode_values:
        variables = document.get("variables", {})
        document = {
            **document,
            "variables": {k: _url_encode(str(v)) for k, v in variables.items()},
        }
    text = orjson.dumps(document)
    leg_uuid = str(document.get("variables", {}).get("uuid", ""))
    if encode == "true":
        body = b"cdr=" + _url_encode(text.decode()).encode()
        return FreeswitchPost(leg_uuid, "application/x-www-form-urlencoded", body)
    if encode == "base64":
        body = b"cdr=" + base64.b64encode(text)
        return FreeswitchPost(leg_uuid, "application/x-www-form-base64-encoded", body)
    return FreeswitchPost(leg_uuid, "application/json", text)


def broken_post(rng: random.Random) -> FreeswitchPost:
    """A post the receiver must refuse with 400 (for the generator's malformed share)."""
    kind = rng.randrange(5)
    if kind == 0:
        return FreeswitchPost("", "application/json", b'{"variables": {"uuid": ')
    if kind == 1:
        return FreeswitchPost("", "application/json", b'["not", "an", "object"]')
    if kind == 2:
        return FreeswitchPost("", "application/json", b'{"channel_data": {}}')
    if kind == 3:
        body = orjson.dumps(
            {"variables": {"uuid": "x-1", "sofia_profile_name": "external",
                           "direction": "inbound", "start_epoch": "yesterday"}}
        )  # fmt: skip
        return FreeswitchPost("x-1", "application/json", body)
    return FreeswitchPost("", "application/x-www-form-urlencoded", b"other=1")
