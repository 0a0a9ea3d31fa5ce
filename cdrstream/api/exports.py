"""What a CSV export may cost the API: memory, time waiting for a client, concurrency.

A client that opens an export and never reads must not hold memory without bound (twenty
such clients once took the API from 116 to 209 MB, sixty to 343 MB, about 4.7 MB each:
a chunk of 2,000 records, its formatted text, its encoded bytes and a copy in the
transport buffer):

- **Memory**: records are read from Redis :data:`CHUNK_ROWS` at a time, and formatted
  and written :data:`PIECE_ROWS` at a time (about 80 KiB of CSV); every write waits
  until the connection's write buffer is below :data:`WRITE_BUFFER_HIGH`. One stalled
  export then holds one chunk of records and a piece or two: under 1 MB (sixty stalled
  exports took a fresh process from 54 to 112 MB; before, from 54 to 323 MB). Smaller
  chunks cost throughput (200 rows: -25 %); 500 rows stream as fast as 2,000 (~100,000
  rows/s from one process here).
- **Time**: a write that cannot be handed to the socket within ``write_timeout_s``
  (the client read nothing for that long) ends the export: the connection is closed and
  logged at INFO, like a client that went away. A slow reader is fine; one that stalls
  is not waited for.
- **Concurrency**: a partner may run ``per_partner`` exports at once per API process;
  one more answers 429 with ``Retry-After``.

``write_timeout_s`` and ``per_partner`` are options of `cdrstream api`
(``--csv-write-timeout``, ``--csv-exports-per-partner``); the defaults are here.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

#: Records read from Redis per round trip of an export.
CHUNK_ROWS = 500
#: Rows formatted and written at a time (~330 bytes a row: ~80 KiB).
PIECE_ROWS = 250
#: High-water mark of an export connection's transport write buffer, bytes.
WRITE_BUFFER_HIGH = 64 * 1024
DEFAULT_WRITE_TIMEOUT_S = 30.0
DEFAULT_EXPORTS_PER_PARTNER = 8
#: Retry-After of a 429, seconds.
RETRY_AFTER_S = 5


@dataclass(frozen=True, slots=True)
class ExportLimits:
    write_timeout_s: float = DEFAULT_WRITE_TIMEOUT_S
    per_partner: int = DEFAULT_EXPORTS_PER_PARTNER

    def __post_init__(self) -> None:
        if not self.write_timeout_s > 0:
            raise ValueError("the CSV write timeout must be positive")
        if self.per_partner < 1:
            raise ValueError("at least one CSV export per partner")


class ExportSlots:
    """Exports in progress per partner (one process; each replica counts its own)."""

    def __init__(self, per_partner: int) -> None:
        self.per_partner = per_partner
        self._running: Counter[str] = Counter()

    def try_acquire(self, partner: str) -> bool:
        if self._running[partner] >= self.per_partner:
            return False
        self._running[partner] += 1
        return True

    def release(self, partner: str) -> None:
        self._running[partner] -= 1
        if self._running[partner] <= 0:
            del self._running[partner]
