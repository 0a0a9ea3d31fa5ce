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

**Exactness.** The write script calls :data:`SUMMARY_LUA`'s functions for each record:
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
drops the older days' fields (one bounded script per tenant).

The key gets the tenant keys' TTL (retention + 1 day) on every write.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cdrstream.core.summary import parse_fields

#: The bookkeeping field of the oldest day kept.
FLOOR_FIELD = "floor"


def summary_key(tenant_id: str) -> str:
    return "cdr:{" + tenant_id + "}:sum"


#: Lua functions for a write script (define nothing else; names start with ``summary_``).
#: ``summary_begin(key, floor)`` once, ``summary_add(contribution, sign)`` per change,
#: ``summary_flush(ttl_ms)`` at the end. A contribution that is not 7 bytes (none stored,
#: or stored before summaries existed) adds nothing.
SUMMARY_LUA = r"""
local SUMMARY_DISPOSITIONS = {"none", "answered", "no_answer", "busy", "failed", "cancelled",
                              "other"}
local summary_key, summary_floor = nil, 0
local summary_delta, summary_fields = {}, {}

local function summary_begin(key, floor)
  summary_key = key
  summary_floor = math.max(tonumber(floor) or 0,
                           tonumber(redis.call("HGET", key, "floor")) or 0)
end

local function summary_bump(name, amount)
  local v = summary_delta[name]
  if v == nil then
    summary_fields[#summary_fields + 1] = name
    v = 0
  end
  summary_delta[name] = v + amount
end

local function summary_add(c, sign)
  if c == nil or c == false or #c ~= 7 then return end
  local day, flags, talk = struct.unpack(">HBI4", c)
  if day < summary_floor then return end
  local head = string.format("%d:", day)
  if flags % 2 == 1 then head = head .. "o:" else head = head .. "i:" end
  summary_bump(head .. "c", sign)
  summary_bump(head .. (SUMMARY_DISPOSITIONS[math.floor(flags / 4) % 8 + 1] or "other"), sign)
  if math.floor(flags / 2) % 2 == 1 then
    summary_bump(head .. "a", sign)
    summary_bump(head .. "t", sign * talk)
  end
end

local function summary_flush(ttl)
  local changed = false
  for _, name in ipairs(summary_fields) do
    local d = summary_delta[name]
    if d ~= 0 then
      changed = true
      if redis.call("HINCRBY", summary_key, name, string.format("%d", d)) == 0 then
        redis.call("HDEL", summary_key, name)
      end
    end
  end
  if changed then redis.call("PEXPIRE", summary_key, ttl) end
end
"""

#: KEYS: 1 a tenant's summary. ARGV: 1 the oldest day to keep. Raises ``floor`` (never
#: lowers it) and drops the fields of older days. Returns the fields removed.
SWEEP_SUMMARY_LUA = r"""#!lua
local S = KEYS[1]
if redis.call("EXISTS", S) == 0 then return 0 end
local floor = math.max(tonumber(ARGV[1]), tonumber(redis.call("HGET", S, "floor")) or 0)
redis.call("HSET", S, "floor", string.format("%d", floor))
local gone = {}
for _, name in ipairs(redis.call("HKEYS", S)) do
  local day = tonumber(string.match(name, "^(%d+):"))
  if day and day < floor then gone[#gone + 1] = name end
end
for i = 1, #gone, 500 do
  redis.call("HDEL", S, unpack(gone, i, math.min(i + 499, #gone)))
end
return #gone
"""


async def read_summary(redis: Any, tenant_id: str) -> dict[str, int]:
    """The tenant's summary fields (``core.summary.summarize`` turns them into days)."""
    return parse_fields(await redis.hgetall(summary_key(tenant_id)))


async def sweep_summaries(redis: Any, tenants: Sequence[str], floor_day: int) -> int:
    """Drop the days before ``floor_day`` from every tenant's summary (pipelined, one
    script per tenant); the fields removed."""
    # Imported here: the write script in scripts.py is built from this module's Lua.
    from cdrstream.store.scripts import Script, run_many

    script = Script(SWEEP_SUMMARY_LUA)
    removed = 0
    for start in range(0, len(tenants), 500):
        part = tenants[start : start + 500]
        calls = [([summary_key(t)], [floor_day]) for t in part]
        removed += sum(int(n) for n in await run_many(redis, script, calls))
    return removed
