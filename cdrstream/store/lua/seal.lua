#!lua
-- Installs a sealed day (sealer.py; the sweep's "drop"). Arguments: scripts.seal_call.
-- KEYS: 1 meta, 2 hot, 3 hot time, 4 tombstones, 5 the day's segment, 6 its index, 7 the
-- sealed-days hash. ARGV: 1 the nonce the sealer read ("" for none), 2 mode ("set": new
-- segment and index, "drop": the day is empty, "keep": unchanged), 3 segment, 4 index,
-- 5 day, 6 records, 7 expire-at ms, 8 the hot records sealed (one string:
-- scripts.pack_strings(member, payload) each; one is removed from the hot tier only if its
-- payload is still the one sealed), then the tombstones applied as (field, sequence)
-- pairs (each deleted only if unchanged). Returns 1, or 0 when the segment changed since.
-- @include "common.lua"
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
    if redis.call("EXISTS", H) == 0 then redis.call("HDEL", KEYS[1], "ttl_pushed_at") end
  end
end
local FIRST_TOMBSTONE = 9
local fields = {}
for j = FIRST_TOMBSTONE, #ARGV, 2 do fields[#fields + 1] = ARGV[j] end
if #fields > 0 then
  local dels = {}
  for j = 1, #fields, 960 do
    local part = redis.call("HMGET", K, unpack(fields, j, math.min(j + 959, #fields)))
    for q = 1, #part do
      local f = j + q - 1
      if part[q] == ARGV[FIRST_TOMBSTONE + 2 * (f - 1) + 1] then dels[#dels + 1] = fields[f] end
    end
  end
  if #dels > 0 then many("HDEL", K, dels, 1) end
end
return 1
