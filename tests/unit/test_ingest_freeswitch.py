"""FreeSWITCH mod_json_cdr -> call-ended events: the pure mapping, on CDRs shaped as
``switch_ivr_generate_json_cdr`` writes them (signalwire/freeswitch ``src/switch_ivr.c``) with
the channel variables FreeSWITCH sets (``switch_channel_set_timestamps``, mod_sofia), and the
post encodings of ``mod_json_cdr.c``."""

from __future__ import annotations

import base64
import random
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdrstream.core.event import decode_event
from cdrstream.core.outcome import Policy, decide
from cdrstream.ingest.freeswitch_cdr import (
    FreeswitchConfig,
    decode_post,
    disposition_of,
    freeswitch_event,
    is_b_leg,
    pstn_basis,
)
from cdrstream.ingest.results import Mapped, Rejected, Skipped
from cdrstream.simulation.calls import generate_events
from cdrstream.simulation.freeswitch_cdrs import freeswitch_legs, freeswitch_post

CONFIG = FreeswitchConfig()
NOW = 1_795_594_443_120
POLICY = Policy(retention_ms=30 * 86_400_000)
T0 = 1_795_590_000  # epoch seconds of the samples' calls
A_UUID = "8f6c1e2a-3b4d-4c5e-9f60-718293a4b5c6"
B_UUID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


def profile(number: str, destination: str, leg_uuid: str, chan: str, **extra: Any) -> dict:
    return {
        "username": number,
        "dialplan": "XML",
        "caller_id_name": number,
        "ani": number,
        "aniii": "",
        "caller_id_number": number,
        "network_addr": "192.0.2.1",
        "rdnis": "",
        "destination_number": destination,
        "uuid": leg_uuid,
        "source": "mod_sofia",
        "context": "public",
        "chan_name": chan,
        **extra,
    }


def leg(
    *,
    uuid: str = A_UUID,
    direction: str = "inbound",
    profile_name: str = "external",
    caller: str = "+31612345678",
    callee: str = "+31201234567",
    start: int = T0,
    answer: int | None = T0 + 7,
    end: int = T0 + 127,
    cause: str = "NORMAL_CLEARING",
    apps: tuple[str, ...] = ("answer", "bridge"),
    callflow: list[dict] | None = None,
    **variables: str,
) -> dict[str, Any]:
    """One leg's CDR as mod_json_cdr posts it."""
    answered = answer or 0
    v = {
        "direction": direction,
        "uuid": uuid,
        "session_id": "17",
        "sip_from_user": caller,
        "sip_req_user": callee,
        "sip_to_user": callee,
        "channel_name": f"sofia/{profile_name}/{caller}@192.0.2.1",
        "sofia_profile_name": profile_name,
        "call_uuid": uuid,
        "hangup_cause": cause,
        "hangup_cause_q850": "16",
        "start_stamp": "2026-11-25 09:00:00",
        "start_epoch": str(start),
        "start_uepoch": str(start * 1_000_000 + 385_581),
        "answer_epoch": str(answered),
        "answer_uepoch": str(answered * 1_000_000 + 285_587 if answered else 0),
        "end_epoch": str(end),
        "end_uepoch": str(end * 1_000_000 + 205_563),
        "duration": str(end - start),
        "billsec": str(end - answered if answered else 0),
        "cdrstream_tenant": "acme",
        **variables,
    }
    entries = callflow or [
        {
            "dialplan": "XML",
            "profile_index": "1",
            "caller_profile": profile(caller, callee, uuid, v["channel_name"]),
            "times": {"created_time": v["start_uepoch"], "hangup_time": v["end_uepoch"]},
        }
    ]
    return {
        "core-uuid": "63e2315b-d538-4dfa-9ed5-af73ba6210b6",
        "switchname": "pbx1",
        "channel_data": {"state": "CS_REPORTING", "direction": direction, "state_number": "11"},
        "callStats": {"audio": {"inbound": {"mos": 4.5}}},
        "variables": v,
        "app_log": {"applications": [{"app_name": a, "app_data": ""} for a in apps]},
        "callflow": entries,
    }


def bridged_to(extension: str, caller: str = "+31612345678", **extra: Any) -> list[dict]:
    """A callflow entry of an inbound leg that was bridged to ``extension``."""
    b_profile = profile(caller, extension, B_UUID, f"sofia/internal/{extension}@pbx")
    return [
        {
            "profile_index": "1",
            "caller_profile": {
                **profile(caller, "+31201234567", A_UUID, "sofia/external/x"),
                "originatee": {"originatee_caller_profiles": [b_profile]},
                **extra,
            },
        }
    ]


def event_of(document: dict, config: FreeswitchConfig = CONFIG) -> dict:
    result = freeswitch_event(document, config)
    assert isinstance(result, Mapped), result
    return result.event


def record_of(event: dict) -> Any:
    decision = decide(orjson.dumps(event), NOW, POLICY)
    return decision


# --- the samples --------------------------------------------------------------------------


def test_inbound_call_answered_by_an_extension() -> None:
    event = event_of(leg(callflow=bridged_to("201"), bridge_uuid=B_UUID))
    assert event == {
        "event_id": f"fs:{A_UUID}:a",
        "tenant_id": "acme",
        "call_id": A_UUID,
        "started_at": T0 * 1000 + 385,
        "answered_at": (T0 + 7) * 1000 + 285,
        "ended_at": (T0 + 127) * 1000 + 205,
        "duration": 120,
        "caller": "+31612345678",
        "callee": "+31201234567",
        "direction": "inbound",
        "disposition": "answered",
        "routed_to": "extension",
        "extension": "201",
    }
    decision = record_of(event)
    assert decision.outcome == "stored"
    assert decision.record.source == "+31612345678"
    assert decision.record.destination == "+31201234567"  # the DID, not the extension
    assert decision.record.extension == "201"


def test_the_leg_that_rings_the_phone_is_not_an_event() -> None:
    b_leg = leg(
        uuid=B_UUID,
        direction="outbound",
        profile_name="internal",
        callee="201",
        callflow=[
            {
                "caller_profile": {
                    **profile("+31612345678", "201", B_UUID, "sofia/internal/201@pbx"),
                    "originator": {"originator_caller_profiles": [profile("x", "y", A_UUID, "")]},
                }
            }
        ],
    )
    assert is_b_leg(b_leg)
    assert freeswitch_event(b_leg, CONFIG) == Skipped("not_pstn_leg")


def outbound_leg(
    caller: str = "+31201234567", callee: str = "0612345678", uuid: str = B_UUID, **variables: str
) -> dict[str, Any]:
    """The carrier leg of a call placed by extension 201, presenting the tenant's DID."""
    phone = profile("201", callee, A_UUID, "sofia/internal/201@pbx")
    return leg(
        uuid=uuid,
        direction="outbound",
        caller=caller,
        callee=callee,
        apps=(),
        callflow=[
            {
                "caller_profile": {
                    **profile(caller, callee, uuid, f"sofia/gateway/carrier/{callee}"),
                    "originator": {"originator_caller_profiles": [phone]},
                }
            }
        ],
        sip_gateway_name="carrier",
        **variables,
    )


def test_outbound_call_through_the_gateway_presents_the_did() -> None:
    event = event_of(outbound_leg(cdrstream_region="NL"))
    assert event["event_id"] == f"fs:{B_UUID}:b"
    assert (event["caller"], event["callee"], event["extension"]) == (
        "+31201234567",
        "0612345678",
        "201",
    )
    assert event["direction"] == "outbound"
    record = record_of(event).record
    assert (record.source, record.destination, record.extension) == (
        "+31201234567",
        "+31612345678",
        "201",
    )


def test_the_phone_leg_of_an_outbound_call_is_skipped() -> None:
    a_leg = leg(profile_name="internal", caller="201", callee="0612345678")
    assert freeswitch_event(a_leg, CONFIG) == Skipped("not_pstn_leg")


@pytest.mark.parametrize(
    ("caller", "variables"),
    [
        ("anonymous", {}),  # the carrier sent "Anonymous" <sip:anonymous@anonymous.invalid>
        ("0000000000", {}),  # FreeSWITCH's default caller id when none came
        ("+31612345678", {"sip_Privacy": "id"}),  # RFC 3323 privacy: mod_sofia hides it
    ],
)
def test_withheld_inbound_callers_are_anonymous(caller: str, variables: dict[str, str]) -> None:
    event = event_of(leg(caller=caller, callflow=bridged_to("201", caller), **variables))
    assert record_of(event).record.source == "anonymous"


def test_a_user_who_hides_the_number_is_withheld_on_the_outbound_leg() -> None:
    event = event_of(outbound_leg(origination_privacy="hide_number"))
    assert event["caller"] == "anonymous"
    assert record_of(event).record.source == "anonymous"


def test_queue_call_shows_no_extension() -> None:
    document = leg(
        callflow=bridged_to("203"),
        apps=("answer", "set", "callcenter"),
        cc_queue="support@acme",
    )
    event = event_of(document)
    assert event["routed_to"] == "queue"
    assert record_of(event).record.extension == "0"


def test_ivr_call_that_never_reached_a_phone() -> None:
    event = event_of(leg(apps=("answer", "ivr", "hangup")))
    assert event["routed_to"] == "ivr"
    assert "extension" not in event
    assert record_of(event).record.extension == "0"


def test_voicemail_call() -> None:
    event = event_of(leg(apps=("answer", "voicemail")))
    assert event["routed_to"] == "voicemail"


def test_transferred_call_keeps_the_did_and_ends_at_the_new_extension() -> None:
    """Blind transfer from 201 to 202: the carrier leg gets a second caller profile (newest
    first); the first one holds the DID the carrier delivered."""
    newest = {
        "profile_index": "2",
        "caller_profile": {
            **profile("+31612345678", "202", A_UUID, "sofia/external/x"),
            "originatee": {
                "originatee_caller_profiles": [profile("+31612345678", "202", "c", "sofia/x")]
            },
        },
    }
    first = bridged_to("201")[0]
    document = leg(callflow=[newest, first], bridge_uuid="c", transfer_history="...")
    event = event_of(document)
    assert (event["callee"], event["extension"]) == ("+31201234567", "202")
    assert event["event_id"] == f"fs:{A_UUID}:a"


def test_call_forwarded_to_a_mobile_is_two_pstn_legs_two_records() -> None:
    inbound = event_of(leg(callflow=bridged_to("0612345678")))
    forwarded = event_of(
        outbound_leg(caller="+31612345678", callee="0687654321", cdrstream_region="NL")
    )
    assert inbound["call_id"] != forwarded["call_id"]
    assert "extension" not in inbound  # a mobile is not an extension
    assert record_of(forwarded).record.destination == "+31687654321"


@pytest.mark.parametrize("number", ["112", "0112", "+31112"])
def test_a_call_to_the_emergency_number_is_an_event_the_rules_hide(number: str) -> None:
    event = event_of(outbound_leg(callee=number))
    assert record_of(event).outcome == "hidden_emergency"


def test_unanswered_legs_carry_the_hangup_cause_as_disposition() -> None:
    event = event_of(leg(answer=None, cause="USER_BUSY", apps=("bridge",)))
    assert (event["disposition"], event["duration"]) == ("busy", 0)
    assert "answered_at" not in event


@pytest.mark.parametrize(
    ("answered", "cause", "disposition"),
    [
        (True, "NORMAL_CLEARING", "answered"),
        (True, "USER_BUSY", "answered"),
        (False, "NORMAL_CLEARING", "no_answer"),
        (False, "NO_ANSWER", "no_answer"),
        (False, "NO_USER_RESPONSE", "no_answer"),
        (False, "USER_BUSY", "busy"),
        (False, "ORIGINATOR_CANCEL", "cancelled"),
        (False, "CALL_REJECTED", "failed"),
        (False, "UNALLOCATED_NUMBER", "failed"),
        (False, None, "failed"),
    ],
)
def test_dispositions(answered: bool, cause: str | None, disposition: str) -> None:
    assert disposition_of(answered, cause) == disposition


def test_callflow_as_an_object_as_older_versions_wrote_it() -> None:
    document = leg()
    document["callflow"] = document["callflow"][0]
    assert event_of(document)["callee"] == "+31201234567"


def test_encode_values_percent_encoded_variables_are_decoded() -> None:
    document = leg(caller="+31612345678")
    document["variables"] = {k: quote(v, safe="") for k, v in document["variables"].items()}
    document["callflow"] = []
    event = event_of(document)
    assert (event["caller"], event["callee"]) == ("+31612345678", "+31201234567")


def test_epoch_seconds_are_used_without_microseconds() -> None:
    document = leg()
    for name in ("start_uepoch", "answer_uepoch", "end_uepoch"):
        del document["variables"][name]
    assert event_of(document)["started_at"] == T0 * 1000


def test_tenant_from_the_configured_variable_then_domain_then_default() -> None:
    assert event_of(leg(cdrstream_tenant="globex"))["tenant_id"] == "globex"
    document = leg(domain_name="initech.example")
    del document["variables"]["cdrstream_tenant"]
    assert event_of(document)["tenant_id"] == "initech.example"
    del document["variables"]["domain_name"]
    assert freeswitch_event(document, CONFIG) == Rejected(
        "variables.cdrstream_tenant",
        "no tenant from the tenant sources (variable, domain, map): set this channel "
        "variable, map the gateway or number in the tenants file, or set a default tenant",
    )
    config = FreeswitchConfig(default_tenant="umbrella")
    assert event_of(document, config)["tenant_id"] == "umbrella"
    custom = FreeswitchConfig(tenant_variable="account_code")
    assert event_of(leg(account_code="hooli"), custom)["tenant_id"] == "hooli"


def test_a_repost_is_the_same_event() -> None:
    document = leg(callflow=bridged_to("201"))
    assert event_of(document) == event_of(orjson.loads(orjson.dumps(document)))


@pytest.mark.parametrize(
    ("variables", "basis"),
    [
        ({"sofia_profile_name": "external"}, "profile"),
        ({"sofia_profile_name": "internal", "sip_gateway_name": "carrier"}, "gateway"),
        ({"sofia_profile_name": "internal", "sip_gateway": "carrier"}, "gateway"),
        ({"sofia_profile_name": "internal"}, None),
        ({"sofia_profile_name": "internal", "cdrstream_pstn": "true"}, "dialplan"),
        ({"sofia_profile_name": "external", "cdrstream_pstn": "false"}, None),
        ({"channel_name": "loopback/201-a"}, None),
    ],
)
def test_leg_selection(variables: dict[str, str], basis: str | None) -> None:
    assert pstn_basis(variables, frozenset({"external"})) == basis


def test_trunk_profiles_are_configurable() -> None:
    document = leg(profile_name="carrier-a")
    assert freeswitch_event(document, CONFIG) == Skipped("not_pstn_leg")
    config = FreeswitchConfig(trunk_profiles=frozenset({"carrier-a", "carrier-b"}))
    assert isinstance(freeswitch_event(document, config), Mapped)


# --- refusals name the field ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d.pop("variables"), "variables"),
        (lambda d: d.__setitem__("variables", []), "variables"),
        (lambda d: (d["variables"].pop("uuid"), d.__setitem__("callflow", [])), "variables.uuid"),
        (
            lambda d: d["variables"].__setitem__("start_uepoch", "yesterday"),
            "variables.start_uepoch",
        ),
        (
            lambda d: [d["variables"].pop(k) for k in ("start_uepoch", "start_epoch")],
            "variables.start_epoch",
        ),
        (
            lambda d: [d["variables"].pop(k) for k in ("end_uepoch", "end_epoch")],
            "variables.end_epoch",
        ),
        (lambda d: d["variables"].__setitem__("billsec", "-3"), "variables.billsec"),
        (lambda d: d["variables"].__setitem__("direction", "sideways"), "variables.direction"),
        (
            lambda d: d["variables"].__setitem__("cdrstream_tenant", "bad tenant!"),
            "variables.cdrstream_tenant",
        ),
        (
            lambda d: d["variables"].__setitem__("end_uepoch", str((T0 - 60) * 1_000_000)),
            "variables.end_epoch",
        ),
        (
            lambda d: (d["variables"].pop("start_uepoch"), d["variables"].update(start_epoch="1")),
            "variables.start_epoch",
        ),
        (
            lambda d: (
                d.__setitem__("callflow", []),
                [d["variables"].pop(k) for k in ("sip_req_user", "sip_to_user")],
            ),
            "callflow.caller_profile.destination_number",
        ),
    ],
)
def test_unreadable_cdrs_are_refused_naming_the_field(change: Any, field: str) -> None:
    document = leg()
    change(document)
    result = freeswitch_event(document, CONFIG)
    assert isinstance(result, Rejected), result
    assert result.field == field
    assert "+316" not in result.reason and "+3120" not in result.reason


# --- the post's encodings ---------------------------------------------------------------------


def test_the_three_encodings_of_mod_json_cdr() -> None:
    document = leg()
    text = orjson.dumps(document)
    assert decode_post("application/json", text) == document
    assert decode_post("", text) == document
    form = b"cdr=" + quote(text.decode(), safe="").encode()
    assert decode_post("application/x-www-form-urlencoded", form) == document
    b64 = b"cdr=" + base64.b64encode(text)
    assert decode_post("application/x-www-form-base64-encoded", b64) == document


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b"{not json"),
        ("application/json", b"[1, 2]"),
        ("application/x-www-form-urlencoded", b"other=1"),
        ("application/x-www-form-urlencoded", b"\xff\xfe"),
        ("application/x-www-form-base64-encoded", b"cdr=!!!"),
        ("application/json", b"x" * 1_048_577),
    ],
)
def test_unreadable_posts_are_refused_naming_cdr(content_type: str, body: bytes) -> None:
    result = decode_post(content_type, body)
    assert isinstance(result, Rejected)
    assert result.field == "cdr"


# --- the simulator's calls survive the trip through FreeSWITCH's CDRs ------------------------


def test_simulated_calls_through_freeswitch_cdrs_are_decided_like_the_originals() -> None:
    rng = random.Random(3)
    items = list(
        generate_events(
            random.Random(5), tenants=[f"t{i}" for i in range(8)], now_ms=NOW, count=2500,
            malformed_ratio=0,
        )
    )  # fmt: skip
    outcomes: set[str] = set()
    for _, value in items:
        original = decide(value, NOW, POLICY)
        mapped = []
        for document in freeswitch_legs(value, rng):
            encode = rng.choice(("false", "true", "base64"))
            post = freeswitch_post(
                document, encode=encode, encode_values=encode == "false" and rng.random() < 0.5
            )
            decoded = decode_post(post.content_type, post.body)
            assert isinstance(decoded, dict)
            result = freeswitch_event(decoded, CONFIG)
            assert not isinstance(result, Rejected), result
            if isinstance(result, Mapped):
                mapped.append(result.event)
        outcomes.add(original.outcome)
        if original.outcome == "hidden_internal":
            assert mapped == []  # no leg of an internal call faces the PSTN
            continue
        assert len(mapped) == 1, orjson.loads(value)
        again = decide(orjson.dumps(mapped[0]), NOW, POLICY)
        assert again.outcome == original.outcome
        if original.record is not None:
            a, b = original.record, again.record
            assert b is not None
            for name in (
                "started_at_ms", "answered_at_ms", "ended_at_ms", "duration", "source",
                "destination", "extension", "direction",
            ):  # fmt: skip
                assert getattr(a, name) == getattr(b, name), (name, orjson.loads(value))
            if a.disposition is not None:
                assert a.disposition == b.disposition
    assert {"stored", "hidden_internal", "hidden_emergency", "hidden_social_value"} <= outcomes


# --- never raises ---------------------------------------------------------------------------

_VARIABLE_NAMES = (
    "uuid", "direction", "sofia_profile_name", "sip_gateway_name", "cdrstream_pstn",
    "cdrstream_tenant", "domain_name", "start_epoch", "start_uepoch", "answer_epoch",
    "answer_uepoch", "end_epoch", "end_uepoch", "billsec", "hangup_cause", "sip_Privacy",
    "origination_privacy", "cc_queue", "cdrstream_extension", "cdrstream_region",
    "sip_req_user", "bridge_uuid",
)  # fmt: skip
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["0", "1795590000", "1795590000123456", "external", "inbound", "outbound",
                     "%2B31201234567", "true", "%", "%zz", "acme", "NORMAL_CLEARING"]),
    _json,
)  # fmt: skip


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    variables=st.dictionaries(st.sampled_from(_VARIABLE_NAMES), _values, max_size=20),
    callflow=_json,
    app_log=_json,
)
def test_the_mapping_never_raises_and_only_maps_acceptable_events(
    variables: dict, callflow: Any, app_log: Any
) -> None:
    document = {"variables": variables, "callflow": callflow, "app_log": app_log}
    result = freeswitch_event(document, CONFIG)
    assert isinstance(result, Mapped | Skipped | Rejected)
    if isinstance(result, Mapped):
        decode_event(orjson.dumps(result.event))  # the worker accepts what is produced


@settings(max_examples=300)
@given(content_type=st.sampled_from(
    ["application/json", "application/x-www-form-urlencoded",
     "application/x-www-form-base64-encoded", "", "text/plain; charset=utf-8"]),
    body=st.binary(max_size=300) | st.builds(lambda b: b"cdr=" + b, st.binary(max_size=100)),
)  # fmt: skip
def test_decoding_a_post_never_raises(content_type: str, body: bytes) -> None:
    result = decode_post(content_type, body)
    assert isinstance(result, dict | Rejected)
