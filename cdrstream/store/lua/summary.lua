-- Daily summaries (summary.py), for a write script: summary_begin(key, floor) once,
-- summary_add(contribution, sign) per change, summary_flush(ttl_ms) at the end. A
-- contribution that is not 7 bytes adds nothing.
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
