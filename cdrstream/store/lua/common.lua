-- Helpers every store script may use. Lua here never orders binary strings with `<`
-- (Lua 5.1 compares with strcoll, which depends on the server's locale): keys and
-- positions are compared as numbers.

-- One command over a long list, in pieces of at most 960 entries of `width` values.
local function many(cmd, key, list, width)
  local step = 960 * width
  for i = 1, #list, step do
    redis.call(cmd, key, unpack(list, i, math.min(i + step - 1, #list)))
  end
end

-- The 6-byte big-endian number at position `at` of `s` (exact: Lua numbers are doubles).
local function uint48_at(s, at)
  local hi, lo = struct.unpack(">I2I4", s, at)
  return hi * 4294967296 + lo
end
