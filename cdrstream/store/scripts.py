"""The store's Lua scripts (run by EVALSHA; loaded on NOSCRIPT) and how they are called.

Every script declares every key it touches in ``KEYS`` (the client computes the names of
id-map buckets and day keys, see ``layout.py``); none builds a key name. The write-side
scripts start by checking the id-map shape (``L``, ``p``) the client addressed buckets
with, and answer ``{-1, L, p}`` without changing anything when it is stale.

Lua here never orders binary strings with ``<`` (Lua 5.1 compares with strcoll, which
depends on the server's locale): keys and positions are compared as numbers.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from cdrstream.store.connection import reconnect_pooled_connections
from cdrstream.store.live import LIVE_LUA
from cdrstream.store.summary import SUMMARY_LUA

#: Lua: the version-1 members of a stored record and their removal. The including script
#: defines ``R, T, X, N`` (the four version-1 keys) before this text.
MEMBERS_LUA = r"""
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

-- Every version-1 index member of a stored record (decoded payload): {key, member} pairs.
local function members(rec, id)
  local tail = be6(rec[1]) .. id
  local ext = string.gsub(tostring(rec[2]), "%z", "\1")
  local list = {{T, tail}, {X, ext .. "\0" .. tail}}
  local a, b = digits(rec[3]), digits(rec[4])
  if a then list[#list + 1] = {N, a .. "\0" .. tail} end
  if b and b ~= a then list[#list + 1] = {N, b .. "\0" .. tail} end
  return list
end

-- Remove a version-1 record (its payload is `payload`) from the four keys.
local function legacy_remove(id, payload)
  for _, e in ipairs(members(cjson.decode(payload), id)) do redis.call("ZREM", e[1], e[2]) end
  redis.call("HDEL", R, id)
end
"""

#: Lua: helpers of the version-2 write scripts (after ``MEMBERS_LUA``).
_V2_COMMON = r"""
local function many(cmd, key, list, width)  -- one command over a long list, in pieces
  local step = 960 * width
  for i = 1, #list, step do
    redis.call(cmd, key, unpack(list, i, math.min(i + step - 1, #list)))
  end
end

local function be48(s, at)  -- the 6-byte big-endian number at position `at` of `s`
  local hi, lo = struct.unpack(">I2I4", s, at)
  return hi * 4294967296 + lo
end

-- Id-map values (``layout.id_value``): S6 start, digest6, V12 version (ended_at, event
-- time), extra bytes. The record is everything but the version.
local function content(v)
  return string.sub(v, 1, 12) .. string.sub(v, 25)
end

-- Whether `v` is an older version than `w` (``core/versions.py``: the later ended_at,
-- then the later event time; on a tie neither is older: the last written wins).
local function older(v, w)
  local a, b = be48(v, 13), be48(w, 13)
  if a ~= b then return a < b end
  return be48(v, 19) < be48(w, 19)
end

-- Linear hashing: move the ids of bucket P whose bit L is set into bucket Q.
local function split_bucket(P, Q, L)
  local all = redis.call("HGETALL", P)
  local stay, move = {}, {}
  local bit = 2 ^ L
  for i = 1, #all, 2 do
    local h = struct.unpack(">I4", all[i])
    local list = stay
    if math.floor(h / bit) % 2 == 1 then list = move end
    list[#list + 1] = all[i]
    list[#list + 1] = all[i + 1]
  end
  if #move > 0 then
    redis.call("DEL", P)  -- rebuilt: a bucket that outgrew its listpack becomes one again
    many("HSET", P, stay, 2)
    many("HSET", Q, move, 2)
  end
end

-- Split while the map holds more than `target` ids per bucket, using the declared
-- pairs KEYS[first], KEYS[first + 1], ... (at most `count` splits). Returns L, p.
local function grow(n, L, p, target, first, count)
  local s = 0
  while s < count and n > (2 ^ L + p) * target do
    split_bucket(KEYS[first + 2 * s], KEYS[first + 2 * s + 1], L)
    s = s + 1
    p = p + 1
    if p == 2 ^ L then
      L = L + 1
      p = 0
    end
  end
  return L, p
end

-- The id-map shape and size of the tenant (meta hash M), {L, p, n, wm}.
local function shape(M)
  local m = redis.call("HMGET", M, "L", "p", "n", "wm")
  return tonumber(m[1]) or 0, tonumber(m[2]) or 0, tonumber(m[3]) or 0, tonumber(m[4]) or 0
end

-- Hot records to add (id -> {member, payload}, ids in `order`) and members to remove.
local function apply_hot(H, HT, order, final, gone)
  if #gone > 0 then many("ZREM", HT, gone, 1) end
  local hs, zs, dels = {}, {}, {}
  for _, id in ipairs(order) do
    local f = final[id]
    if f then
      hs[#hs + 1] = id
      hs[#hs + 1] = f[2]
      zs[#zs + 1] = 0
      zs[#zs + 1] = f[1]
    else
      dels[#dels + 1] = id
    end
  end
  if #dels > 0 then many("HDEL", H, dels, 1) end
  if #hs > 0 then
    many("HSET", H, hs, 2)
    many("ZADD", HT, zs, 2)
  end
end
"""

#: KEYS: 1 meta, 2 hot, 3 hot time, 4 tombstones, 5-8 the version-1 keys (r, t, x, n),
#: then ``nb`` id-map buckets, then ``2 * ns`` keys of the next splits' bucket pairs.
#: ARGV: cutoff_ms, ttl_ms, L, p, nb, ns, target, records: the records one after the
#: other, each ``pack_write(bucket, id8, value, id, payload)`` (one argument is far cheaper
#: for client and server than one per record); ``value`` is the id-map value
#: (``layout.id_value``: ``S6 + digest6 + V12``, then any extra bytes a feature keeps per
#: record, compared with the rest); an empty payload means "out of the window": a stored
#: version is removed. A record whose version is older than the stored one's
#: (``core/versions.py``) changes nothing; one equal to the stored record but for a later
#: version only updates the version. The places marked ``HOOK`` are where a feature that
#: must change in step with the records (a live tail, daily summaries) adds its calls; its
#: keys go last, after the split pairs (from KEYS[9 + nb + 2 * ns]).
#: The hooks in use: the live tail and daily summaries (``live.py``, ``summary.py``). Their
#: keys: KEYS[9 + nb + 2 * ns] the summary, KEYS[10 + nb + 2 * ns] the live stream; ARGV 9-11:
#: the oldest summary day, how long the stream keeps entries (ms), its most entries; a
#: value's extra bytes are the record's summary contribution (7 bytes, or none). A record
#: stored or replaced is announced and its contribution added (the old one taken away); a
#: duplicate is neither.
#: Returns {L, p, {1 stored (new or changed) | 0 unchanged or not stored, ...}}.
WRITE_LUA = (
    "#!lua\n"
    + r"""
local M, H, HT, K = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local R, T, X, N = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
"""
    + MEMBERS_LUA
    + _V2_COMMON
    + SUMMARY_LUA
    + LIVE_LUA
    + r"""
local cutoff, ttl = tonumber(ARGV[1]), ARGV[2]
local L, p = tonumber(ARGV[3]), tonumber(ARGV[4])
local nb, ns, target = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local meta = redis.call("HMGET", M, "L", "p", "n", "wm", "tt", "lg")
local mL, mp = tonumber(meta[1]) or 0, tonumber(meta[2]) or 0
if mL ~= L or mp ~= p then return {-1, mL, mp} end
local n, wm = tonumber(meta[3]) or 0, tonumber(meta[4]) or 0
-- Version-1 keys are looked for until a call finds none (``lg`` = "0" remembers it).
local legacy = false
if meta[6] ~= "0" then legacy = redis.call("EXISTS", R) == 1 end
local tombs = redis.call("EXISTS", K) == 1
summary_begin(KEYS[9 + nb + 2 * ns], ARGV[9])
live_begin(KEYS[10 + nb + 2 * ns], ARGV[11])
local RECORD = ">I2c8I4c0I4c0I4c0"
local out, final, order, gone = {}, {}, {}, {}

local function tombstone(at, id)
  redis.call("HSET", K, at .. id, redis.call("HINCRBY", M, "ts", 1))
  if not tombs then redis.call("PEXPIRE", K, ttl) end  -- a new hash: its TTL now
  tombs = true
end

local blob, pos = ARGV[8], 1
while pos <= #blob do
  local bi, key8, value, id, payload, nextpos = struct.unpack(RECORD, blob, pos)
  pos = nextpos
  local B = KEYS[9 + bi]
  local result = 0
  local lp = nil
  if legacy then lp = redis.call("HGET", R, id) end
  if lp and lp == payload then
    result = 0  -- unchanged and still in the version-1 keys: the migration moves it
  elseif payload ~= "" and not tombs and redis.call("HSETNX", B, key8, value) == 1 then
    -- A new id (the common case): one id-map call.
    -- HOOK stored(id, nil, value): a live tail announces `id` here and below; a daily
    -- summary adds the new value's extra bytes (and removes the old value's, below).
    summary_add(string.sub(value, 25), 1)
    live_announce(id)
    if lp then legacy_remove(id, lp) end
    n = n + 1
    if final[id] == nil then order[#order + 1] = id end
    final[id] = {string.sub(value, 1, 6) .. id, payload}
    result = 1
  else
    if lp then legacy_remove(id, lp) end
    local old = redis.call("HGET", B, key8)
    if old and older(value, old) then
      result = 0  -- an older version of a stored call (a rebuild, a late redelivery)
    elseif payload == "" then
      if old then
        -- HOOK removed(id, old): the record left the window by an update.
        summary_add(string.sub(old, 25), -1)
        local was = string.sub(old, 1, 6)
        tombstone(was, id)
        gone[#gone + 1] = was .. id
        if final[id] == nil then order[#order + 1] = id end
        final[id] = false
        redis.call("HDEL", B, key8)
        n = n - 1
      end
    elseif old and content(old) == content(value) then
      -- The same record from a later event: a duplicate; its version is remembered.
      if old ~= value then redis.call("HSET", B, key8, value) end
    else
      -- HOOK stored(id, old, value): new (old is nil) or changed.
      if old then summary_add(string.sub(old, 25), -1) end
      summary_add(string.sub(value, 25), 1)
      live_announce(id)
      local at = string.sub(value, 1, 6)
      if old then
        local was = string.sub(old, 1, 6)
        if was ~= at then
          tombstone(was, id)
          gone[#gone + 1] = was .. id
        end
      else
        n = n + 1
      end
      if tombs then redis.call("HDEL", K, at .. id) end
      redis.call("HSET", B, key8, value)
      if final[id] == nil then order[#order + 1] = id end
      final[id] = {at .. id, payload}
      result = 1
    end
  end
  out[#out + 1] = result
end
apply_hot(H, HT, order, final, gone)
L, p = grow(n, L, p, target, 9 + nb, ns)
if cutoff > wm then wm = cutoff end
local fields = {"L", L, "p", p, "n", n, "wm", wm}
if not legacy and meta[6] ~= "0" then
  fields[#fields + 1] = "lg"
  fields[#fields + 1] = "0"
end
-- The tenant keys' TTLs are pushed back at most once an hour (``tt``: when, by the
-- cutoff's clock); they are a safety net far longer than that (retention + 1 day).
local refresh = cutoff - (tonumber(meta[5]) or 0) > 3600000
if refresh then
  fields[#fields + 1] = "tt"
  fields[#fields + 1] = cutoff
end
redis.call("HSET", M, unpack(fields))
if refresh then
  for k = 1, 4 do redis.call("PEXPIRE", KEYS[k], ttl) end
end
summary_flush(ttl)
live_finish(ARGV[10], ttl)
return {L, p, out}
"""
)

#: KEYS: 1 meta, then ``2 * ns`` keys of the next splits' bucket pairs. ARGV: L, p, ns,
#: target. Splits while the map is over target. Returns {L, p} ({-1, L, p}: stale shape).
SPLIT_LUA = (
    "#!lua\n"
    + _V2_COMMON
    + r"""
local M = KEYS[1]
local L, p = tonumber(ARGV[1]), tonumber(ARGV[2])
local mL, mp, n = shape(M)
if mL ~= L or mp ~= p then return {-1, mL, mp} end
L, p = grow(n, L, p, tonumber(ARGV[4]), 2, tonumber(ARGV[3]))
redis.call("HSET", M, "L", L, "p", p)
return {L, p}
"""
)

#: Moves version-1 records into the hot tier (``migrate.py``). KEYS: as WRITE_LUA without
#: split pairs, then the tenant's daily summary. ARGV: cutoff_ms, ttl_ms, L, p, records (as
#: WRITE_LUA's, with their current version-1 payloads and their summary contributions as
#: the values' extra bytes), the oldest summary day. A record is moved only if its
#: version-1 payload is still the one given, and then counted in the summary (version 1
#: kept none); one that left the window is only deleted; one the id map already has
#: (written by version 2 meanwhile) is dropped from the version-1 keys. Moved records are
#: not announced on the live tail (they are not new). Returns {L, p, moved}.
MIGRATE_LUA = (
    "#!lua\n"
    + r"""
local M, H, HT, K = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local R, T, X, N = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
"""
    + MEMBERS_LUA
    + _V2_COMMON
    + SUMMARY_LUA
    + r"""
local cutoff, ttl = tonumber(ARGV[1]), ARGV[2]
local L, p = tonumber(ARGV[3]), tonumber(ARGV[4])
local mL, mp, n = shape(M)
if mL ~= L or mp ~= p then return {-1, mL, mp} end
summary_begin(KEYS[#KEYS], ARGV[6])
local RECORD = ">I2c8I4c0I4c0I4c0"
local final, order, moved = {}, {}, 0
local blob, pos = ARGV[5], 1
while pos <= #blob do
  local bi, key8, value, id, payload, nextpos = struct.unpack(RECORD, blob, pos)
  pos = nextpos
  local B = KEYS[9 + bi]
  if redis.call("HGET", R, id) == payload then
    legacy_remove(id, payload)
    if be48(value, 1) >= cutoff and not redis.call("HGET", B, key8) then
      redis.call("HSET", B, key8, value)
      summary_add(string.sub(value, 25), 1)
      n = n + 1
      order[#order + 1] = id
      final[id] = {string.sub(value, 1, 6) .. id, payload}
      moved = moved + 1
    end
  end
end
apply_hot(H, HT, order, final, {})
summary_flush(ttl)
redis.call("HSET", M, "L", L, "p", p, "n", n)
for k = 1, 4 do redis.call("PEXPIRE", KEYS[k], ttl) end
return {L, p, moved}
"""
)

#: Advances the window watermark to ``cutoff`` and removes hot records that left the
#: window, with their id-map entries. KEYS: 1 meta, 2 hot, 3 hot time, then id-map
#: buckets. ARGV: L, p, cutoff_ms, then per record ``struct.pack(">H8s", bucket, id8) +
#: member`` (member: ``S6 + id`` of ``ht``). Returns {L, p, removed}.
TRIM_HOT_LUA = (
    "#!lua\n"
    + _V2_COMMON
    + r"""
local M, H, HT = KEYS[1], KEYS[2], KEYS[3]
local L, p = tonumber(ARGV[1]), tonumber(ARGV[2])
local mL, mp, n, wm = shape(M)
if mL ~= L or mp ~= p then return {-1, mL, mp} end
local exists = redis.call("EXISTS", M) == 1
if exists and tonumber(ARGV[3]) > wm then redis.call("HSET", M, "wm", ARGV[3]) end
local removed = 0
for i = 4, #ARGV do
  local bi, key8 = struct.unpack(">I2c8", ARGV[i])
  local member = string.sub(ARGV[i], 11)
  if redis.call("ZREM", HT, member) == 1 then
    redis.call("HDEL", H, string.sub(member, 7))
    local B = KEYS[4 + bi]
    local v = redis.call("HGET", B, key8)
    if v and string.sub(v, 1, 6) == string.sub(member, 1, 6) then
      redis.call("HDEL", B, key8)
      n = n - 1
    end
    removed = removed + 1
  end
end
if removed > 0 and exists then
  redis.call("HSET", M, "n", n)
  -- An emptied hot tier is deleted: the next write must give the new keys their TTL.
  if redis.call("EXISTS", H) == 0 then redis.call("HDEL", M, "tt") end
end
return {L, p, removed}
"""
)

#: Forgets the id-map entries of a sealed day that left the window. KEYS: 1 meta,
#: 2 the day's segment, then id-map buckets. ARGV: L, p, the segment's nonce, then per
#: record ``struct.pack(">H8s6s", bucket, id8, S6)``: an entry is removed only if it still
#: points at that start (a record moved to another day keeps its entry).
#: Returns {L, p, removed}, {-1, L, p} (stale shape) or {-2} (the segment changed).
FORGET_LUA = (
    "#!lua\n"
    + _V2_COMMON
    + r"""
local M = KEYS[1]
local L, p = tonumber(ARGV[1]), tonumber(ARGV[2])
local mL, mp, n = shape(M)
if mL ~= L or mp ~= p then return {-1, mL, mp} end
if redis.call("GETRANGE", KEYS[2], 2, 9) ~= ARGV[3] then return {-2} end
local removed = 0
for i = 4, #ARGV do
  local bi, key8, at = struct.unpack(">I2c8c6", ARGV[i])
  local B = KEYS[3 + bi]
  local v = redis.call("HGET", B, key8)
  if v and string.sub(v, 1, 6) == at then
    redis.call("HDEL", B, key8)
    n = n - 1
    removed = removed + 1
  end
end
redis.call("HSET", M, "n", n)
return {L, p, removed}
"""
)

#: Installs a sealed day (``sealer.py``). KEYS: 1 meta, 2 hot, 3 hot time, 4 tombstones,
#: 5 the day's segment, 6 its index, 7 the sealed-days hash. ARGV: the nonce the sealer
#: read (b"" for none), mode ("set": new segment and index, "drop": the day is empty,
#: "keep": unchanged), segment, index, day, records, expire-at ms, the hot records sealed
#: (one argument: ``pack_record(member, payload)`` each; one is removed from the hot tier
#: only if its payload is still the one sealed), then the tombstones applied as (field,
#: sequence) pairs (each deleted only if unchanged). Returns 1, or 0 when the segment
#: changed since.
SEAL_LUA = (
    "#!lua\n"
    + _V2_COMMON
    + r"""
local H, HT, K, S, Y, D = KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
if redis.call("GETRANGE", S, 2, 9) ~= ARGV[1] then return 0 end
local mode = ARGV[2]
if mode == "set" then
  redis.call("SET", S, ARGV[3], "PXAT", ARGV[7])
  redis.call("SET", Y, ARGV[4], "PXAT", ARGV[7])
  redis.call("HSET", D, ARGV[5], ARGV[6])
  local at = redis.call("PEXPIRETIME", D)
  if at < tonumber(ARGV[7]) then redis.call("PEXPIREAT", D, ARGV[7]) end
elseif mode == "drop" then
  redis.call("DEL", S, Y)
  redis.call("HDEL", D, ARGV[5])
end
local blob, pos = ARGV[8], 1
local ids, members, payloads = {}, {}, {}
while pos <= #blob do
  local member, payload, nextpos = struct.unpack(">I4c0I4c0", blob, pos)
  pos = nextpos
  members[#members + 1] = member
  ids[#ids + 1] = string.sub(member, 7)
  payloads[#payloads + 1] = payload
end
local nh = #ids
if nh > 0 then
  local now = {}
  for j = 1, nh, 960 do
    local part = redis.call("HMGET", H, unpack(ids, j, math.min(j + 959, nh)))
    for q = 1, #part do now[j + q - 1] = part[q] end
  end
  local del, mem = {}, {}
  for j = 1, nh do
    if now[j] == payloads[j] then
      del[#del + 1] = ids[j]
      mem[#mem + 1] = members[j]
    end
  end
  if #del > 0 then
    many("HDEL", H, del, 1)
    many("ZREM", HT, mem, 1)
    -- An emptied hot tier is deleted: the next write must give the new keys their TTL.
    if redis.call("EXISTS", H) == 0 then redis.call("HDEL", KEYS[1], "tt") end
  end
end
local t0 = 9
local fields = {}
for j = t0, #ARGV, 2 do fields[#fields + 1] = ARGV[j] end
if #fields > 0 then
  local dels = {}
  for j = 1, #fields, 960 do
    local part = redis.call("HMGET", K, unpack(fields, j, math.min(j + 959, #fields)))
    for q = 1, #part do
      local f = j + q - 1
      if part[q] == ARGV[t0 + 2 * (f - 1) + 1] then dels[#dels + 1] = fields[f] end
    end
  end
  if #dels > 0 then many("HDEL", K, dels, 1) end
end
return 1
"""
)

#: Reads one sealed day (read-only). KEYS: 1 the day's segment, 2 its index. ARGV[1] is
#: the mode; every reply starts with the segment's nonce ("" when there is no segment),
#: its chunk count and its record count:
#:
#: - ``walk`` (upper, lower, most chunks): the chunks that may hold records started in
#:   [lower, upper], newest first, at most that many: {.., .., .., "w", -1, first chunk
#:   number, their directory entries, their data (both in chunk order, oldest first), 1 if
#:   older chunks of the range remain}.
#: - ``index`` (upper, lower, most refs, most chunks, number low, number high, extension,
#:   walk chunks, most entries, most share, direction code or ""): the index entries (of
#:   records of that direction, when given) of the number key range
#:   [low, high] (8-byte keys, "" for none) or of the extension key (4 bytes, "" for none;
#:   the one with fewer entries when both are given) whose chunk may hold records started
#:   in [lower, upper], newest first, at most that many and within that many chunks:
#:   {.., .., .., "i", entries of the key in the day, refs (chunk 2 + row 1 bytes each,
#:   newest first), 1 if more remain, then per chunk: number, directory entry, data}. When
#:   the key has more than "most entries" entries, or more than "most share" of the day's
#:   records, the day is walked instead (a ``walk`` reply with "walk chunks", carrying the
#:   number of entries).
#: - ``count`` (4 unused, number low, number high, extension): {.., .., .., entries of the
#:   number range, entries of the extension} (the arguments sit where ``index`` has them).
#: - ``find`` (start): the chunks whose range holds ``start`` (to get one record):
#:   {.., .., .., first chunk number, directory entries, data}.
#: - ``from`` (cutoff): {.., .., .., rows of chunks wholly at or after cutoff, then the
#:   data of the chunks that straddle it}.
SEG_LUA = r"""#!lua flags=no-writes
local S, Y = KEYS[1], KEYS[2]
local mode = ARGV[1]
-- Layout (segment.py): header 18, directory fence (12 bytes per 32 chunks), directory
-- (17 bytes per chunk), data. Only small slices are read: a large GETRANGE into Lua is
-- costly, and so is each call (a few us): the header and the fence of a day of up to
-- 4,096 chunks come in one read.
local W, FW, FE = 17, 12, 32
local head = redis.call("GETRANGE", S, 0, 18 + FW * 128 - 1)
if #head < 18 then return {""} end
local _, nonce, nchunks, count = struct.unpack(">c2c8I4I4", head)
local nfence = math.ceil(nchunks / FE)
local DIR = 18 + FW * nfence
local base = DIR + W * nchunks
local fence
if nfence <= 128 then
  fence = string.sub(head, 19, DIR)
else
  fence = redis.call("GETRANGE", S, 18, DIR - 1)
end
local data_len = nil
local function total()
  if not data_len then data_len = redis.call("STRLEN", S) - base end
  return data_len
end
local function be48(s, at)
  local hi, lo = struct.unpack(">I2I4", s, at)
  return hi * 4294967296 + lo
end
local function dir_bytes(first, last)  -- directory entries first..last (0-based, inclusive)
  return redis.call("GETRANGE", S, DIR + W * first, DIR + W * (last + 1) - 1)
end
-- Chunks whose oldest (at = 0) or newest (at = 6) start is before t (<= t when
-- `inclusive`): both are non-decreasing along the chunks; the fence finds the block of 32.
local function count_chunks(t, at, inclusive)
  local function before(v)
    if inclusive then return v <= t end
    return v < t
  end
  local lo, hi = 0, nfence
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if before(be48(fence, FW * mid + 1 + at)) then lo = mid + 1 else hi = mid end
  end
  if lo == 0 then return 0 end
  local first = (lo - 1) * FE
  local n = math.min(nchunks - first, FE)
  local block = dir_bytes(first, first + n - 1)
  local l2, h2 = 0, n
  while l2 < h2 do
    local mid = math.floor((l2 + h2) / 2)
    if before(be48(block, W * mid + 1 + at)) then l2 = mid + 1 else h2 = mid end
  end
  return first + l2
end
local function upto(t) return count_chunks(t, 0, true) end  -- oldest start <= t
local function below(t) return count_chunks(t, 6, false) end  -- newest start < t
local function entry(dirs, i)  -- entry i of a directory slice: oldest, newest, offset, rows
  local a, b, c, d, off, rows = struct.unpack(">I2I4I2I4I4B", dirs, W * i + 1)
  return a * 4294967296 + b, c * 4294967296 + d, off, rows
end
-- Chunks first..last: their directory entries and their data, one string each.
local function chunks(first, last)
  local dirs = dir_bytes(first, math.min(last + 1, nchunks - 1))
  local _, _, from = entry(dirs, 0)
  local to
  if last + 1 < nchunks then
    _, _, to = entry(dirs, last + 1 - first)
  else
    to = total()
  end
  local data = redis.call("GETRANGE", S, base + from, base + to - 1)
  return string.sub(dirs, 1, W * (last - first + 1)), data
end

-- The chunks that may hold records started in [lower, upper], newest first, at most `most`.
local function walk(upper, lower, most, entries)
  local last = upto(upper) - 1
  local bottom = below(lower)
  local first = math.max(bottom, last - most + 1)
  if last < first then return {nonce, nchunks, count, "w", entries, 0, "", "", 0} end
  local more = 0
  if first > bottom then more = 1 end
  local dirs, data = chunks(first, last)
  return {nonce, nchunks, count, "w", entries, first, dirs, data, more}
end

if mode == "walk" then
  return walk(tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), -1)
end

if mode == "find" then
  local t = tonumber(ARGV[2])
  local first, last = below(t), upto(t) - 1
  if last < first then return {nonce, nchunks, count, 0, "", ""} end
  local dirs, data = chunks(first, last)
  return {nonce, nchunks, count, first, dirs, data}
end

if mode == "from" then
  local cutoff = tonumber(ARGV[2])
  local whole = 0
  local parts = {nonce, nchunks, count, 0}
  local first = below(cutoff)
  if first < nchunks then
    local dirs = dir_bytes(first, nchunks - 1)
    for i = first, nchunks - 1 do
      local o, _, _, rows = entry(dirs, i - first)
      if o >= cutoff then
        whole = whole + rows
      else
        local _, data = chunks(i, i)
        parts[#parts + 1] = data
      end
    end
  end
  parts[4] = whole
  return parts
end

-- The index (segment.py): header 10, number fences (every 4096th key, every 64th key),
-- extension fences (the same), number entries (11 bytes), extension entries (7 bytes).
-- Keys are compared as unsigned 32-bit numbers.
local ih = redis.call("GETRANGE", Y, 0, 9)
local nnum, next_ = 0, 0
if #ih == 10 then
  local _
  _, nnum, next_ = struct.unpack(">c2I4I4", ih)
end
local BLOCK = 64
local function fences(n)
  local f1 = math.ceil(n / BLOCK)
  return math.ceil(f1 / BLOCK), f1
end
local n2, n1 = fences(nnum)
local x2, x1 = fences(next_)
local NUM_F2 = 10
local NUM_F1 = NUM_F2 + 8 * n2
local EXT_F2 = NUM_F1 + 8 * n1
local EXT_F1 = EXT_F2 + 4 * x2
local NUM_AT = EXT_F1 + 4 * x1
local EXT_AT = NUM_AT + 11 * nnum

-- Slices of the index already read by this call (the bounds of one key range mostly read
-- the same fence block and entry block).
local slices = {}
local function slice(from, to)
  local k = from .. ":" .. to
  local v = slices[k]
  if not v then
    v = redis.call("GETRANGE", Y, from, to)
    slices[k] = v
  end
  return v
end
-- Of `cnt` keys `stride` bytes apart from byte `at`, how many are before the target (one
-- read, a binary search in it).
local function count_before(at, cnt, stride, words, t1, t2, strict)
  if cnt <= 0 then return 0 end
  local s = slice(at, at + stride * cnt - 1)
  local fmt = words == 2 and ">I4I4" or ">I4"
  local lo, hi = 0, cnt
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    local a, b = struct.unpack(fmt, s, stride * mid + 1)
    local before
    if a ~= t1 then before = a < t1
    elseif words == 2 and b ~= t2 then before = b < t2
    else before = strict end
    if before then lo = mid + 1 else hi = mid end
  end
  return lo
end
-- First entry (0-based) whose key is >= (strict: >) the target: top fence, one block of
-- the 64-key fence, one block of 64 entries.
local function bound(n, w, words, f2, f1, at, t1, t2, strict)
  local kw = 4 * words
  local c1n = math.ceil(n / BLOCK)
  local c2 = count_before(f2, math.ceil(c1n / BLOCK), kw, words, t1, t2, strict)
  if c2 == 0 then return 0 end
  local b1 = (c2 - 1) * BLOCK
  local c1 = b1 + count_before(f1 + kw * b1, math.min(BLOCK, c1n - b1), kw, words, t1, t2, strict)
  if c1 == 0 then return 0 end
  local b0 = (c1 - 1) * BLOCK
  return b0 + count_before(at + w * b0, math.min(BLOCK, n - b0), w, words, t1, t2, strict)
end
local function range(spec)  -- {at, width, first, end} of the entries of a key spec
  if spec == "num" then
    local l1, l2 = struct.unpack(">I4I4", ARGV[6])
    local h1, h2 = struct.unpack(">I4I4", ARGV[7])
    return {NUM_AT, 11, bound(nnum, 11, 2, NUM_F2, NUM_F1, NUM_AT, l1, l2, false),
            bound(nnum, 11, 2, NUM_F2, NUM_F1, NUM_AT, h1, h2, true)}
  end
  local e = struct.unpack(">I4", ARGV[8])
  return {EXT_AT, 7, bound(next_, 7, 1, EXT_F2, EXT_F1, EXT_AT, e, 0, false),
          bound(next_, 7, 1, EXT_F2, EXT_F1, EXT_AT, e, 0, true)}
end

if mode == "count" then
  local nr, xr = 0, 0
  if ARGV[6] ~= "" then
    local r = range("num")
    nr = r[4] - r[3]
  end
  if ARGV[8] ~= "" then
    local r = range("ext")
    xr = r[4] - r[3]
  end
  return {nonce, nchunks, count, nr, xr}
end

-- mode == "index"
local upper, lower = tonumber(ARGV[2]), tonumber(ARGV[3])
local most_refs, most_chunks = tonumber(ARGV[4]), tonumber(ARGV[5])
local r
if ARGV[6] ~= "" and ARGV[8] ~= "" then
  local rn, rx = range("num"), range("ext")
  if rn[4] - rn[3] <= rx[4] - rx[3] then r = rn else r = rx end
elseif ARGV[6] ~= "" then
  r = range("num")
else
  r = range("ext")
end
local at, w, first, stop = r[1], r[2], r[3], r[4]
local entries = stop - first
if entries > tonumber(ARGV[10]) or entries > tonumber(ARGV[11]) * count then
  -- The key is dense in this day: walking and filtering reads less than its entries would.
  return walk(upper, lower, tonumber(ARGV[9]), entries)
end
-- Chunks above `top` hold only records after `upper`, below `bottom` only records before
-- `lower` (no search when the bounds take in the whole day).
local top, bottom = nchunks - 1, 0
if nchunks > 0 then
  local day_start = math.floor(be48(fence, 1) / 86400000) * 86400000  -- one UTC day
  if upper < day_start + 86400000 - 1 then top = upto(upper) - 1 end
  if lower > day_start then bottom = below(lower) end
end
local refs = {}
-- An entry's row byte carries the record's direction (segment.py): a direction filter
-- drops entries here, before their chunks are read.
local dir = tonumber(ARGV[12] or "")
if stop > first then
  local raw = redis.call("GETRANGE", Y, at + w * first, at + w * stop - 1)
  for i = 0, stop - first - 1 do
    local c, b = struct.unpack(">I2B", raw, w * i + w - 2)
    if c <= top and c >= bottom and (dir == nil or math.floor(b / 32) == dir) then
      refs[#refs + 1] = c * 256 + b % 32
    end
  end
end
table.sort(refs, function(x, y) return x > y end)
local out = {nonce, nchunks, count, "i", entries, "", 0}
local taken, wanted, last = {}, {}, -1
for i = 1, #refs do
  local c = math.floor(refs[i] / 256)
  if c ~= last then
    if #wanted == most_chunks then break end
    wanted[#wanted + 1] = c
    last = c
  end
  if #taken == most_refs then break end
  taken[#taken + 1] = struct.pack(">I2B", c, refs[i] % 256)
end
-- The chunks' directory entries: one read of the whole directory when many are wanted,
-- else two small reads a chunk.
local all = nil
if #wanted > 12 then all = dir_bytes(0, nchunks - 1) end
for _, c in ipairs(wanted) do
  out[#out + 1] = c
  if all then
    local _, _, from = entry(all, c)
    local to
    if c + 1 < nchunks then
      _, _, to = entry(all, c + 1)
    else
      to = total()
    end
    out[#out + 1] = string.sub(all, W * c + 1, W * (c + 1))
    out[#out + 1] = redis.call("GETRANGE", S, base + from, base + to - 1)
  else
    local dirs, data = chunks(c, c)
    out[#out + 1] = dirs
    out[#out + 1] = data
  end
end
out[6] = table.concat(taken)
if #taken < #refs then out[7] = 1 end
return out
"""

#: KEYS: 1 an index zset (members ``[key NUL] S6 + id``), 2 the records hash. ARGV: max,
#: min (lex bounds), count, keyed ("1" when members start with "key NUL"), then optionally
#: filters tested on the payloads' JSON text (``codec.encode``) so that records that cannot
#: match are not sent: the extension as JSON (its exact encoding, e.g. ``"203"``), the
#: digits a number must start with (source or destination), the direction (unused: half
#: the records match it); "" for none; and the most records to send (a walk stops there).
#: A test may pass a record that does not match (the reader tests every filter again),
#: never drop one that does. Walks the index newest first, looking at ``count`` members at
#: most; returns {json, last member looked at, members looked at, 1 if the range may hold
#: more}: json is
#: ``[[id, ...], [payload, ...]]`` (a payload is null if its record vanished), one bulk
#: string that the reader parses with a single orjson call. Used on the hot tier (``ht``,
#: ``h``) and on version 1's keys.
FETCH_LUA = r"""#!lua flags=no-writes
local ms = redis.call("ZRANGE", KEYS[1], ARGV[1], ARGV[2], "BYLEX", "REV", "LIMIT", 0, ARGV[3])
local n = #ms
if n == 0 then return {"[[],[]]", "", 0, 0} end
local full = 0
if n == tonumber(ARGV[3]) then full = 1 end
local keyed = ARGV[4] == "1"
local ext, digits = ARGV[5] or "", ARGV[6] or ""
local most = tonumber(ARGV[8] or "") or n
local function id_of(m)
  local start = 1
  if keyed then start = string.find(m, "\0", 1, true) + 1 end
  return string.sub(m, start + 6)
end
if ext == "" and digits == "" then
  local ids = {}
  for i = 1, n do ids[i] = id_of(ms[i]) end
  local ps = {}
  for i = 1, n, 960 do
    local part = redis.call("HMGET", KEYS[2], unpack(ids, i, math.min(i + 959, n)))
    for q = 1, #part do ps[i + q - 1] = part[q] or "null" end
  end
  return {"[" .. cjson.encode(ids) .. ",[" .. table.concat(ps, ",") .. "]]", ms[n], n, full}
end

-- Cheap tests on the payload's text: the extension is its second element (right after
-- the start); a number that starts with `digits` appears as ",<digits..." (an E.164 int)
-- or as "\"+<digits..." (a string): other places may match too (the reader tests again).
local numeric, quoted = "," .. digits, '"+' .. digits
local function wanted(p)
  if ext ~= "" then
    local c = string.find(p, ",", 1, true)
    if string.sub(p, c + 1, c + #ext + 1) ~= ext .. "," then return false end
  end
  if digits ~= "" then
    return string.find(p, numeric, 1, true) ~= nil or string.find(p, quoted, 1, true) ~= nil
  end
  return true
end
local keep_ids, keep_ps = {}, {}
local looked = 0
-- Payloads are read in pieces, so that a walk that has sent enough stops reading.
for i = 1, n, 128 do
  local ids = {}
  for q = i, math.min(i + 127, n) do ids[#ids + 1] = id_of(ms[q]) end
  local part = redis.call("HMGET", KEYS[2], unpack(ids))
  for q = 1, #ids do
    local p = part[q]
    looked = looked + 1
    if p and wanted(p) then
      keep_ids[#keep_ids + 1] = ids[q]
      keep_ps[#keep_ps + 1] = p
      if #keep_ids >= most then break end
    end
  end
  if #keep_ids >= most then break end
end
if looked < n then full = 1 end
local doc = "[[],[]]"
if #keep_ids > 0 then
  doc = "[" .. cjson.encode(keep_ids) .. ",[" .. table.concat(keep_ps, ",") .. "]]"
end
return {doc, ms[looked], looked, full}
"""


@dataclass(frozen=True)
class Script:
    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())

    async def load(self, redis: Any) -> None:
        """SCRIPT LOAD (on every primary in cluster mode), sent again on a stale connection.

        Right after a Redis restart many requests load at once; redis-py's cluster client
        then sometimes writes on a connection another task is reconnecting and fails with
        ``AttributeError: 'NoneType' object has no attribute 'writelines'``: that counts as
        a stale connection too."""
        for attempt in range(STALE_RESENDS + 1):
            try:
                await redis.script_load(self.source)
                return
            except (RedisConnectionError, RedisTimeoutError, AttributeError):
                if attempt == STALE_RESENDS:
                    raise

    async def run(self, redis: Any, keys: list[str], args: list[Any]) -> Any:
        """One EVALSHA; on NOSCRIPT (a restarted or flushed Redis) load and run again."""
        try:
            return await redis.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await self.load(redis)
            return await redis.evalsha(self.sha, len(keys), *keys, *args)


_LENGTH = struct.Struct(">I").pack
_WRITE_HEAD = struct.Struct(">H8sI").pack


def pack_record(*parts: bytes) -> bytes:
    """Strings as one script argument: each as a 4-byte length and its bytes."""
    out: list[bytes] = []
    for part in parts:
        out += (_LENGTH(len(part)), part)
    return b"".join(out)


def pack_write(bucket: int, key8: bytes, value: bytes, record_id: bytes, payload: bytes) -> bytes:
    """One record of the write and migrate scripts (``RECORD`` in their Lua)."""
    return b"".join(
        (
            _WRITE_HEAD(bucket, key8, len(value)),
            value,
            _LENGTH(len(record_id)),
            record_id,
            _LENGTH(len(payload)),
            payload,
        )
    )


#: How many times a pipeline is sent again after connection errors (see send_once_more_if_stale).
STALE_RESENDS = 3


async def run_pipeline(redis: Any, calls: list[tuple[Script | None, Any, list[Any]]]) -> list[Any]:
    """Commands in one pipeline (one round trip per node), in order: ``(script, keys,
    args)`` is an EVALSHA, ``(None, name, args)`` a plain command. On NOSCRIPT the scripts
    are loaded and the whole pipeline is sent again (callers only pipeline reads and
    idempotent scripts); any other error is raised."""

    async def send() -> list[Any]:
        pipe = redis.pipeline(transaction=False)
        for script, keys, args in calls:
            if script is None:
                pipe.execute_command(keys, *args)
            else:
                # execute_command: redis-py blocks pipe.evalsha() on cluster pipelines, but
                # routes a raw EVALSHA by its first key (all keys share the tenant's slot).
                pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        return list(await pipe.execute(raise_on_error=False))

    results = await send_once_more_if_stale(redis, send)
    if any(isinstance(r, NoScriptError) for r in results):
        for script in {c[0] for c in calls if c[0] is not None}:
            await script.load(redis)
        results = await send()
    for r in results:
        if isinstance(r, Exception):
            raise r
    return results


async def send_once_more_if_stale(
    redis: Any, send: Callable[[], Awaitable[list[Any]]]
) -> list[Any]:
    """``send()`` a pipeline; when a result is a connection error (a pooled connection that a
    Redis restart closed), have ``redis``'s pooled connections (opened before the same
    restart, most likely) reconnected and send it again, up to ``STALE_RESENDS`` times. A pipeline
    executed with ``raise_on_error=False`` keeps such errors as results, so redis-py's own
    retry (which covers single commands, `connection.connect`) never sees them. Only for
    pipelines of reads and idempotent scripts, like every pipeline of the store."""
    results = await send()
    for _ in range(STALE_RESENDS):
        if not any(isinstance(r, RedisConnectionError | RedisTimeoutError) for r in results):
            break
        reconnect_pooled_connections(redis)
        results = await send()
    return results


async def run_many(
    redis: Any, script: Script, calls: list[tuple[list[str], list[Any]]]
) -> list[Any]:
    """EVALSHA ``script`` once per (keys, args), pipelined: one round trip (per node)."""
    return await run_pipeline(redis, [(script, keys, args) for keys, args in calls])


WRITE = Script(WRITE_LUA)
SPLIT = Script(SPLIT_LUA)
MIGRATE = Script(MIGRATE_LUA)
TRIM_HOT = Script(TRIM_HOT_LUA)
FORGET = Script(FORGET_LUA)
SEAL = Script(SEAL_LUA)
SEG = Script(SEG_LUA)
FETCH = Script(FETCH_LUA)
