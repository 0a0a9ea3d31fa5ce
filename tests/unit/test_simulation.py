"""The call simulator: deterministic, realistic, and exercising every rule."""

from __future__ import annotations

import random
from collections import Counter

import orjson
import pytest

from cdrstream.core.event import decode_event
from cdrstream.core.numbers import normalize_number
from cdrstream.core.outcome import Policy, decide
from cdrstream.simulation.calls import generate_events, tenant_region, valid_event

NOW = 1_795_594_443_120
HOUR = 3_600_000
POLICY = Policy(retention_ms=30 * 86_400_000)
TENANTS = [f"tenant-{i}" for i in range(12)]


def _events(seed: int = 5, count: int = 4000, **kwargs: object) -> list[tuple[str, bytes]]:
    return list(
        generate_events(random.Random(seed), tenants=TENANTS, now_ms=NOW, count=count, **kwargs)  # type: ignore[arg-type]
    )


def test_deterministic_for_a_seed_and_different_for_another() -> None:
    assert _events(1, 500) == _events(1, 500)
    assert _events(1, 500) != _events(2, 500)


def test_yields_exactly_count_events_keyed_by_tenant() -> None:
    items = _events(count=777)
    assert len(items) == 777
    assert {key for key, _ in items} <= set(TENANTS)


def test_every_outcome_but_duplicate_and_expired_appears() -> None:
    outcomes = Counter(decide(value, NOW, POLICY).outcome for _, value in _events())
    assert set(outcomes) == {
        "stored",
        "hidden_internal",
        "hidden_emergency",
        "hidden_social_value",
        "invalid",
    }
    assert outcomes["stored"] > 0.8 * 4000
    assert 10 <= outcomes["invalid"] <= 90  # 1% malformed by default


def test_malformed_ratio_is_respected_and_only_malformed_events_are_invalid() -> None:
    none = Counter(
        decide(v, NOW, POLICY).outcome for _, v in _events(count=2000, malformed_ratio=0)
    )
    assert none["invalid"] == 0
    many = Counter(
        decide(v, NOW, POLICY).outcome for _, v in _events(count=2000, malformed_ratio=0.5)
    )
    assert 850 <= many["invalid"] <= 1150


def test_invalid_reasons_cover_the_malformed_kinds() -> None:
    reasons = Counter(
        d.reason
        for _, v in _events(count=3000, malformed_ratio=0.3)
        if (d := decide(v, NOW, POLICY)).outcome == "invalid"
    )
    families = {str(reason).split(":")[0] for reason in reasons}
    assert {
        "not_json",
        "not_object",
        "missing_field",
        "bad_timestamp",
        "ended_before_started",
        "bad_direction",
        "bad_tenant_id",
        "bad_duration",
        "bad_type",
    } <= families


def test_times_lie_in_the_window_and_calls_are_consistent() -> None:
    for _, value in _events(count=3000, malformed_ratio=0):
        event = decode_event(value)
        assert NOW - HOUR <= event.started_at_ms <= NOW
        assert event.started_at_ms <= event.ended_at_ms <= NOW
        if event.answered_at_ms is not None:
            assert event.started_at_ms <= event.answered_at_ms <= event.ended_at_ms


def test_spread_controls_the_window() -> None:
    for _, value in _events(count=300, malformed_ratio=0, spread_ms=60_000):
        assert NOW - 60_000 <= decode_event(value).started_at_ms <= NOW


def test_retries_repeat_event_ids_and_updates_reuse_call_ids() -> None:
    values = [v for _, v in _events(count=4000, malformed_ratio=0)]
    by_event: Counter[str] = Counter()
    calls: dict[str, set[bytes]] = {}
    for value in values:
        event = orjson.loads(value)
        by_event[event["event_id"]] += 1
        calls.setdefault(f"{event['tenant_id']}/{event['call_id']}", set()).add(value)
    assert sum(1 for n in by_event.values() if n > 1) >= 30  # ~2% retries
    updated = [bodies for bodies in calls.values() if len(bodies) > 1]
    assert len(updated) >= 15  # ~1% corrected CDRs with a new event id
    for bodies in updated:
        assert len({orjson.loads(b)["event_id"] for b in bodies}) == len(bodies)


def test_number_forms_and_directions_are_varied() -> None:
    callers: set[str] = set()
    callees: set[str] = set()
    directions: Counter[object] = Counter()
    for _, value in _events(count=3000, malformed_ratio=0):
        event = orjson.loads(value)
        callers.add(event["caller"])
        callees.add(event["callee"])
        directions[event.get("direction")] += 1
    texts = callers | callees
    for marker in ("tel:", "sip:", "phone-context=", '" <sip:', "#31#", "(0)", "anonymous"):
        assert any(marker in t for t in texts), marker
    assert any(t.startswith("00") for t in texts)
    assert any(t.isdigit() and len(t) == 3 for t in texts)  # extensions
    assert {"112", "999", "116000"} & texts
    assert directions[None] > 300  # absent on ~20%
    assert {"in", "OUT", "local"} & set(directions)


def test_numbers_of_stored_records_are_e164_or_extensions() -> None:
    for _, value in _events(count=2000, malformed_ratio=0):
        decision = decide(value, NOW, POLICY)
        if decision.record is None:
            continue
        for shown in (decision.record.source, decision.record.destination):
            assert shown == "anonymous" or shown.startswith("+") or shown.isdigit(), shown


@pytest.mark.parametrize("tenant", ["acme", "globex", "initech"])
def test_valid_event_is_a_stored_pstn_call(tenant: str) -> None:
    rng = random.Random(9)
    for _ in range(50):
        event = valid_event(rng, tenant, NOW)
        decision = decide(orjson.dumps(event), NOW, POLICY)
        assert decision.outcome == "stored", event
        assert decision.record is not None
        assert decision.record.direction in ("inbound", "outbound")
        region = tenant_region(tenant)
        pstn_side = event["callee"] if decision.record.direction == "outbound" else event["caller"]
        number = normalize_number(pstn_side, event.get("tenant_region", "NL").upper())
        assert number.number_class in ("pstn", "withheld"), (region, event)


def test_valid_event_overrides() -> None:
    event = valid_event(random.Random(1), "acme", NOW, call_id="fixed", duration=None)
    assert event["call_id"] == "fixed" and event["duration"] is None
    assert event["tenant_id"] == "acme"


def test_tenant_regions_are_stable_and_spread() -> None:
    regions = {tenant_region(f"t{i}") for i in range(40)}
    assert regions == {"NL", "BE", "DE", "GB"}
    assert tenant_region("acme") == tenant_region("acme")


def test_needs_a_tenant() -> None:
    with pytest.raises(ValueError):
        list(generate_events(random.Random(1), tenants=[], now_ms=NOW, count=1))
