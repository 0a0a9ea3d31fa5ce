"""Decoding one call-ended event (contract §2) into a `CallEvent`, or a reason it is invalid.

`decode_event` raises `InvalidEvent` whose ``reason`` is one of `REASONS`: a bounded set made of
fixed words and the names in `FIELDS` (never text from the event), so it can be a metrics label.

Choices where the contract is silent:

- ``null`` for a required field counts as missing, except ``caller``/``callee``, where it means
  the same as empty: withheld.
- ``event_id``, ``tenant_id``, ``call_id`` must be strings; ``caller``, ``callee`` and
  ``extension`` may also be JSON integers (``201``, ``31201234567``).
- strings are at most 256 characters (``too_long:<field>``, for numbers ``bad_number:<side>``);
  control characters in ids, numbers and the extension are refused (``bad_value:<field>``,
  ``bad_number:<side>``); the whole event at most 64 KiB (``too_large``).
- an empty ``direction``, ``extension``, ``routed_to``, ``tenant_region`` or ``disposition``
  counts as absent.
- ``duration``: a whole number of seconds >= 0 (an integral float such as ``42.0`` is accepted);
  when absent, ``ended_at - answered_at`` rounded to the nearest second, 0 when unanswered.
- ``disposition``: common PBX spellings map to ``answered``, ``no_answer``, ``busy``,
  ``failed``, ``cancelled`` (Asterisk's ``NO ANSWER``, ``CONGESTION`` -> ``failed``,
  ``canceled``...); other words are kept in lower case when they are at most 32 letters,
  digits, blanks, ``_`` or ``-`` (else dropped);
  when absent, ``answered`` if the call has ``answered_at``, else none.
- ``tenant_region``: an ISO 3166 alpha-2 code libphonenumber knows, any case
  (``bad_tenant_region`` otherwise).
- a number JSON can write but a 64-bit float cannot hold (``1e309``, a 5,000-digit integer)
  is read as infinity, as orjson reads integers beyond 64 bits as floats: in an unknown field
  it is ignored like the field, in a known one the event is refused with that field's usual
  reason (``bad_duration``, ``bad_timestamp:<field>``, ``bad_type:<field>``). Only such an
  event takes the slower standard-library parse (orjson refuses it).
- a known field written twice (``"tenant_id":"t2", ..., "tenant_id":"t3"``) is refused as
  ``duplicate_field:<field>``, whatever the two values: which one the producer meant cannot
  be known. An unknown field written twice is ignored. The check is nearly free: an object
  has at least as many members as commas plus one can separate, so when the commas plus one
  equal the keys orjson kept, no key was repeated; only otherwise (a comma inside a string,
  nested values, a repeated key) the known names written as keys are listed from the bytes
  by one regular expression, and only when one shows twice (or a unicode escape could spell
  one) are the top-level keys counted by the standard library.
"""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple

import orjson
import phonenumbers

from cdrstream.core.direction import DIRECTION_WORDS, DirectionWord, parse_direction_word
from cdrstream.core.timestamps import MAX_MS, MIN_MS, parse_rfc3339, parse_timestamp

MAX_EVENT_BYTES = 65_536
MAX_STRING_CHARS = 256
MAX_DISPOSITION_CHARS = 32
MAX_DURATION_S = 2**31 - 1

REQUIRED_FIELDS = ("event_id", "tenant_id", "call_id", "started_at", "ended_at", "caller", "callee")
OPTIONAL_FIELDS = (
    "answered_at",
    "duration",
    "direction",
    "extension",
    "routed_to",
    "tenant_region",
    "disposition",
)
FIELDS = REQUIRED_FIELDS + OPTIONAL_FIELDS

_ID_FIELDS = ("event_id", "call_id")
_TIME_FIELDS = ("started_at", "ended_at", "answered_at")
_NUMBER_FIELDS = ("caller", "callee")
_TEXT_FIELDS = ("extension", "routed_to", "disposition")

#: Every reason `decode_event` (and `cdrstream.core.outcome.decide`) can give for ``invalid``.
REASONS: tuple[str, ...] = (
    "not_json",
    "not_object",
    "too_large",
    *(f"missing_field:{f}" for f in REQUIRED_FIELDS),
    *(f"bad_type:{f}" for f in FIELDS if f not in (*_TIME_FIELDS, "duration")),
    *(f"bad_value:{f}" for f in (*_ID_FIELDS, "extension")),
    *(f"too_long:{f}" for f in (*_ID_FIELDS, *_TEXT_FIELDS)),
    *(f"bad_timestamp:{f}" for f in _TIME_FIELDS),
    "bad_tenant_id",
    "bad_tenant_region",
    "ended_before_started",
    "answered_out_of_range",
    "bad_duration",
    "bad_direction",
    *(f"bad_number:{f}" for f in _NUMBER_FIELDS),
    "started_in_future",
    *(f"duplicate_field:{f}" for f in FIELDS),
    "internal_error",
)

_MISSING = object()
_TENANT_IDS: set[str] = set()  # tenant ids already checked against TENANT_ID
_TENANT_IDS_MAX = 100_000
_REGIONS = frozenset(phonenumbers.SUPPORTED_REGIONS)
TENANT_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")  # contract §2
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DISPOSITION_WORD = re.compile(rf"[a-z0-9 _-]{{1,{MAX_DISPOSITION_CHARS}}}")

# The PBX words as they are usually written (lower, UPPER, Title case): one dict lookup.
_DIRECTIONS: dict[str, DirectionWord] = {
    spelling: direction
    for word, direction in DIRECTION_WORDS.items()
    for spelling in (word, word.upper(), word.title())
}

_ROUTES = {word: word for word in ("extension", "queue", "ivr", "voicemail", "conference")}

_DISPOSITIONS = {
    "answered": "answered",
    "answer": "answered",
    "no_answer": "no_answer",
    "no answer": "no_answer",
    "no-answer": "no_answer",
    "noanswer": "no_answer",
    "busy": "busy",
    "failed": "failed",
    "failure": "failed",
    "congestion": "failed",
    "cancelled": "cancelled",
    "canceled": "cancelled",
    "cancel": "cancelled",
}


class InvalidEvent(Exception):
    """An event that cannot become a record; ids are whatever could be read (for logs/DLQ)."""

    def __init__(
        self,
        reason: str,
        event_id: str | None = None,
        tenant_id: str | None = None,
        call_id: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.event_id = event_id
        self.tenant_id = tenant_id
        self.call_id = call_id


class _Bad(Exception):
    """Internal: a reason, before the readable ids are attached."""


class CallEvent(NamedTuple):
    """A decoded, checked event. Times are UTC epoch ms; optional text fields are stripped.
    (A named tuple: built once per event on the hot path, where it is 4x cheaper than a
    frozen dataclass.)"""

    event_id: str
    tenant_id: str
    call_id: str
    started_at_ms: int
    answered_at_ms: int | None
    ended_at_ms: int
    duration: int
    caller: str
    callee: str
    direction: DirectionWord | None
    extension: str | None
    routed_to: str | None
    tenant_region: str | None
    disposition: str | None


def decode_event(value: bytes | bytearray | memoryview | str) -> CallEvent:
    """Parse and check one event value (JSON, UTF-8). Raises `InvalidEvent`, nothing else."""
    if type(value) is bytes or isinstance(value, bytearray | memoryview):
        if len(value) > MAX_EVENT_BYTES:
            raise InvalidEvent("too_large")
    elif isinstance(value, str):
        if len(value) > MAX_EVENT_BYTES or (
            len(value) * 4 > MAX_EVENT_BYTES
            and len(value.encode("utf-8", "surrogatepass")) > MAX_EVENT_BYTES
        ):
            raise InvalidEvent("too_large")
    else:
        raise InvalidEvent("not_json")
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as error:
        if not str(error).startswith(_NUMBER_OUT_OF_RANGE):
            raise InvalidEvent("not_json") from None
        obj = _standard_loads(value)  # a number beyond a double: read as infinity
    if type(obj) is not dict:
        raise InvalidEvent("not_object")
    commas = value.count(b",") if type(value) is bytes else _commas(value)
    if commas + 1 != len(obj):  # else no member can have been repeated
        repeated = _repeated_known_field(value)
        if repeated is not None:
            raise _invalid(_Bad(f"duplicate_field:{repeated}"), obj, repeated)
    try:
        return _check(obj)
    except _Bad as bad:
        raise _invalid(bad, obj) from None


def event_from_object(obj: dict[str, object]) -> CallEvent:
    """Check one decoded JSON object. Raises `InvalidEvent`, nothing else."""
    try:
        return _check(obj)
    except _Bad as bad:
        raise _invalid(bad, obj) from None


def _invalid(bad: _Bad, obj: dict[str, object], ambiguous: str | None = None) -> InvalidEvent:
    """The reason with the ids that could be read (not the ``ambiguous`` one)."""
    return InvalidEvent(
        str(bad.args[0]),
        *(
            None if name == ambiguous else _readable(obj.get(name))
            for name in ("event_id", "tenant_id", "call_id")
        ),
    )


#: How orjson 3 words its refusal of a number beyond a double (``1e309``, 400 digits).
_NUMBER_OUT_OF_RANGE = "number is infinity"
_KNOWN = frozenset(FIELDS)


def _commas(value: bytes | bytearray | memoryview | str) -> int:
    if type(value) is bytes or type(value) is bytearray:
        return value.count(b",")
    if isinstance(value, str):
        return value.count(",")
    return bytes(value).count(b",")


def _text(value: bytes | bytearray | memoryview | str) -> str:
    """The event as text for the standard library, UTF-8 only (as orjson)."""
    try:
        return value if isinstance(value, str) else bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidEvent("not_json") from None


def _float(text: str) -> float:
    return float(text)  # beyond a double: infinity


def _int(text: str) -> int | float:
    """As orjson: an integer within 64 bits, a float beyond (infinity past a double)."""
    if len(text) <= 20:
        number = int(text)
        if -(2**63) <= number < 2**64:
            return number
    return float(text)


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


_STANDARD = json.JSONDecoder(parse_float=_float, parse_int=_int, parse_constant=_not_json)
#: Objects as their lists of (key, value) members in order, repeated keys kept.
_PAIRS = json.JSONDecoder(
    parse_float=_float, parse_int=_int, parse_constant=_not_json, object_pairs_hook=list
)


def _standard_loads(value: bytes | bytearray | memoryview | str) -> Any:
    """The event parsed by the standard library, numbers beyond a double as infinity;
    strings must be valid Unicode as orjson requires (a lone surrogate is refused)."""
    try:
        obj = _STANDARD.decode(_text(value))
        orjson.dumps(obj)  # refuses lone surrogates, which orjson would not have read
    except InvalidEvent:
        raise
    except Exception:
        raise InvalidEvent("not_json") from None
    return obj


#: A known field's name as a key (followed by its colon) where no escape spells it.
_KNOWN_KEY = re.compile(rb'"(' + "|".join(FIELDS).encode() + rb')"\s*:')


def _repeated_known_field(value: bytes | bytearray | memoryview | str) -> str | None:
    """The first known field the top-level object holds more than once, if any."""
    if type(value) is bytes and b"\\u" not in value:
        # Without \u escapes every key spelling a known name is found as written: none
        # found twice at any depth, none is repeated (the usual case: commas in a name).
        keys = _KNOWN_KEY.findall(value)
        if len(keys) == len(set(keys)):
            return None
    try:
        members = _PAIRS.decode(_text(value))
    except InvalidEvent:
        raise
    except Exception:
        raise InvalidEvent("not_json") from None
    seen: set[str] = set()
    for name, _ in members:
        if name in _KNOWN:
            if name in seen:
                return str(name)
            seen.add(name)
    return None


def _readable(value: object) -> str | None:
    return value[:MAX_STRING_CHARS] if type(value) is str else None


def _has_control(text: str) -> bool:
    return not text.isprintable() and _CONTROL.search(text) is not None


# The helpers below are the slow paths; `_check` inlines the common case of each (it runs
# once per event, and a Python call costs as much as several of the checks).


def _identifier(value: object, name: str) -> str:
    if type(value) is not str:
        raise _Bad(f"bad_type:{name}")
    if len(value) > MAX_STRING_CHARS:
        raise _Bad(f"too_long:{name}")
    if not value or _has_control(value):
        raise _Bad(f"bad_value:{name}")
    return value


def _tenant_id(value: object) -> str:
    if type(value) is not str:
        raise _Bad("bad_type:tenant_id")
    if not TENANT_ID.fullmatch(value):
        raise _Bad("bad_tenant_id")
    if len(_TENANT_IDS) >= _TENANT_IDS_MAX:
        _TENANT_IDS.clear()
    _TENANT_IDS.add(value)
    return value


def _number(value: object, name: str) -> str:
    if type(value) is str:
        if len(value) > MAX_STRING_CHARS or _has_control(value):
            raise _Bad(f"bad_number:{name}")
        return value
    if value is None:
        return ""
    if type(value) is int:
        return str(value)
    raise _Bad(f"bad_type:{name}")


def _optional_text(value: object, name: str) -> str | None:
    if value is None:
        return None
    if type(value) is not str:
        if type(value) is int and name == "extension":
            return str(value)
        raise _Bad(f"bad_type:{name}")
    if len(value) > MAX_STRING_CHARS:
        raise _Bad(f"too_long:{name}")
    value = value.strip()
    return value or None


def _time(value: object, name: str) -> int:
    if type(value) is str:
        ms = parse_rfc3339(value) if len(value) <= 64 else None
        if ms is not None and MIN_MS <= ms < MAX_MS:
            return ms
    elif type(value) is int and MIN_MS <= value < MAX_MS:
        return value
    else:
        ms = parse_timestamp(value)
        if ms is not None:
            return ms
    raise _Bad(f"bad_timestamp:{name}")


def _direction(word: object) -> DirectionWord | None:
    if type(word) is not str:
        raise _Bad("bad_type:direction")
    if not word.strip():
        return None
    direction = parse_direction_word(word)
    if direction is None:
        raise _Bad("bad_direction")
    return direction


def _tenant_region(region: object) -> str | None:
    if type(region) is not str:
        raise _Bad("bad_type:tenant_region")
    code = region.strip().upper()
    if not code:
        return None
    if code not in _REGIONS:
        raise _Bad("bad_tenant_region")
    return code


def _disposition(value: object) -> str | None:
    text = _optional_text(value, "disposition")
    if text is None:
        return None
    word = text.lower()
    return _DISPOSITIONS.get(word) or (word if _DISPOSITION_WORD.fullmatch(word) else None)


def _missing(obj: dict[str, object]) -> str | None:
    for name in REQUIRED_FIELDS:
        if obj.get(name) is None and (name not in obj or name not in _NUMBER_FIELDS):
            return name
    return None


def _check(obj: dict[str, Any]) -> CallEvent:
    get = obj.get
    event_id = get("event_id")
    tenant_id = get("tenant_id")
    call_id = get("call_id")
    started = get("started_at")
    ended = get("ended_at")
    caller = get("caller", _MISSING)
    callee = get("callee", _MISSING)
    if (
        event_id is None
        or tenant_id is None
        or call_id is None
        or started is None
        or ended is None
        or caller is _MISSING
        or callee is _MISSING
    ):
        raise _Bad(f"missing_field:{_missing(obj)}")

    if (
        type(event_id) is not str
        or len(event_id) > MAX_STRING_CHARS
        or not (event_id and event_id.isprintable())
    ):
        event_id = _identifier(event_id, "event_id")
    if type(tenant_id) is not str or tenant_id not in _TENANT_IDS:
        tenant_id = _tenant_id(tenant_id)
    if (
        type(call_id) is not str
        or len(call_id) > MAX_STRING_CHARS
        or not (call_id and call_id.isprintable())
    ):
        call_id = _identifier(call_id, "call_id")

    started = _time(started, "started_at")
    ended = _time(ended, "ended_at")
    if ended < started:
        raise _Bad("ended_before_started")
    answered = get("answered_at")
    if answered is not None:
        answered = _time(answered, "answered_at")
        if not started <= answered <= ended:
            raise _Bad("answered_out_of_range")

    duration = get("duration")
    if duration is None:
        duration = 0 if answered is None else (ended - answered + 500) // 1000
    elif type(duration) is float and duration.is_integer():
        duration = int(duration)
    if type(duration) is not int or not 0 <= duration <= MAX_DURATION_S:
        raise _Bad("bad_duration")

    if type(caller) is not str or len(caller) > MAX_STRING_CHARS or not caller.isprintable():
        caller = _number(caller, "caller")
    if type(callee) is not str or len(callee) > MAX_STRING_CHARS or not callee.isprintable():
        callee = _number(callee, "callee")

    direction = get("direction")
    if direction is not None:
        direction = (type(direction) is str and _DIRECTIONS.get(direction)) or _direction(direction)

    extension = get("extension")
    if extension is not None:
        if type(extension) is str and len(extension) <= MAX_STRING_CHARS:
            extension = extension.strip() or None
        else:
            extension = _optional_text(extension, "extension")
        if extension is not None and _has_control(extension):
            raise _Bad("bad_value:extension")

    routed_to = get("routed_to")
    if routed_to is not None:
        routed_to = _ROUTES.get(routed_to) if type(routed_to) is str else None
        if routed_to is None:
            routed_to = _optional_text(get("routed_to"), "routed_to")
            if routed_to is not None:
                routed_to = routed_to.lower()

    region = get("tenant_region")
    if region is not None and (type(region) is not str or region not in _REGIONS):
        region = _tenant_region(region)

    disposition = get("disposition")
    if disposition is not None:
        disposition = (type(disposition) is str and _DISPOSITIONS.get(disposition)) or _disposition(
            disposition
        )
    elif answered is not None:
        disposition = "answered"

    return CallEvent(
        event_id,
        tenant_id,
        call_id,
        started,
        answered,
        ended,
        duration,
        caller,
        callee,
        direction,
        extension,
        routed_to,
        region,
        disposition,
    )
