#!lua flags=no-writes
-- Reads the hot tier newest first (reader.py). Arguments: scripts.read_hot_call.
-- KEYS: 1 hot time, 2 hot. ARGV: 1 max, 2 min (lex bounds of the time index), 3 the most
-- members to look at, 4 the extension as JSON (its exact encoding, e.g. "203") or "",
-- 5 the digits a number must start with (source or destination) or "", 6 the most records
-- to send (the walk stops there). The filters are tested on the payloads' JSON text
-- (codec.encode) so that records that cannot match are not sent: a test may pass a record
-- that does not match (the reader tests every filter again), never drop one that does.
-- Returns {json, last member looked at, members looked at, 1 if the range may hold
-- more}: json is [[id, ...], [payload, ...]] (a payload is null if its record vanished),
-- one bulk string that the reader parses with a single orjson call.
local ms = redis.call("ZRANGE", KEYS[1], ARGV[1], ARGV[2], "BYLEX", "REV", "LIMIT", 0, ARGV[3])
local n = #ms
if n == 0 then return {"[[],[]]", "", 0, 0} end
local full = 0
if n == tonumber(ARGV[3]) then full = 1 end
local ext, digits = ARGV[4], ARGV[5]
local most = tonumber(ARGV[6])
local function id_of(m) return string.sub(m, 7) end
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
