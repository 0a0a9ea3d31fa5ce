"""Hostile call-ended events: each one must be classified invalid; none may stop the worker."""

from __future__ import annotations

import random

import orjson

KINDS = (
    "random_bytes",
    "invalid_utf8",
    "wrong_types",
    "huge_string",
    "deep_nesting",
    "huge_number",
    "duplicate_keys",
    "not_an_object",
)


def _base(rng: random.Random, tenant: str) -> dict[str, object]:
    return {
        "event_id": f"h-{rng.getrandbits(64):x}",
        "tenant_id": tenant,
        "call_id": f"hc-{rng.getrandbits(64):x}",
        "started_at": "2026-11-25T09:14:03.120+01:00",
        "ended_at": "2026-11-25T09:15:03.120+01:00",
        "caller": "+31201234567",
        "callee": "201",
    }


def hostile_event(rng: random.Random, kind: str, tenant: str) -> bytes:
    base = _base(rng, tenant)
    if kind == "random_bytes":
        return rng.randbytes(rng.randrange(0, 300))
    if kind == "invalid_utf8":
        return orjson.dumps(base).replace(b'"caller"', b'"call\xff\xfeer"', 1)
    if kind == "wrong_types":
        field = rng.choice(["event_id", "tenant_id", "call_id", "started_at", "caller"])
        # (null is not hostile: a null caller is a withheld caller, see core/event.py)
        base[field] = rng.choice([[1, 2], {"x": 1}, True, 3.5])
        return orjson.dumps(base)
    if kind == "huge_string":
        base["caller"] = "9" * 900_000
        return orjson.dumps(base)
    if kind == "deep_nesting":
        depth = rng.randrange(1_100, 5_000)
        return b'{"event_id":' + b"[" * depth + b"]" * depth + b"}"
    if kind == "huge_number":
        return orjson.dumps(base).replace(
            b'"2026-11-25T09:14:03.120+01:00"', b"1" + b"0" * rng.randrange(20, 400), 1
        )
    if kind == "duplicate_keys":
        text = orjson.dumps(base)
        return text[:-1] + b',"tenant_id":{"nested":"no"}}'
    return rng.choice([b"null", b"[]", b'"a string"', b"42", b"", b"{}"])


def hostile_events(rng: random.Random, count: int, *, tenant: str) -> list[tuple[str, bytes]]:
    """``count`` hostile events of every kind (huge strings are few: each is ~1 MB)."""
    events = []
    for n in range(count):
        kind = KINDS[n % len(KINDS)]
        if kind == "huge_string" and n > 8 * len(KINDS):
            kind = "wrong_types"
        events.append((tenant, hostile_event(rng, kind, tenant)))
    return events
