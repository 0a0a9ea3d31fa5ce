"""The query parameters of the API: one definition each (name, parser, schema, example),
used by the parser AND the OpenAPI document (``cdrstream.api.openapi``, where their
descriptions are), so the two cannot drift.

Rules (documented in docs/api.md):

- every problem is reported, each naming its parameter (``invalid_params``);
- an unknown parameter is a 400: a typo such as ``diretion=inbound`` must not silently
  return the unfiltered list;
- a parameter given twice is a 400 (named once, however many times it was given);
- an empty value (``direction=``) is the same as leaving the parameter out, so a form can
  submit all its fields;
- ``from`` and ``to`` are RFC 3339 date-times with an offset (``Z`` or ``+01:00``); a time
  without an offset does not name an instant and is refused; ``from`` must not be after
  ``to``. Both bounds are inclusive, to the millisecond;
- ``number`` accepts what a user types (E.164, national form, with spaces or dashes, or a
  prefix such as ``+3120`` or ``020``) and is normalized with the tenant's region. For a
  token with masked numbers it must normalize to exactly one country code (``+31``,
  ``0031``): anything longer would tell digits the mask hides
  (`cdrstream.core.masking.is_country_code`);
- ``extension`` is matched exactly. For a token with masked numbers, a value that holds a
  number (seven digits in a row, `cdrstream.core.masking.holds_number`) is refused: such
  an extension is served masked, and the filter would confirm a guessed number;
- ``limit`` and ``cursor`` page the JSON list; a CSV export always holds every matching
  record and ignores both.

Times are passed on as they were given (``to`` made exclusive); the store clamps them to
the range it can hold (``RecordReader``), the one place that does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from cdrstream.core.masking import holds_number, is_country_code
from cdrstream.core.summary import parse_day
from cdrstream.core.timestamps import parse_rfc3339
from cdrstream.store.cursor import MAX_CURSOR_CHARS
from cdrstream.store.reader import RecordQuery

Format = Literal["json", "csv"]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_LIMIT_RE = re.compile(r"[0-9]{1,7}")
_EXTENSION_RE = re.compile(r"[^\x00-\x1f\x7f]{1,64}")
_MAX_NUMBER_LEN = 64
_MAX_TIME_LEN = 64


class _Invalid(ValueError):
    """A parameter's value is refused; the message is the reason shown to the caller."""


@dataclass(frozen=True, slots=True)
class InvalidParam:
    name: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class ParseContext:
    """What parsing needs from outside: the tenant's number normalization, and whether the
    token's numbers are masked (no default: the caller says)."""

    normalize_number: Callable[[str], str | None]
    masked_numbers: bool


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One query parameter: its parser, and the schema and example OpenAPI shows."""

    name: str
    schema: dict[str, object]
    example: str
    parse: Callable[[str, ParseContext], object] = field(repr=False)


def _time(value: str, _ctx: ParseContext) -> int:
    ms = parse_rfc3339(value) if len(value) <= _MAX_TIME_LEN else None
    if ms is None:
        raise _Invalid(
            "not an RFC 3339 date-time with offset, e.g. 2026-11-25T09:14:03+01:00 or "
            "2026-11-25T08:14:03Z"
        )
    return ms


def _direction(value: str, _ctx: ParseContext) -> str:
    if value not in ("inbound", "outbound"):
        raise _Invalid("must be inbound or outbound")
    return value


MASKED_NUMBER_REASON = (
    "this token is served masked numbers: only a whole country code (e.g. +31) may be given, "
    "since a longer number would tell digits the mask hides"
)
MASKED_EXTENSION_REASON = (
    "this token is served masked numbers: an extension holding a number (seven digits in a "
    "row) may not be given, since it would tell digits the mask hides"
)


def _extension(value: str, ctx: ParseContext) -> str:
    if not _EXTENSION_RE.fullmatch(value):
        raise _Invalid("must be 1-64 characters without control characters")
    if ctx.masked_numbers and holds_number(value):
        raise _Invalid(MASKED_EXTENSION_REASON)
    return value


def _number(value: str, ctx: ParseContext) -> str:
    normalized = ctx.normalize_number(value) if len(value) <= _MAX_NUMBER_LEN else None
    if normalized is None:
        raise _Invalid("not a phone number or number prefix (e.g. +31201234567, 020 123, +3120)")
    if ctx.masked_numbers and not is_country_code(normalized):
        raise _Invalid(MASKED_NUMBER_REASON)
    return normalized


def _limit(value: str, _ctx: ParseContext) -> int:
    if not _LIMIT_RE.fullmatch(value):
        raise _Invalid(f"must be an integer from 1 to {MAX_LIMIT}")
    limit = int(value)
    if not 1 <= limit <= MAX_LIMIT:
        raise _Invalid(f"must be an integer from 1 to {MAX_LIMIT}")
    return limit


def _cursor(value: str, _ctx: ParseContext) -> str:
    if len(value) > MAX_CURSOR_CHARS or not value.isascii() or not value.isprintable():
        raise _Invalid("not a cursor from a previous page")
    return value


def _format(value: str, _ctx: ParseContext) -> str:
    if value not in ("json", "csv"):
        raise _Invalid("must be json or csv")
    return value


CDRS_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "from", {"type": "string", "format": "date-time"}, "2026-11-25T00:00:00+01:00", _time
    ),
    ParamSpec(
        "to", {"type": "string", "format": "date-time"}, "2026-11-25T23:59:59.999+01:00", _time
    ),
    ParamSpec(
        "direction", {"type": "string", "enum": ["inbound", "outbound"]}, "inbound", _direction
    ),
    ParamSpec(
        "extension",
        {
            "type": "string",
            "minLength": 1,
            "maxLength": 64,
            "pattern": "^[^\\u0000-\\u001f\\u007f]+$",
        },
        "201",
        _extension,
    ),
    ParamSpec(
        "number", {"type": "string", "minLength": 1, "maxLength": _MAX_NUMBER_LEN}, "+3120", _number
    ),
    ParamSpec(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
        "100",
        _limit,
    ),
    ParamSpec(
        "cursor",
        {"type": "string", "maxLength": MAX_CURSOR_CHARS, "pattern": "^[A-Za-z0-9_-]+$"},
        "",
        _cursor,
    ),
    ParamSpec(
        "format", {"type": "string", "enum": ["json", "csv"], "default": "json"}, "csv", _format
    ),
)

_BY_NAME: dict[str, ParamSpec] = {p.name: p for p in CDRS_PARAMS}

#: The live tail's parameters: the list's filters, without times, paging or format.
LIVE_PARAMS: tuple[ParamSpec, ...] = tuple(
    _BY_NAME[name] for name in ("direction", "extension", "number")
)


def _day(value: str, _ctx: ParseContext) -> int:
    day = parse_day(value)
    if day is None:
        raise _Invalid("not a date YYYY-MM-DD (a day in the display zone)")
    return day


#: The daily summary's parameters: days in the display zone, and the format.
SUMMARY_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("from", {"type": "string", "format": "date"}, "2026-11-01", _day),
    ParamSpec("to", {"type": "string", "format": "date"}, "2026-11-30", _day),
    _BY_NAME["format"],
)


@dataclass(frozen=True, slots=True)
class CdrsRequest:
    query: RecordQuery
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None
    format: Format | None = None  # None: not given, the Accept header decides


def parse_params(
    items: Iterable[tuple[str, str]], specs: Iterable[ParamSpec], ctx: ParseContext
) -> dict[str, object] | list[InvalidParam]:
    """The parsed values of ``specs`` (absent or empty ones left out), or every problem
    found, each once (each naming its parameter). ``from`` after ``to`` is a problem on ``from``."""
    by_name = {p.name: p for p in specs}
    problems: list[InvalidParam] = []
    seen: set[str] = set()
    values: dict[str, object] = {}
    for name, raw in items:
        spec = by_name.get(name)
        if spec is None:
            problems.append(InvalidParam(_printable(name), "unknown parameter"))
            continue
        if name in seen:
            problems.append(InvalidParam(name, "given more than once"))
            values.pop(name, None)
            continue
        seen.add(name)
        if raw == "":
            continue
        try:
            values[name] = spec.parse(raw, ctx)
        except _Invalid as exc:
            problems.append(InvalidParam(name, str(exc)))
    low, high = values.get("from"), values.get("to")
    if isinstance(low, int) and isinstance(high, int) and low > high:
        problems.append(InvalidParam("from", "must not be after to"))
    # A problem repeated (a parameter given 400 times, unknown or not) is reported once.
    return list(dict.fromkeys(problems)) or values


def parse_cdrs_params(
    items: Iterable[tuple[str, str]], ctx: ParseContext
) -> CdrsRequest | list[InvalidParam]:
    """The request, or every problem found (each naming its parameter)."""
    values = parse_params(items, CDRS_PARAMS, ctx)
    if isinstance(values, list):
        return values
    from_ms, to_ms = values.get("from"), values.get("to")
    query = RecordQuery(
        from_ms=from_ms if isinstance(from_ms, int) else None,
        # ``to`` is inclusive to the millisecond; the store's upper bound is exclusive.
        to_ms=to_ms + 1 if isinstance(to_ms, int) else None,
        direction=values.get("direction"),  # type: ignore[arg-type]
        extension=values.get("extension"),  # type: ignore[arg-type]
        number_prefix=values.get("number"),  # type: ignore[arg-type]
    )
    return CdrsRequest(
        query=query,
        limit=values.get("limit", DEFAULT_LIMIT),  # type: ignore[arg-type]
        cursor=values.get("cursor"),  # type: ignore[arg-type]
        format=values.get("format"),  # type: ignore[arg-type]
    )


def _printable(name: str) -> str:
    """A caller's parameter name, safe to echo back (bounded, no control characters)."""
    cleaned = "".join(c if c.isprintable() else "?" for c in name[:64])
    return cleaned + ("..." if len(name) > 64 else "")


def choose_format(format_param: Format | None, accept: str | None) -> Format:
    """``format`` wins; else CSV when the Accept header prefers ``text/csv`` to JSON.

    Only ``text/csv`` and ``application/json`` (and the wildcards ``text/*``, ``*/*``)
    count; a tie goes to JSON, the default.
    """
    if format_param is not None:
        return format_param
    if not accept:
        return "json"
    csv_q = json_q = 0.0
    for part in accept.split(","):
        media, *options = (piece.strip() for piece in part.split(";"))
        q = 1.0
        for option in options:
            key, _, value = option.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
                if not 0.0 <= q <= 1.0:  # also drops NaN
                    q = 0.0
        media = media.lower()
        if media == "text/csv":
            csv_q = max(csv_q, q)
        elif media == "application/json":
            json_q = max(json_q, q)
        elif media == "text/*":
            csv_q = max(csv_q, q * 0.99)  # a specific type outranks a wildcard
        elif media == "*/*":
            json_q = max(json_q, q * 0.99)
    return "csv" if csv_q > json_q else "json"
