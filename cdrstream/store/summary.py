"""Daily summaries in Redis: one hash per tenant, kept exact by the write script.

=====================  ======  ==============================================================
key                    type    content
=====================  ======  ==============================================================
``cdr:{T}:sum``        HASH    field ``<day>:<i|o>:<metric>`` -> integer; ``day``: days since
                               1970-01-01 of the date in the display zone; ``i``/``o``:
                               inbound/outbound; metric ``c`` calls, ``a`` answered calls,
                               ``t`` talk seconds of answered calls, or a disposition name
                               (``core.summary.DISPOSITIONS``) for the calls with it. Plus
                               ``floor``: the oldest day kept (days before it were dropped).
=====================  ======  ==============================================================

One hash per tenant (about 20 fields a day, 600 for 30 days), not one per day: the write
script learns the day of a record it replaces only when it reads the record's old
contribution, so the key it changes must not depend on it (every key is declared up front).

**Exactness.** The write script calls the functions of ``lua/summary.lua`` for each record:
``summary_add(new, 1)`` when it stores a new record; ``summary_add(old, -1)`` and
``summary_add(new, 1)`` when it replaces one; nothing for a duplicate (the same content: it
reports ``duplicate`` and adds nothing), nothing for a hidden, expired or invalid event
(they never reach the store). ``old`` is the contribution stored with the record when it
was written (`core.summary.encode_contribution`, 7 bytes), so a replacement removes exactly
what the previous version added, wherever that version is stored. The changes of one call
are summed per field and applied once at the end (``summary_flush``) in the same script as
the records: replays, restarts and redelivery leave the totals exact, because whatever the
script does to the records it does to the summary, atomically.

**Window.** Days before ``floor`` (``core.summary.first_day``: the first day wholly inside
the retention window) are never added to; :func:`sweep_summaries` raises ``floor`` and
drops the older days' fields (``lua/sweep_summary.lua``, one bounded script per tenant).

The key gets the tenant keys' TTL (retention + 1 day) on every write.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cdrstream.core.summary import parse_fields
from cdrstream.store.layout import summary_key
from cdrstream.store.runner import run_pipeline
from cdrstream.store.scripts import sweep_summary_call


async def read_summary(redis: Any, tenant_id: str) -> dict[str, int]:
    """The tenant's summary fields (``core.summary.summarize`` turns them into days)."""
    return parse_fields(await redis.hgetall(summary_key(tenant_id)))


async def sweep_summaries(redis: Any, tenants: Sequence[str], floor_day: int) -> int:
    """Drop the days before ``floor_day`` from every tenant's summary (pipelined, one
    script per tenant); the fields removed."""
    removed = 0
    for start in range(0, len(tenants), 500):
        calls = [sweep_summary_call(t, floor_day) for t in tenants[start : start + 500]]
        removed += sum(int(n) for n in await run_pipeline(redis, calls))
    return removed
