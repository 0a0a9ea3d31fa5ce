#!lua
-- Upserts a batch of one tenant's records by id (writer.py). Arguments: scripts.write_call.
-- KEYS: 1 meta, 2 hot, 3 hot time, 4 tombstones, 5 daily summary, 6 live stream, then
-- `buckets` id-map buckets, then 2 * `splits` keys: the bucket pairs of the next splits.
-- ARGV: 1 cutoff ms, 2 ttl ms, 3 level, 4 split (the id-map shape the client addressed
-- buckets with), 5 buckets, 6 splits, 7 ids per bucket before a split, 8 the records (one
-- string: scripts.pack_write each), 9 the oldest summary day, 10 how long the live stream
-- keeps entries (ms), 11 its most entries.
-- A record's id-map value is layout.id_value: start, digest, version, then its summary
-- contribution (7 bytes, or none). An empty payload means "out of the window": a stored
-- version is removed. A record older than the stored version (core/versions.py) changes
-- nothing; one equal to the stored record but for a later version only updates the
-- version. A record stored or replaced is announced on the live stream and its
-- contribution added to the summary (the old one taken away); a duplicate is neither.
-- Returns {level, split, {1 stored (new or changed) | 0 unchanged or not stored, ...}},
-- or {-1, level, split} without changing anything when the shape given is stale.
-- @include "common.lua"
-- @include "idmap.lua"
-- @include "summary.lua"
-- @include "live.lua"
local M, H, HT, K = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local FIRST_BUCKET = 7
local cutoff, ttl = tonumber(ARGV[1]), ARGV[2]
local level, split = tonumber(ARGV[3]), tonumber(ARGV[4])
local nbuckets, nsplits, target = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local meta = redis.call("HMGET", M, "level", "split", "ids", "watermark", "ttl_pushed_at")
local stored_level, stored_split = tonumber(meta[1]) or 0, tonumber(meta[2]) or 0
if stored_level ~= level or stored_split ~= split then return {-1, stored_level, stored_split} end
local ids, watermark = tonumber(meta[3]) or 0, tonumber(meta[4]) or 0
local tombs = redis.call("EXISTS", K) == 1
summary_begin(KEYS[5], ARGV[9])
live_begin(KEYS[6], ARGV[11])
local RECORD = ">I2c8I4c0I4c0I4c0"
local out, final, order, gone = {}, {}, {}, {}

local function tombstone(at, id)
  redis.call("HSET", K, at .. id, redis.call("HINCRBY", M, "tombstone_seq", 1))
  if not tombs then redis.call("PEXPIRE", K, ttl) end  -- a new hash: its TTL now
  tombs = true
end

local blob, pos = ARGV[8], 1
while pos <= #blob do
  local slot, id_key, value, id, payload, nextpos = struct.unpack(RECORD, blob, pos)
  pos = nextpos
  local B = KEYS[FIRST_BUCKET + slot]
  local result = 0
  if payload ~= "" and not tombs and redis.call("HSETNX", B, id_key, value) == 1 then
    -- A new id (the common case): one id-map call.
    summary_add(string.sub(value, 25), 1)
    live_announce(id)
    ids = ids + 1
    if final[id] == nil then order[#order + 1] = id end
    final[id] = {string.sub(value, 1, 6) .. id, payload}
    result = 1
  else
    local old = redis.call("HGET", B, id_key)
    if old and older(value, old) then
      result = 0  -- an older version of a stored call (a rebuild, a late redelivery)
    elseif payload == "" then
      if old then
        -- The record left the window by an update.
        summary_add(string.sub(old, 25), -1)
        local was = string.sub(old, 1, 6)
        tombstone(was, id)
        gone[#gone + 1] = was .. id
        if final[id] == nil then order[#order + 1] = id end
        final[id] = false
        redis.call("HDEL", B, id_key)
        ids = ids - 1
      end
    elseif old and content(old) == content(value) then
      -- The same record from a later event: a duplicate; its version is remembered.
      if old ~= value then redis.call("HSET", B, id_key, value) end
    else
      -- New (old is nil: a tombstone hash exists) or changed.
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
        ids = ids + 1
      end
      if tombs then redis.call("HDEL", K, at .. id) end
      redis.call("HSET", B, id_key, value)
      if final[id] == nil then order[#order + 1] = id end
      final[id] = {at .. id, payload}
      result = 1
    end
  end
  out[#out + 1] = result
end

-- The hot tier: the last version of each id written (`final`: {member, payload}, or false
-- for one removed), the members of moved or removed records taken out of the time index.
if #gone > 0 then many("ZREM", HT, gone, 1) end
local hset, zadd, hdel = {}, {}, {}
for _, id in ipairs(order) do
  local f = final[id]
  if f then
    hset[#hset + 1] = id
    hset[#hset + 1] = f[2]
    zadd[#zadd + 1] = 0
    zadd[#zadd + 1] = f[1]
  else
    hdel[#hdel + 1] = id
  end
end
if #hdel > 0 then many("HDEL", H, hdel, 1) end
if #hset > 0 then
  many("HSET", H, hset, 2)
  many("ZADD", HT, zadd, 2)
end

level, split = grow(ids, level, split, target, FIRST_BUCKET + nbuckets, nsplits)
if cutoff > watermark then watermark = cutoff end
local fields = {"level", level, "split", split, "ids", ids, "watermark", watermark}
-- The tenant keys' TTLs are pushed back at most once an hour (`ttl_pushed_at`: when, by
-- the cutoff's clock); they are a safety net far longer than that (retention + 1 day).
local refresh = cutoff - (tonumber(meta[5]) or 0) > 3600000
if refresh then
  fields[#fields + 1] = "ttl_pushed_at"
  fields[#fields + 1] = cutoff
end
redis.call("HSET", M, unpack(fields))
if refresh then
  for k = 1, 4 do redis.call("PEXPIRE", KEYS[k], ttl) end
end
summary_flush(ttl)
live_finish(ARGV[10], ttl)
return {level, split, out}
