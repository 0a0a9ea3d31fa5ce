"""decide(): outcomes, their precedence, direction, extension and the record it builds."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from cdrstream.core.direction import derive_direction
from cdrstream.core.outcome import (
    FUTURE_TOLERANCE_MS,
    OUTCOMES,
    Decision,
    Policy,
    TenantProfile,
    decide,
)
from cdrstream.core.record import CallRecord, record_id

STARTED = 1_795_594_443_120  # 2026-11-25T08:14:03.120Z
NOW = STARTED + 600_000
DAY = 86_400_000
POLICY = Policy(retention_ms=30 * DAY)


def event(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": "ev-1",
        "tenant_id": "acme",
        "call_id": "call-1",
        "started_at": STARTED,
        "answered_at": STARTED + 5_000,
        "ended_at": STARTED + 65_000,
        "caller": "201",
        "callee": "020 123 4567",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None or k in ("caller", "callee")}


def run(now: int = NOW, policy: Policy = POLICY, **changes: Any) -> Decision:
    return decide(orjson.dumps(event(**changes)), now, policy)


def test_outcomes_constant_lists_all_seven_in_order() -> None:
    assert OUTCOMES == (
        "stored",
        "hidden_internal",
        "hidden_emergency",
        "hidden_social_value",
        "expired",
        "duplicate",
        "invalid",
    )


def test_outbound_call_becomes_a_full_record() -> None:
    decision = run(disposition="answered", extension="201")
    assert decision == Decision(
        outcome="stored",
        reason=None,
        record=CallRecord(
            id=record_id("acme", "call-1"),
            tenant_id="acme",
            call_id="call-1",
            started_at_ms=STARTED,
            answered_at_ms=STARTED + 5_000,
            ended_at_ms=STARTED + 65_000,
            duration=60,
            source="201",
            source_raw="201",
            destination="+31201234567",
            destination_raw="020 123 4567",
            extension="201",
            direction="outbound",
            disposition="answered",
        ),
        event_id="ev-1",
        tenant_id="acme",
        call_id="call-1",
    )


def test_record_id_is_stable_for_duplicates_and_updates() -> None:
    first = run()
    retry = run()
    update = run(event_id="ev-2", duration=61, disposition="answered")
    assert first.record is not None and update.record is not None
    assert first == retry
    assert first.record.id == update.record.id == record_id("acme", "call-1")
    assert update.record.duration == 61
    other_tenant = run(tenant_id="globex")
    assert other_tenant.record is not None and other_tenant.record.id != first.record.id


@pytest.mark.parametrize(
    ("caller", "callee", "routed_to", "direction"),
    [
        ("201", "+31201234567", None, "outbound"),
        ("sip:201@pbx.example", "0201234567", None, "outbound"),
        ("+31201234567", "201", None, "inbound"),
        ("anonymous", "201", None, "inbound"),
        ("201", "202", None, "internal"),
        ("201", "*97", None, "internal"),
        ("+31612345678", "+31201234567", "queue", "inbound"),  # caller to the tenant's DID
        ("+31612345678", "+31201234567", None, "outbound"),  # PSTN to PSTN: forwarded leg
        ("anonymous", "+31201234567", "ivr", "inbound"),
    ],
)
def test_direction_is_derived_when_absent(
    caller: str, callee: str, routed_to: str | None, direction: str
) -> None:
    decision = run(caller=caller, callee=callee, routed_to=routed_to)
    if direction == "internal":
        assert decision.outcome == "hidden_internal"
    else:
        assert decision.record is not None
        assert decision.record.direction == direction


def test_derive_direction_table() -> None:
    assert derive_direction("extension", "pstn", None) == "outbound"
    assert derive_direction("extension", "invalid", None) == "outbound"
    assert derive_direction("withheld", "extension", None) == "inbound"
    assert derive_direction("extension", "extension", "queue") == "internal"
    assert derive_direction("pstn", "pstn", "extension") == "inbound"
    assert derive_direction("pstn", "pstn", None) == "outbound"


def test_calls_between_extensions_are_internal_whatever_the_word() -> None:
    for word in ("outbound", "inbound", "IN", "local"):
        assert run(caller="201", callee="202", direction=word).outcome == "hidden_internal"
    assert run(caller="sip:201@pbx.example", callee="*97", direction="out").outcome == (
        "hidden_internal"
    )


def test_the_pbx_word_wins_over_derivation() -> None:
    decision = run(caller="+31612345678", callee="+31201234567", direction="IN")
    assert decision.record is not None and decision.record.direction == "inbound"
    assert run(caller="+31612345678", callee="+31201234567", direction="local").outcome == (
        "hidden_internal"
    )


@pytest.mark.parametrize(
    ("changes", "extension"),
    [
        ({"direction": "inbound", "routed_to": "queue", "extension": "201"}, "0"),
        ({"direction": "inbound", "routed_to": "IVR"}, "0"),
        ({"direction": "inbound", "routed_to": "voicemail", "callee": "201"}, "0"),
        ({"direction": "outbound", "callee": "201"}, "0"),  # the PBX's word is trusted
        ({"direction": "inbound", "routed_to": "conference"}, "0"),
        ({"direction": "inbound", "routed_to": "Extension", "extension": "305"}, "305"),
        ({"direction": "inbound", "callee": "sip:305@pbx.example"}, "305"),
        ({"direction": "inbound", "callee": "+31201234567"}, "0"),  # DID, nothing else known
        ({"direction": "outbound", "routed_to": "queue", "extension": "201"}, "201"),
        ({"direction": "outbound", "caller": "212"}, "212"),
        ({"direction": "outbound", "caller": "+31201234567"}, "0"),
        ({"caller": "+31612345678", "callee": "+31201234567", "extension": "4"}, "4"),
    ],
)
def test_extension_rules(changes: dict[str, Any], extension: str) -> None:
    base = {"caller": "+31612345678", "callee": "+31201234567"}
    decision = run(**{**base, **changes})
    assert decision.record is not None
    assert decision.record.extension == extension


@pytest.mark.parametrize(
    ("callee", "reason"),
    [
        ("112", "emergency 112 (NL), as dialled"),
        ("+31112", "emergency 112 (NL), after international prefix +, country code 31"),
        ("0112", "emergency 112 (NL), after guessed outside line 0"),
        ("911", "emergency 911 (NL), as dialled"),
        ("#31#112", "emergency 112 (NL), as dialled"),
        ("sip:112@pbx.example", "emergency 112 (NL), as dialled"),
        ("+33 15", "emergency 15 (FR), after international prefix +, country code 33"),
        ("0031112", "emergency 112 (NL), after international prefix 00, country code 31"),
        (
            "+31 0 112",
            "emergency 112 (NL), after international prefix +, country code 31, trunk prefix 0",
        ),
        ("9 141 999", "emergency 999 (GB), after guessed outside line 9, presentation code 141"),
    ],
)
def test_calls_to_emergency_numbers_are_hidden_with_the_rule_and_candidate(
    callee: str, reason: str
) -> None:
    region = "GB" if "141" in callee else None
    decision = run(callee=callee, tenant_region=region)
    assert (decision.outcome, decision.reason, decision.record) == (
        "hidden_emergency",
        reason,
        None,
    )
    assert (decision.event_id, decision.tenant_id, decision.call_id) == ("ev-1", "acme", "call-1")


def test_emergency_is_judged_in_the_tenant_region() -> None:
    assert run(callee="999", tenant_region="GB").outcome == "hidden_emergency"
    assert run(callee="999").outcome == "hidden_internal"  # 999 is an extension in NL
    uk = Policy(retention_ms=30 * DAY, tenants={"acme": TenantProfile(region="GB")})
    assert run(policy=uk, callee="999").outcome == "hidden_emergency"
    us = Policy(retention_ms=30 * DAY, default_region="US")
    assert run(policy=us, callee="911").outcome == "hidden_emergency"
    assert run(policy=us, callee="112", tenant_region="NL").outcome == "hidden_emergency"


def test_event_region_wins_over_tenant_region_wins_over_default() -> None:
    policy = Policy(
        retention_ms=30 * DAY, default_region="DE", tenants={"acme": TenantProfile(region="BE")}
    )
    assert _destination(run(policy=policy, callee="02 511 12 34")) == "+3225111234"
    nl = run(policy=policy, callee="020 123 4567", tenant_region="NL")
    assert _destination(nl) == "+31201234567"
    globex = run(policy=policy, tenant_id="globex", callee="030 123456")
    assert _destination(globex) == "+4930123456"


def _destination(decision: Decision) -> str:
    assert decision.record is not None
    return decision.record.destination


def test_outside_line_applies_to_the_dialled_side_only() -> None:
    policy = Policy(
        retention_ms=30 * DAY, tenants={"acme": TenantProfile(region="NL", outside_line="0")}
    )
    out = run(policy=policy, callee="0020 1234567", direction="outbound")
    assert _destination(out) == "+31201234567"
    assert run(policy=policy, callee="0112").outcome == "hidden_emergency"
    # inbound: the callee is the tenant's number as presented, no outside line in it
    inbound = run(policy=policy, caller="+31612345678", callee="0031201234567", direction="in")
    assert _destination(inbound) == "+31201234567"


@pytest.mark.parametrize(
    "callee", ["116000", "116111", "+32116000", "0049116117", "#31#116123", "116 123"]
)
def test_calls_to_116_numbers_are_hidden(callee: str) -> None:
    assert run(callee=callee).outcome == "hidden_social_value"


def test_calls_from_emergency_or_116_numbers_are_not_hidden() -> None:
    decision = run(caller="116123", callee="201", direction="inbound")
    assert decision.outcome == "stored"
    assert decision.record is not None and decision.record.source == "+31116123"


def test_expiry_uses_the_retention_window() -> None:
    assert run(now=STARTED + 30 * DAY).outcome == "stored"
    assert run(now=STARTED + 30 * DAY + 1).outcome == "expired"
    short = Policy(retention_ms=DAY)
    assert run(now=STARTED + DAY + 1, policy=short).outcome == "expired"


def test_events_from_the_far_future_are_invalid() -> None:
    assert run(now=STARTED - FUTURE_TOLERANCE_MS).outcome == "stored"
    decision = run(now=STARTED - FUTURE_TOLERANCE_MS - 1)
    assert (decision.outcome, decision.reason) == ("invalid", "started_in_future")


@pytest.mark.parametrize(
    ("changes", "outcome"),
    [
        # invalid beats everything
        ({"callee": "112", "direction": "sideways"}, "invalid"),
        # internal beats emergency, 116 and expiry
        ({"callee": "112", "direction": "internal"}, "hidden_internal"),
        ({"callee": "202", "started_at": STARTED - 40 * DAY}, "hidden_internal"),
        # emergency beats 116 and expiry
        ({"callee": "112", "started_at": STARTED - 40 * DAY}, "hidden_emergency"),
        # 116 beats expiry
        ({"callee": "116000", "started_at": STARTED - 40 * DAY}, "hidden_social_value"),
        ({"started_at": STARTED - 40 * DAY}, "expired"),
    ],
)
def test_outcome_precedence(changes: dict[str, Any], outcome: str) -> None:
    if "started_at" in changes:
        changes = {**changes, "answered_at": None, "ended_at": changes["started_at"] + 1_000}
    assert run(**changes).outcome == outcome


def test_record_numbers_show_e164_anonymous_or_stripped_raw() -> None:
    decision = run(
        caller='"Anonymous" <sip:anonymous@anonymous.invalid>',
        callee="201",
        direction="inbound",
    )
    assert decision.record is not None
    assert (decision.record.source, decision.record.source_raw) == (
        "anonymous",
        '"Anonymous" <sip:anonymous@anonymous.invalid>',
    )
    # a callee still holding letters once its digits are taken out: only when inbound (the
    # tenant's own side) is it shown as written
    inbound = run(caller="+31612345678", callee="sip:sales@example.com", direction="inbound")
    assert inbound.record is not None
    assert (inbound.record.destination, inbound.record.destination_raw) == (
        "sales",
        "sip:sales@example.com",
    )


@pytest.mark.parametrize(
    "callee",
    ["sip:alice@example.com", "0800-FLOWERS", "020 123 4567 (mobile)", "201 x5", "+", "#31#"],
)
@pytest.mark.parametrize("direction", [None, "outbound"])
def test_a_callee_that_is_not_dialable_is_never_shown(callee: str, direction: str | None) -> None:
    decision = run(callee=callee, direction=direction)
    assert (decision.outcome, decision.reason, decision.record) == (
        "invalid",
        "bad_number:callee",
        None,
    )
    # hiding rules still come first: an emergency number with text after it is hidden
    assert run(callee="112 (alarm)", direction=direction).outcome == "hidden_emergency"


def test_hidden_116_calls_name_the_candidate() -> None:
    decision = run(callee="141116000", tenant_region="GB")
    assert (decision.outcome, decision.reason) == (
        "hidden_social_value",
        "social_value 116000 (+44), after presentation code 141",
    )


def test_invalid_decision_keeps_readable_ids() -> None:
    decision = run(direction="both")
    assert decision == Decision("invalid", "bad_direction", None, "ev-1", "acme", "call-1")
    garbage = decide(b"\x00\x01", NOW, POLICY)
    assert garbage == Decision("invalid", "not_json", None, None, None, None)


def test_an_unexpected_failure_is_invalid_internal_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import cdrstream.core.outcome as outcome_module

    def broken(*args: object) -> object:
        raise RuntimeError("bug")

    monkeypatch.setattr(outcome_module, "normalize_number", broken)
    decision = run()
    reason = "internal_error:RuntimeError"  # the type only: a message may quote the event
    assert decision == Decision("invalid", reason, None, "ev-1", "acme", "call-1")
    monkeypatch.setattr(outcome_module, "decode_event", broken)
    assert run() == Decision("invalid", reason, None, None, None, None)


def test_decide_accepts_non_bytes_without_raising() -> None:
    assert decide(None, NOW, POLICY).reason == "not_json"  # type: ignore[arg-type]
    assert decide(bytearray(orjson.dumps(event())), NOW, POLICY).outcome == "stored"
    assert decide(memoryview(orjson.dumps(event())), NOW, POLICY).outcome == "stored"
