"""The window: removing records older than the retention, and counting those inside it.

``sweep_expired`` runs on a timer in every worker (concurrent sweeps are safe: each trim
is one script on one tenant's keys). Writes already trim their tenant a little on every
batch; the sweeper does the bulk (a quiet tenant, or a retention that was shortened) and
forgets tenants whose keys are gone (their TTL ran out). A tenant forgotten just as it
writes again is re-added by that write's SADD; until then only its own writes trim it.
"""

from __future__ import annotations

from typing import Any

from cdrstream.store.layout import TENANTS_KEY, s6, tenant_keys, time_key
from cdrstream.store.scripts import TRIM, run_many

#: Records one script call may delete: bounds the time it holds Redis (~10 us a record).
TRIM_PER_CALL = 500
#: Records one ``sweep_expired`` call deletes at most; the next call continues.
SWEEP_BUDGET = 200_000
#: Tenants per pipeline.
TENANT_BATCH = 500


async def _tenants(redis: Any) -> list[str]:
    members = [m async for m in redis.sscan_iter(TENANTS_KEY, count=1000)]
    return sorted({m.decode("utf-8") if isinstance(m, bytes) else str(m) for m in members})


async def sweep_expired(redis: Any, *, now_ms: int, retention_ms: int) -> int:
    """Delete out-of-window records of every known tenant, from every index; the count.

    Bounded: at most ``SWEEP_BUDGET`` records (plus one cheap check per tenant) per call.
    """
    cutoff = now_ms - retention_ms
    if cutoff <= 0:
        return 0
    removed = 0
    todo = await _tenants(redis)
    gone: list[str] = []
    while todo and removed < SWEEP_BUDGET:
        again: list[str] = []
        for start in range(0, len(todo), TENANT_BATCH):
            part = todo[start : start + TENANT_BATCH]
            calls = [(tenant_keys(t), [cutoff, TRIM_PER_CALL]) for t in part]
            for tenant, (count, left) in zip(part, await run_many(redis, TRIM, calls), strict=True):
                removed += int(count)
                if int(count) == TRIM_PER_CALL:
                    again.append(tenant)
                elif int(left) == 0:
                    gone.append(tenant)
            if removed >= SWEEP_BUDGET:
                break
        todo = again
    if gone:
        await redis.srem(TENANTS_KEY, *gone)
    return removed


async def count_in_window(redis: Any, *, now_ms: int, retention_ms: int) -> int:
    """Records inside the window over all tenants: one ZLEXCOUNT (O(log N)) per tenant."""
    low = b"[" + s6(now_ms - retention_ms)
    total = 0
    tenants = await _tenants(redis)
    for start in range(0, len(tenants), TENANT_BATCH):
        pipe = redis.pipeline(transaction=False)
        for tenant in tenants[start : start + TENANT_BATCH]:
            pipe.zlexcount(time_key(tenant), low, b"+")
        total += sum(int(c) for c in await pipe.execute())
    return total
