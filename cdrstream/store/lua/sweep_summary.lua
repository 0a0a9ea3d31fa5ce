#!lua
-- KEYS: 1 a tenant's summary. ARGV: 1 the oldest day to keep. Raises `floor` (never
-- lowers it) and drops the fields of older days. Returns the fields removed.
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
