-- The live tail (live.py), for a write script: live_begin(key, cap) once,
-- live_announce(id) per record stored or replaced, live_finish(keep_ms, ttl_ms) at the
-- end (trims entries older than keep_ms, by Redis's own clock).
local live_key, live_cap, live_last = nil, 0, nil

local function live_begin(key, cap)
  live_key = key
  live_cap = cap
end

local function live_announce(id)
  live_last = redis.call("XADD", live_key, "MAXLEN", "~", live_cap, "*", "i", id)
end

local function live_finish(keep_ms, ttl)
  if not live_last then return end
  local ms = tonumber(string.match(live_last, "^(%d+)-"))
  local floor = ms - tonumber(keep_ms)
  if floor > 0 then
    redis.call("XTRIM", live_key, "MINID", "~", string.format("%.0f", floor))
  end
  redis.call("PEXPIRE", live_key, ttl)
end
