#!lua
-- Advances the window watermark to the cutoff and removes hot records that left the
-- window, with their id-map entries (sweeper.py). Arguments: scripts.trim_hot_call.
-- KEYS: 1 meta, 2 hot, 3 hot time, then id-map buckets. ARGV: 1 level, 2 split, 3 cutoff
-- ms, then per record struct.pack(">H8s", bucket slot, id key) .. its hot time member.
-- Returns {level, split, removed}, or {-1, level, split} when the shape given is stale.
-- @include "common.lua"
-- @include "idmap.lua"
local M, H, HT = KEYS[1], KEYS[2], KEYS[3]
local FIRST_BUCKET = 4
local level, split = tonumber(ARGV[1]), tonumber(ARGV[2])
local stored_level, stored_split, ids, watermark = read_shape(M)
if stored_level ~= level or stored_split ~= split then return {-1, stored_level, stored_split} end
local exists = redis.call("EXISTS", M) == 1
if exists and tonumber(ARGV[3]) > watermark then redis.call("HSET", M, "watermark", ARGV[3]) end
local removed = 0
for i = 4, #ARGV do
  local slot, id_key = struct.unpack(">I2c8", ARGV[i])
  local member = string.sub(ARGV[i], 11)
  if redis.call("ZREM", HT, member) == 1 then
    redis.call("HDEL", H, string.sub(member, 7))
    local B = KEYS[FIRST_BUCKET + slot]
    local v = redis.call("HGET", B, id_key)
    if v and string.sub(v, 1, 6) == string.sub(member, 1, 6) then
      redis.call("HDEL", B, id_key)
      ids = ids - 1
    end
    removed = removed + 1
  end
end
if removed > 0 and exists then
  redis.call("HSET", M, "ids", ids)
  -- An emptied hot tier is deleted: the next write must give the new keys their TTL.
  if redis.call("EXISTS", H) == 0 then redis.call("HDEL", M, "ttl_pushed_at") end
end
return {level, split, removed}
