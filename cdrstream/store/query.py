"""What a query asks of the store (``RecordQuery``), what a page answers (``Page``), and
the filters tested on decoded records (``RecordFilter``): the read path's types, apart
from the reader that runs them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson

from cdrstream.core.record import CallRecord
from cdrstream.store import codec


@dataclass(frozen=True, slots=True)
class RecordQuery:
    from_ms: int | None = None  # started_at >= from_ms
    to_ms: int | None = None  # started_at < to_ms
    direction: Literal["inbound", "outbound"] | None = None
    extension: str | None = None
    number_prefix: str | None = None  # E.164 or E.164 prefix; matches source or destination


@dataclass(frozen=True, slots=True)
class Page:
    records: list[CallRecord]
    next_cursor: str | None


def query_binding(tenant_id: str, query: RecordQuery) -> bytes:
    """What a cursor is bound to: the tenant and every filter of the query."""
    return orjson.dumps(
        [
            tenant_id,
            query.from_ms,
            query.to_ms,
            query.direction,
            query.extension,
            query.number_prefix,
        ]
    )


#: A position in the newest-first order: (started_ms, id), newest = largest.
Position = tuple[int, str]


@dataclass(frozen=True, slots=True)
class RecordFilter:
    """Filters tested on decoded records (``codec`` arrays at offset ``off``: 0 for a
    payload, 1 for a sealed row), so that records that do not match are never built."""

    direction: str | None
    extension: str | None
    number_prefix: str | None

    @property
    def empty(self) -> bool:
        return self.direction is None and self.extension is None and self.number_prefix is None

    def __call__(self, f: list[Any], off: int = 0) -> bool:
        if self.direction is not None and f[off + 4] != codec.direction_code(self.direction):
            return False
        if self.extension is not None and f[off + 1] != self.extension:
            return False
        prefix = self.number_prefix
        return prefix is None or (
            codec.number_text(f[off + 2]).startswith(prefix)
            or codec.number_text(f[off + 3]).startswith(prefix)
        )
