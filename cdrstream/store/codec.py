"""Compact encoding of a stored record: an orjson array, readable by the store's Lua too.

Position  content
========  ================================================================================
0         ``started_at_ms`` (int)
1         ``extension`` (str)
2         ``source``: an int of the digits when it is E.164 (``+31201234567`` ->
          ``31201234567``), else the string (``anonymous``)
3         ``destination``: as ``source``
4         ``direction``: 0 inbound, 1 outbound (any other value: the string)
5         ``call_id`` (str)
6         ``ended_at_ms - started_at_ms`` (int)
7         ``answered_at_ms - started_at_ms`` (int) or null
8         ``duration`` (int)
9         ``disposition``: index in ``DISPOSITIONS``, the string when unknown, or null
10        ``source_raw``: 0 when equal to ``source``, else the string (omitted when 0 and
          last)
11        ``destination_raw``: as ``source_raw`` (omitted when 0)
========  ================================================================================

The tenant and the id are not stored: they are the key's hash tag and the hash field
(hot records), or the row's first element (sealed rows, ``row``). Positions 0..3 come
first and are plain JSON scalars: the hot tier's read script tests the extension and the
numbers on the payload's text (``lua/read_hot.lua``); E.164 ints stay below 2**53. The
encoding is deterministic, so a payload digest identifies a record's content (the id map
compares digests to detect an unchanged record).

A **sealed row** (``segment.py``) is ``[id, ...payload]``: the payload array with the id in
front, one JSON text per line of a chunk; ``build_row`` reads it with every position
shifted by one.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from cdrstream.core.record import CallRecord, Direction

DISPOSITIONS: tuple[str, ...] = ("answered", "no_answer", "busy", "failed", "cancelled")
_DISPOSITION_CODE = {name: code for code, name in enumerate(DISPOSITIONS)}
DIRECTIONS: tuple[Direction, Direction] = ("inbound", "outbound")
_DIRECTION_CODE: dict[str, int] = {name: code for code, name in enumerate(DIRECTIONS)}
# Up to 15 digits (E.164), no leading zero: such an int round-trips through a Lua double.
_E164 = re.compile(r"\+[1-9][0-9]{0,14}")


def _number(value: str) -> int | str:
    return int(value[1:]) if _E164.fullmatch(value) else value


def _fields(record: CallRecord) -> list[Any]:
    """The payload array of ``record`` (module docstring)."""
    started = record.started_at_ms
    direction = direction_code(record.direction)
    disposition: int | str | None = record.disposition
    if record.disposition is not None:
        disposition = _DISPOSITION_CODE.get(record.disposition, record.disposition)
    fields: list[Any] = [
        started,
        record.extension,
        _number(record.source),
        _number(record.destination),
        direction,
        record.call_id,
        record.ended_at_ms - started,
        None if record.answered_at_ms is None else record.answered_at_ms - started,
        record.duration,
        disposition,
        0 if record.source_raw == record.source else record.source_raw,
        0 if record.destination_raw == record.destination else record.destination_raw,
    ]
    while len(fields) > 10 and fields[-1].__class__ is int:  # a raw equal to its number
        fields.pop()
    return fields


def encode(record: CallRecord) -> bytes:
    return orjson.dumps(_fields(record))


def row_of(record: CallRecord) -> list[Any]:
    """The decoded sealed row of ``record`` (``[id, ...payload]``), as ``build_row`` reads
    it: what the CSV formatter formats, for a caller that holds records."""
    return [record.id, *_fields(record)]


def direction_code(direction: str) -> int | str:
    """How ``direction`` is encoded (position 4)."""
    return _DIRECTION_CODE.get(direction, direction)


def number_text(value: int | str) -> str:
    """A number as the record has it, from its encoding (positions 2 and 3)."""
    return value if isinstance(value, str) else "+" + str(value)


def build(tenant_id: str, record_id: str, f: list[Any]) -> CallRecord:
    """The record of a decoded payload ``f`` (the sealed row without its id)."""
    return build_row(tenant_id, [record_id, *f])


def decode(tenant_id: str, record_id: str, payload: bytes) -> CallRecord:
    return build(tenant_id, record_id, orjson.loads(payload))


def row(record_id: str, payload: bytes) -> bytes:
    """The sealed row of a record: ``[id, ...payload]`` (payload is a JSON array)."""
    return b"[" + orjson.dumps(record_id) + b"," + payload[1:]


def build_row(tenant_id: str, f: list[Any]) -> CallRecord:
    """The record of a decoded sealed row ``f`` = ``[id, ...payload]`` (export hot path)."""
    started = f[1]
    source = f[3] if f[3].__class__ is str else "+" + str(f[3])
    destination = f[4] if f[4].__class__ is str else "+" + str(f[4])
    n = len(f)
    direction: Any = f[5]
    disposition = f[10]
    answered = f[8]
    return CallRecord(
        f[0],
        tenant_id,
        f[6],
        started,
        None if answered is None else started + answered,
        started + f[7],
        f[9],
        source,
        f[11] if n > 11 and f[11] != 0 else source,
        destination,
        f[12] if n > 12 and f[12] != 0 else destination,
        f[2],
        DIRECTIONS[direction] if direction.__class__ is int else direction,
        DISPOSITIONS[disposition] if disposition.__class__ is int else disposition,
    )


def number_digits_of(value: int | str) -> bytes | None:
    """The digits a payload number (positions 2 and 3) is indexed under, or None."""
    if value.__class__ is int:
        return str(value).encode("ascii")
    text = str(value)
    if text.startswith("+") and text[1:].isascii() and text[1:].isdigit():
        return text[1:].encode("ascii")
    return None
