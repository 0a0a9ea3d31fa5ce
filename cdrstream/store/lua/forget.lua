#!lua
-- Forgets the id-map entries of a sealed day that left the window (sweeper.py).
-- Arguments: scripts.forget_call. KEYS: 1 meta, 2 the day's segment, then id-map buckets.
-- ARGV: 1 level, 2 split, 3 the segment's nonce, then per record
-- struct.pack(">H8s6s", bucket slot, id key, start): an entry is removed only if it still
-- points at that start (a record moved to another day keeps its entry).
-- Returns {level, split, removed}, {-1, level, split} (stale shape) or {-2} (the segment
-- changed).
-- @include "common.lua"
-- @include "idmap.lua"
local M = KEYS[1]
local FIRST_BUCKET = 3
local level, split = tonumber(ARGV[1]), tonumber(ARGV[2])
local stored_level, stored_split, ids = read_shape(M)
if stored_level ~= level or stored_split ~= split then return {-1, stored_level, stored_split} end
if redis.call("GETRANGE", KEYS[2], 2, 9) ~= ARGV[3] then return {-2} end
local removed = 0
for i = 4, #ARGV do
  local slot, id_key, at = struct.unpack(">I2c8c6", ARGV[i])
  local B = KEYS[FIRST_BUCKET + slot]
  local v = redis.call("HGET", B, id_key)
  if v and string.sub(v, 1, 6) == at then
    redis.call("HDEL", B, id_key)
    ids = ids - 1
    removed = removed + 1
  end
end
redis.call("HSET", M, "ids", ids)
return {level, split, removed}
