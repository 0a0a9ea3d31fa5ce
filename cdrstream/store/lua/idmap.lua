-- The id map (layout.py): values and linear hashing. Needs common.lua.

-- An id-map value (layout.id_value) is: start (6 bytes), digest (6), version (ended_at 6,
-- event time 6), extra bytes. The record is everything but the version.
local function content(v)
  return string.sub(v, 1, 12) .. string.sub(v, 25)
end

-- Whether `v` is an older version than `w` (core/versions.py: the later ended_at, then
-- the later event time; on a tie neither is older: the last written wins).
local function older(v, w)
  local a, b = uint48_at(v, 13), uint48_at(w, 13)
  if a ~= b then return a < b end
  return uint48_at(v, 19) < uint48_at(w, 19)
end

-- Linear hashing: move the ids of bucket `from` whose bit `level` is set into bucket `to`.
local function split_bucket(from, to, level)
  local all = redis.call("HGETALL", from)
  local stay, move = {}, {}
  local bit = 2 ^ level
  for i = 1, #all, 2 do
    local h = struct.unpack(">I4", all[i])
    local list = stay
    if math.floor(h / bit) % 2 == 1 then list = move end
    list[#list + 1] = all[i]
    list[#list + 1] = all[i + 1]
  end
  if #move > 0 then
    redis.call("DEL", from)  -- rebuilt: a bucket that outgrew its listpack becomes one again
    many("HSET", from, stay, 2)
    many("HSET", to, move, 2)
  end
end

-- Split while the map holds more than `target` ids per bucket, using the declared bucket
-- pairs KEYS[first], KEYS[first + 1], ... (at most `count` splits). Returns level, split.
local function grow(ids, level, split, target, first, count)
  local s = 0
  while s < count and ids > (2 ^ level + split) * target do
    split_bucket(KEYS[first + 2 * s], KEYS[first + 2 * s + 1], level)
    s = s + 1
    split = split + 1
    if split == 2 ^ level then
      level = level + 1
      split = 0
    end
  end
  return level, split
end

-- The id-map shape and size of the tenant (meta hash `meta`): level, split, ids, watermark.
local function read_shape(meta)
  local m = redis.call("HMGET", meta, "level", "split", "ids", "watermark")
  return tonumber(m[1]) or 0, tonumber(m[2]) or 0, tonumber(m[3]) or 0, tonumber(m[4]) or 0
end
