"""The store's Lua scripts (run by EVALSHA; loaded on NOSCRIPT) and how they are called.

Each script touches only the four keys of one tenant (``layout.tenant_keys``), all passed
in ``KEYS``; none builds a key name. The member encodings below are the ones documented
in ``layout.py``; the reader builds its range bounds from the same definitions.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import NoScriptError

# Helpers shared by the write and trim scripts. KEYS: 1 records, 2 time, 3 ext, 4 number.
_COMMON = r"""
local R, T, X, N = KEYS[1], KEYS[2], KEYS[3], KEYS[4]

-- started_at_ms as 6 bytes big-endian (exact: Lua numbers are doubles, ms < 2^48).
local function be6(ms)
  local b = {}
  for i = 6, 1, -1 do
    local byte = ms % 256
    b[i] = byte
    ms = (ms - byte) / 256
  end
  return string.char(b[1], b[2], b[3], b[4], b[5], b[6])
end

-- The digits an E.164 number is indexed under (codec: an int, or a "+digits" string).
local function digits(v)
  if type(v) == "number" then return string.format("%.0f", v) end
  if type(v) == "string" and string.match(v, "^%+%d+$") then return string.sub(v, 2) end
  return nil
end

-- Every index member of a stored record (decoded payload): {key, member} pairs; the
-- same rules as layout.index_members in Python.
local function members(rec, id)
  local tail = be6(rec[1]) .. id
  -- NUL ends the extension in a member, so a NUL inside it is stored as \1.
  local ext = string.gsub(tostring(rec[2]), "%z", "\1")
  local list = {{T, tail}, {X, ext .. "\0" .. tail}}
  local a, b = digits(rec[3]), digits(rec[4])
  if a then list[#list + 1] = {N, a .. "\0" .. tail} end
  if b and b ~= a then list[#list + 1] = {N, b .. "\0" .. tail} end
  return list
end

local function contains(list, entry)
  if not list then return false end
  for _, e in ipairs(list) do
    if e[1] == entry[1] and e[2] == entry[2] then return true end
  end
  return false
end

-- Remove the members of `old` that `new` (may be nil) does not have.
local function unindex(old, new)
  for _, e in ipairs(old) do
    if not contains(new, e) then redis.call("ZREM", e[1], e[2]) end
  end
end

local function index(new)
  for _, e in ipairs(new) do redis.call("ZADD", e[1], 0, e[2]) end
end

-- Delete up to `max` records whose started_at < cutoff (oldest first); their count.
local function trim(cutoff, max)
  if max <= 0 or cutoff <= 0 then return 0 end
  local expired = redis.call("ZRANGE", T, "-", "(" .. be6(cutoff), "BYLEX", "LIMIT", 0, max)
  for _, m in ipairs(expired) do
    local id = string.sub(m, 7)
    local payload = redis.call("HGET", R, id)
    if payload then
      unindex(members(cjson.decode(payload), id), nil)
      redis.call("HDEL", R, id)
    end
    redis.call("ZREM", T, m)
  end
  return #expired
end
"""

#: KEYS: the tenant's 4 keys. ARGV: cutoff_ms, ttl_ms, trim_max, then one per record:
#: ``pack_record`` of its id, payload and t, x, n, n members (``layout.index_members``;
#: b"" for no number), six length-prefixed strings in one argument (one struct.unpack in
#: Lua; far fewer arguments for the client to pack and the server to parse).
#: An empty payload means "out of the window": any stored version is deleted.
#: Returns one integer per record: 1 stored (new or changed), 0 unchanged or not stored.
WRITE_LUA = (
    "#!lua\n"
    + _COMMON
    + r"""
local RECORD = ">I4c0I4c0I4c0I4c0I4c0I4c0"
local out = {}
for i = 4, #ARGV do
  local id, payload, tm, xm, n1, n2 = struct.unpack(RECORD, ARGV[i])
  local new = nil
  if payload ~= "" then
    new = {{T, tm}, {X, xm}}
    if n1 ~= "" then new[#new + 1] = {N, n1} end
    if n2 ~= "" then new[#new + 1] = {N, n2} end
  end
  local old = redis.call("HGET", R, id)
  local result = 0
  if not old and new then
    -- A new record (the common case): no old entries to compare, fewest calls.
    redis.call("HSET", R, id, payload)
    redis.call("ZADD", T, 0, new[1][2])
    redis.call("ZADD", X, 0, new[2][2])
    if new[4] then
      redis.call("ZADD", N, 0, new[3][2], 0, new[4][2])
    elseif new[3] then
      redis.call("ZADD", N, 0, new[3][2])
    end
    result = 1
  elseif old ~= payload then
    if old then unindex(members(cjson.decode(old), id), new) end
    if new then
      redis.call("HSET", R, id, payload)
      index(new)
      result = 1
    elseif old then
      redis.call("HDEL", R, id)
    end
  end
  out[#out + 1] = result
end
trim(tonumber(ARGV[1]), tonumber(ARGV[3]))
for k = 1, 4 do redis.call("PEXPIRE", KEYS[k], ARGV[2]) end
return out
"""
)

#: KEYS: the tenant's 4 keys. ARGV: cutoff_ms, max. Returns {removed, records left}.
TRIM_LUA = (
    "#!lua\n"
    + _COMMON
    + r"""
local removed = trim(tonumber(ARGV[1]), tonumber(ARGV[2]))
return {removed, redis.call("HLEN", R)}
"""
)

#: KEYS: 1 an index zset, 2 the records hash. ARGV: max, min (lex bounds), count,
#: keyed ("1" when members start with "key NUL"). Walks the index newest first; returns
#: {json, last member}: json is ``[[id, ...], [payload, ...]]`` (a payload is null if its
#: record vanished), one bulk string that the reader parses with a single orjson call
#: instead of thousands of RESP replies.
FETCH_LUA = r"""#!lua flags=no-writes
local ms = redis.call("ZRANGE", KEYS[1], ARGV[1], ARGV[2], "BYLEX", "REV", "LIMIT", 0, ARGV[3])
local n = #ms
if n == 0 then return {"[[],[]]", ""} end
local keyed = ARGV[4] == "1"
local ids = {}
for i = 1, n do
  local m = ms[i]
  local start = 1
  if keyed then start = string.find(m, "\0", 1, true) + 1 end
  ids[i] = string.sub(m, start + 6)
end
local ps = redis.call("HMGET", KEYS[2], unpack(ids))
for i = 1, n do
  if not ps[i] then ps[i] = "null" end
end
return {"[" .. cjson.encode(ids) .. ",[" .. table.concat(ps, ",") .. "]]", ms[n]}
"""


#: KEYS: 1 the number index. ARGV: min, max (lex bounds), most members. Returns the
#: (started, id) of every member in the range as {8-byte big-endian start times, one
#: after the other; JSON array of the ids}: two bulk strings, cheap to parse, however many.
POSITIONS_LUA = r"""#!lua flags=no-writes
local ms = redis.call("ZRANGE", KEYS[1], ARGV[1], ARGV[2], "BYLEX", "LIMIT", 0, ARGV[3])
local n = #ms
if n == 0 then return {"", "[]"} end
local times, ids = {}, {}
for i = 1, n do
  local m = ms[i]
  local p = string.find(m, "\0", 1, true)
  times[i] = "\0\0" .. string.sub(m, p + 1, p + 6)
  ids[i] = string.sub(m, p + 7)
end
return {table.concat(times), cjson.encode(ids)}
"""


@dataclass(frozen=True)
class Script:
    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())

    async def load(self, redis: Any) -> None:
        """SCRIPT LOAD (on every primary in cluster mode)."""
        await redis.script_load(self.source)

    async def run(self, redis: Any, keys: list[str], args: list[Any]) -> Any:
        """One EVALSHA; on NOSCRIPT (a restarted or flushed Redis) load and run again."""
        try:
            return await redis.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await self.load(redis)
            return await redis.evalsha(self.sha, len(keys), *keys, *args)


_LENGTH = struct.Struct(">I").pack


def pack_record(*parts: bytes) -> bytes:
    """Six strings as one write-script argument: each as a 4-byte length and its bytes."""
    out: list[bytes] = []
    for part in parts:
        out += (_LENGTH(len(part)), part)
    return b"".join(out)


async def run_many(
    redis: Any, script: Script, calls: list[tuple[list[str], list[Any]]]
) -> list[Any]:
    """EVALSHA ``script`` once per (keys, args), pipelined: one round trip (per node).

    On NOSCRIPT the script is loaded and the calls that failed are sent again; any other
    error is raised (the scripts are idempotent, so the caller may retry them all).
    """

    async def send(todo: list[tuple[list[str], list[Any]]]) -> list[Any]:
        pipe = redis.pipeline(transaction=False)
        for keys, args in todo:
            pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        return list(await pipe.execute(raise_on_error=False))

    results = await send(calls)
    missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
    if missing:
        await script.load(redis)
        for i, r in zip(missing, await send([calls[i] for i in missing]), strict=True):
            results[i] = r
    for r in results:
        if isinstance(r, Exception):
            raise r
    return results


WRITE = Script(WRITE_LUA)
TRIM = Script(TRIM_LUA)
FETCH = Script(FETCH_LUA)
POSITIONS = Script(POSITIONS_LUA)
