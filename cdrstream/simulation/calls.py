"""Realistic call-ended events (contract §2) for `cdrstream generate`, tests and benchmarks.

`generate_events` yields ``(tenant id, JSON bytes)`` pairs. Deterministic for a given ``rng``
seed: every random choice comes from ``rng``; the pools of phone numbers and each tenant's
profile (region, DIDs, extensions) come from fixed seeds, so they are the same in every run.

A tenant's region is derived from its id (NL, BE, DE or GB); its events carry
``tenant_region`` (NL tenants only half of the time: NL is the default region), so the
events decide the same way without a tenants file. No tenant is given an outside-line
prefix (the pipeline would need the tenants file for that); emergency calls dialled through
a ``0``/``9`` outside line (``0112``, ``9999``) still appear.

Calls are the PBX's trunk legs, as a carrier-facing CDR shows them: an inbound call's callee
is the DID that was dialled (the extension or service it reached is in ``extension`` and
``routed_to``), an outbound call's caller is the number the tenant presents (one of its
DIDs, or withheld when the user hides it; the extension that dialled is in ``extension``).

The mix: inbound calls (from PSTN numbers of the tenant's and other countries, some
withheld; to one of the tenant's DIDs; routed to an extension, queue, IVR, voicemail or
conference), outbound calls (dialled in every PBX form: national,
E.164, ``00``-international, own country code without ``+``, ``+31 (0)20``, ``tel:``/``sip:``
URIs, ``phone-context``, name-addr, CLIR prefixes), internal calls, forwarded PSTN-to-PSTN
legs, calls to emergency numbers and to 116 numbers. ``direction`` is absent on ~20% of the
events, given in mixed PBX words and case otherwise. Times are RFC 3339 in the tenant's zone,
UTC ``Z`` or epoch milliseconds. About 2% of the events are producer retries (the same bytes
again), about 1% a second event for an earlier call with changed content, and
``malformed_ratio`` of them are broken (not JSON, not an object, missing or mistyped fields,
bad timestamps, ``ended_at`` before ``started_at``, unknown direction, bad tenant id, invalid
UTF-8). ``started_at`` lies in ``[now_ms - spread_ms, now_ms]`` and ``ended_at <= now_ms``.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import phonenumbers
from phonenumbers import PhoneNumberFormat

from cdrstream.core.timestamps import format_local, format_utc

TENANT_REGIONS = ("NL", "BE", "DE", "GB")
ZONES = {
    "NL": "Europe/Amsterdam",
    "BE": "Europe/Brussels",
    "DE": "Europe/Berlin",
    "GB": "Europe/London",
}
PBX_HOST = "pbx.example"

# (national significant prefix, random digits after it): ranges libphonenumber calls valid.
_NUMBER_PATTERNS: dict[str, tuple[tuple[str, int], ...]] = {
    "NL": (("20", 7), ("10", 7), ("30", 7), ("70", 7), ("6", 8)),
    "BE": (("2", 7), ("3", 7), ("9", 7), ("47", 7), ("49", 7)),
    "DE": (("30", 8), ("40", 8), ("89", 8), ("151", 8), ("170", 8)),
    "GB": (("20", 8), ("161", 7), ("74", 8), ("79", 8)),
    "FR": (("1", 8), ("6", 8)),
    "ES": (("91", 7), ("6", 8)),
    "IT": (("06", 8), ("3", 9)),
    "US": (("212", 7), ("415", 7)),
}
_FOREIGN_REGIONS = ("NL", "BE", "DE", "GB", "FR", "ES", "IT", "US")
_POOL_SIZE = 96

_EMERGENCY_DIALS: dict[str, tuple[str, ...]] = {
    "NL": ("112", "+31112", "0112", "0031112", "#31#112"),
    "BE": ("112", "100", "101", "0112", "+32112"),
    "DE": ("112", "110", "0110", "+49110", "0049112"),
    "GB": ("999", "112", "9999", "141999", "+44999"),
}
_SOCIAL_VALUE_DIALS = (
    "116000",
    "116111",
    "116123",
    "116117",
    "+32116000",
    "0049116117",
    "+31116123",
    "tel:116006",
)
_WITHHELD = ("anonymous", "Anonymous", "restricted", "unknown", "private", "withheld", "")
_WITHHELD_URI = '"Anonymous" <sip:anonymous@anonymous.invalid>'
_HIDDEN_BY_USER = ("anonymous", "Anonymous", "restricted", _WITHHELD_URI)
_INBOUND_WORDS = ("inbound", "in", "incoming", "INBOUND", "Inbound", "IN", "Incoming")
_OUTBOUND_WORDS = ("outbound", "out", "outgoing", "OUTBOUND", "Outbound", "OUT", "Outgoing")
_INTERNAL_WORDS = ("internal", "local", "INTERNAL", "Local")
_SERVICES = ("queue", "ivr", "voicemail", "conference")
_NAMES = ("Reception", "Sales", "Support", "Jan de Vries", "Anna Müller", "O'Brien, Pat")
_DISPOSITIONS = ("answered", "no_answer", "busy", "failed", "cancelled")
_DISPOSITION_CUM = tuple(itertools.accumulate((70, 15, 7, 5, 3)))
_ASTERISK_DISPOSITIONS = {
    "answered": "ANSWERED",
    "no_answer": "NO ANSWER",
    "busy": "BUSY",
    "failed": "FAILED",
    "cancelled": "CANCEL",
}
_FOREIGN_DIALLED_FORMS = ("e164", "intl00", "tel", "sip", "named")
_DIALLED_FORMS = (
    *_FOREIGN_DIALLED_FORMS,
    *("national", "national", "national_spaced", "own_code", "plus_zero", "context", "clir"),
)
_KINDS = ("inbound", "outbound", "internal", "forwarded", "emergency", "social_value")
_KIND_CUM = tuple(itertools.accumulate((440, 420, 80, 20, 15, 10)))


@dataclass(frozen=True, slots=True)
class _Number:
    """A valid PSTN number and the pieces its written forms are made of."""

    region: str
    e164: str
    code: str
    nsn: str  # national significant number
    national: str  # national dialling digits, e.g. 0201234567
    national_spaced: str  # libphonenumber's national format, e.g. 020 123 4567


@dataclass(frozen=True, slots=True)
class _Tenant:
    tenant_id: str
    region: str
    zone: ZoneInfo
    dids: tuple[_Number, ...]
    extensions: tuple[str, ...]


def _seed(*parts: str) -> int:
    return int.from_bytes(hashlib.blake2b("\x00".join(parts).encode(), digest_size=8).digest())


def _random_number(rng: random.Random, region: str) -> _Number:
    code = phonenumbers.country_code_for_region(region)
    for _ in range(1000):
        prefix, length = rng.choice(_NUMBER_PATTERNS[region])
        digits = prefix + "".join(rng.choice("0123456789") for _ in range(length))
        number = phonenumbers.parse(f"+{code}{digits}")
        if phonenumbers.is_valid_number(number):
            spaced = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
            return _Number(
                region,
                phonenumbers.format_number(number, PhoneNumberFormat.E164),
                str(code),
                phonenumbers.national_significant_number(number),
                "".join(ch for ch in spaced if ch.isdigit()),
                spaced,
            )
    raise RuntimeError(f"no valid number found for {region}")  # pragma: no cover


@lru_cache(maxsize=1)
def _pools() -> dict[str, tuple[_Number, ...]]:
    """The PSTN numbers calls come from and go to: fixed per region, so caches warm up as
    they do on a real platform where customers call the same numbers again."""
    rng = random.Random(_seed("cdrstream-number-pools"))
    return {
        region: tuple(_random_number(rng, region) for _ in range(_POOL_SIZE))
        for region in _FOREIGN_REGIONS
    }


@lru_cache(maxsize=4096)
def _tenant(tenant_id: str) -> _Tenant:
    rng = random.Random(_seed("cdrstream-tenant", tenant_id))
    region = TENANT_REGIONS[_seed("cdrstream-region", tenant_id) % len(TENANT_REGIONS)]
    dids = tuple(_random_number(rng, region) for _ in range(rng.randint(1, 3)))
    first = rng.choice((200, 300, 400, 500))
    extensions = tuple(str(first + i) for i in range(1, rng.randint(4, 40)))
    return _Tenant(tenant_id, region, ZoneInfo(ZONES[region]), dids, extensions)


def tenant_region(tenant_id: str) -> str:
    """The region the simulator gives ``tenant_id`` (NL, BE, DE or GB)."""
    return _tenant(tenant_id).region


# --- how a PBX writes numbers ---------------------------------------------------------------


def _dialled(rng: random.Random, number: _Number, region: str) -> str:
    """``number`` as a PBX in ``region`` logs it when an extension dials it."""
    forms = (
        _DIALLED_FORMS
        if number.region == region and number.national.startswith("0")
        else _FOREIGN_DIALLED_FORMS
    )
    form = rng.choice(forms)
    e164, code, nsn = number.e164, number.code, number.nsn
    if form == "e164":
        return e164
    if form == "intl00":
        return f"00{code}{nsn}"
    if form == "tel":
        return f"tel:+{code}-{nsn[:2]}-{nsn[2:5]}-{nsn[5:]}"
    if form == "sip":
        return f"sip:{e164}@{PBX_HOST};user=phone"
    if form == "named":
        return f'"{rng.choice(_NAMES)}" <sip:{e164}@{PBX_HOST}>'
    if form == "national":
        return number.national
    if form == "national_spaced":
        return number.national_spaced
    if form == "own_code":
        return f"{code}{nsn}"
    if form == "plus_zero":
        return f"+{code} (0){number.national_spaced[1:]}"
    if form == "context":
        return f"sip:{number.national};phone-context=+{code}@{PBX_HOST}"
    return rng.choice(("#31#", "*31#")) + number.national  # clir


def _presented(rng: random.Random, number: _Number, region: str) -> str:
    """``number`` as the network presents an incoming caller (mostly E.164)."""
    roll = rng.random()
    if roll < 0.6:
        return number.e164
    if roll < 0.75 and number.region == region:
        return number.national
    if roll < 0.85:
        return f"00{number.code}{number.nsn}"
    if roll < 0.95:
        return f"sip:{number.e164}@{PBX_HOST};user=phone"
    return f'"{rng.choice(_NAMES)}" <sip:{number.e164}@{PBX_HOST}>'


def _extension_form(rng: random.Random, extension: str) -> str:
    roll = rng.random()
    if roll < 0.75:
        return extension
    if roll < 0.9:
        return f"sip:{extension}@{PBX_HOST}"
    return f'"{rng.choice(_NAMES)}" <sip:{extension}@{PBX_HOST}>'


def _external(rng: random.Random, region: str) -> _Number:
    pools = _pools()
    pool_region = region if rng.random() < 0.8 else rng.choice(_FOREIGN_REGIONS)
    return rng.choice(pools[pool_region])


# --- events --------------------------------------------------------------------------------


def _time_writer(rng: random.Random, zone: ZoneInfo) -> tuple[Callable[[int], str | int], int]:
    """How one event writes its times (one form per event), and the resolution in ms that
    form keeps (1000 for whole seconds: the times are then drawn in whole seconds, so
    nothing is truncated and started <= answered <= ended <= now holds as written)."""
    roll = rng.random()
    if roll < 0.5:
        digits = rng.choice((0, 3, 3, 6))
        return (lambda ms: format_local(ms, zone, digits)), 1000 if digits == 0 else 1
    if roll < 0.75:
        if rng.random() < 0.7:
            return format_utc, 1
        return (lambda ms: format_utc(ms)[:-1] + "000Z"), 1
    return (lambda ms: ms), 1


def _new_id(rng: random.Random, prefix: str, bits: int) -> str:
    return f"{prefix}{rng.getrandbits(bits):0{bits // 4}x}"


def _call(
    rng: random.Random, tenant: _Tenant, kind: str, now_ms: int, spread_ms: int
) -> dict[str, Any]:
    region = tenant.region
    extension = rng.choice(tenant.extensions)
    event: dict[str, Any] = {
        "event_id": _new_id(rng, "ev-", 96),
        "tenant_id": tenant.tenant_id,
        "call_id": _new_id(rng, "call-", 80),
    }
    direction_words: tuple[str, ...]
    if kind == "inbound":
        caller_number = _external(rng, region)
        roll = rng.random()
        if roll < 0.05:
            caller = rng.choice(_WITHHELD)
        elif roll < 0.07:
            caller = _WITHHELD_URI
        else:
            caller = _presented(rng, caller_number, region)
        routed_to = "extension" if rng.random() < 0.7 else rng.choice(_SERVICES)
        did = rng.choice(tenant.dids)  # the trunk leg's callee: the DID that was dialled
        callee = did.e164 if rng.random() < 0.7 else _dialled(rng, did, region)
        event["routed_to"] = routed_to
        if routed_to == "extension" or rng.random() < 0.3:  # a service's answering agent
            event["extension"] = extension
        direction_words = _INBOUND_WORDS
    elif kind == "internal":
        other = rng.choice(tenant.extensions)
        caller, callee = _extension_form(rng, extension), _extension_form(rng, other)
        direction_words = _INTERNAL_WORDS
    else:
        # The trunk leg's caller is what the tenant presents: one of its DIDs, or nothing
        # when the user hides the number; the extension that dialled is in `extension`.
        if rng.random() < 0.06:
            caller = rng.choice(_HIDDEN_BY_USER)
        else:
            caller = _presented(rng, rng.choice(tenant.dids), region)
        if kind == "emergency":
            callee = rng.choice(_EMERGENCY_DIALS[region])
        elif kind == "social_value":
            callee = rng.choice(_SOCIAL_VALUE_DIALS)
        elif kind == "forwarded":  # an inbound call forwarded to a PSTN number
            caller = _presented(rng, _external(rng, region), region)
            callee = _dialled(rng, _external(rng, region), region)
        else:
            callee = _dialled(rng, _external(rng, region), region)
        if kind != "forwarded":  # a forwarded leg was placed by the PBX, not by a phone
            event["extension"] = extension
        direction_words = _OUTBOUND_WORDS
    event["caller"] = caller
    event["callee"] = callee
    if rng.random() < 0.8:
        event["direction"] = rng.choice(direction_words)
    if region != "NL" or rng.random() < 0.5:
        event["tenant_region"] = region if rng.random() < 0.9 else region.lower()
    _set_times(rng, event, tenant.zone, now_ms, spread_ms)
    return event


def _set_times(
    rng: random.Random, event: dict[str, Any], zone: ZoneInfo, now_ms: int, spread_ms: int
) -> None:
    write, step = _time_writer(rng, zone)
    started = now_ms - rng.randint(0, max(0, spread_ms))
    started += -started % step  # up to a whole step: stays inside the window
    if started > now_ms:  # no whole second in the window: keep milliseconds
        write, step, started = format_utc, 1, started - step
    room = now_ms - started  # ended_at stays <= now_ms
    room -= room % step
    ring = min(room, rng.randint(1, 30) * 1000)
    disposition = rng.choices(_DISPOSITIONS, cum_weights=_DISPOSITION_CUM)[0]
    answered = disposition == "answered"
    talk = min(room - ring, int(rng.expovariate(1 / 120_000))) if answered else 0
    talk -= talk % step
    ended = started + ring + talk
    event["started_at"] = write(started)
    event["ended_at"] = write(ended)
    if answered:
        event["answered_at"] = write(started + ring)
        if rng.random() < 0.7:
            event["duration"] = talk // 1000
    elif rng.random() < 0.3:
        event["answered_at"] = None
    if rng.random() < 0.9:
        event["disposition"] = (
            disposition if rng.random() < 0.8 else _ASTERISK_DISPOSITIONS[disposition]
        )


def valid_event(
    rng: random.Random, tenant_id: str, now_ms: int, **overrides: Any
) -> dict[str, Any]:
    """One valid PSTN event (inbound or outbound) of ``tenant_id`` that started within the last
    hour before ``now_ms``; ``overrides`` replace fields (a None value becomes JSON null)."""
    kind = "inbound" if rng.random() < 0.5 else "outbound"
    event = _call(rng, _tenant(tenant_id), kind, now_ms, 3_600_000)
    event.update(overrides)
    return event


def _changed(rng: random.Random, event: dict[str, Any]) -> dict[str, Any]:
    """A second event for the same call with changed content (a corrected CDR)."""
    changed = dict(event, event_id=_new_id(rng, "ev-", 96))
    if "answered_at" in changed and changed["answered_at"] is not None:
        changed["duration"] = int(changed.get("duration") or 0) + rng.randint(1, 5)
        changed["disposition"] = "answered"
    else:
        changed["disposition"] = rng.choice(("no_answer", "busy", "failed"))
    if "extension" in changed and rng.random() < 0.5:
        changed["extension"] = str(changed["extension"]) + "0"
    return changed


def _malformed(rng: random.Random, tenant: _Tenant, now_ms: int, spread_ms: int) -> bytes:
    event = _call(rng, tenant, rng.choice(("inbound", "outbound")), now_ms, spread_ms)
    kind = rng.randrange(12)
    if kind == 0:
        data = orjson.dumps(event)
        return data[: rng.randint(0, len(data) - 1)]  # truncated: not JSON
    if kind == 1:
        return rng.choice((b"", b"\x00\x01garbage", b"call ended", b"{'single': 'quotes'}"))
    if kind == 2:
        return rng.choice((b"[1, 2, 3]", b'"just a string"', b"42", b"null"))
    if kind == 3:
        del event[rng.choice(("event_id", "tenant_id", "call_id", "started_at", "ended_at"))]
    elif kind == 4:
        del event[rng.choice(("caller", "callee"))]
    elif kind == 5:
        event[rng.choice(("started_at", "ended_at"))] = rng.choice(
            ("yesterday", "2026-13-45T25:61:00Z", "2026-11-25T09:14:03", 1.5e20, True, 1_764_058)
        )
    elif kind == 6:
        event["ended_at"], event["started_at"] = now_ms - spread_ms - 60_000, now_ms
        event.pop("answered_at", None)
    elif kind == 7:
        event["direction"] = rng.choice(("sideways", "transfer", "both"))
    elif kind == 8:
        event["tenant_id"] = rng.choice(("bad tenant!", "", "x" * 65, "tenant/1"))
    elif kind == 9:
        event["duration"] = rng.choice((-5, "42", 1.5, [1]))
    elif kind == 10:
        event[rng.choice(("caller", "callee", "event_id"))] = rng.choice(
            ([1, 2], {"number": "+31201234567"}, 3.14, False)
        )
    else:
        return b'{"event_id": "\xff\xfe", "tenant_id": "' + tenant.tenant_id.encode() + b'"}'
    return orjson.dumps(event)


def generate_events(
    rng: random.Random,
    *,
    tenants: Sequence[str],
    now_ms: int,
    count: int,
    malformed_ratio: float = 0.01,
    spread_ms: int = 3_600_000,
) -> Iterator[tuple[str, bytes]]:
    """``count`` (tenant id, event JSON) pairs: the mix of the module docstring."""
    if not tenants:
        raise ValueError("generate_events needs at least one tenant")
    profiles = [_tenant(t) for t in tenants]
    recent: deque[tuple[str, bytes, dict[str, Any]]] = deque(maxlen=256)
    for _ in range(count):
        roll = rng.random()
        if roll < malformed_ratio:
            tenant = rng.choice(profiles)
            yield tenant.tenant_id, _malformed(rng, tenant, now_ms, spread_ms)
            continue
        roll = rng.random()
        if recent and roll < 0.02:  # a producer retry: the very same event again
            key, value, _ = rng.choice(recent)
            yield key, value
            continue
        if recent and roll < 0.03:  # a second event for a known call, content changed
            key, _, event = rng.choice(recent)
            event = _changed(rng, event)
        else:
            tenant = rng.choice(profiles)
            kind = rng.choices(_KINDS, cum_weights=_KIND_CUM)[0]
            key, event = tenant.tenant_id, _call(rng, tenant, kind, now_ms, spread_ms)
        value = orjson.dumps(event)
        recent.append((key, value, event))
        yield key, value
