#!lua flags=no-writes
-- Reads one sealed day (segment.py's format), read-only. Arguments: the read_day_*
-- functions of scripts.py. KEYS: 1 the day's segment, 2 its index. ARGV[1] is the mode;
-- every reply starts with the segment's nonce ("" when there is no segment), its chunk
-- count and its record count:
--
-- - walk (upper, lower, most chunks): the chunks that may hold records started in
--   [lower, upper], newest first, at most that many: {.., .., .., "w", -1, first chunk
--   number, their directory entries, their data (both in chunk order, oldest first), 1 if
--   older chunks of the range remain}.
-- - index (upper, lower, most refs, most chunks, number low, number high, extension, walk
--   chunks, most entries, most share, direction code or ""): the index entries (of
--   records of that direction, when given) of the number key range [low, high] or of the
--   extension key (the one with fewer entries when both are given) whose chunk may hold
--   records started in [lower, upper], newest first, at most that many and within that
--   many chunks: {.., .., .., "i", entries of the key in the day, refs (chunk 2 + row 1
--   bytes each, newest first), 1 if more remain, then per chunk: number, directory entry,
--   data}. When the key has more than "most share" of the day's records, or the range
--   holds several keys (a number prefix) and more than "most entries" entries, the day is
--   walked instead (a walk reply with "walk chunks", carrying the number of entries).
-- - count (number low, number high, extension): {.., .., .., entries of the number
--   range, entries of the extension}.
-- - find (start): the chunks whose range holds `start` (to get one record):
--   {.., .., .., first chunk number, directory entries, data}.
-- - from (cutoff): {.., .., .., rows of chunks wholly at or after cutoff, then the data of
--   the chunks that straddle it}.
-- @include "common.lua"
local S, Y = KEYS[1], KEYS[2]
local mode = ARGV[1]
-- The index keys of `count` and `index`: a number range (8 bytes each end) and an
-- extension (4 bytes); "" for none.
local num_low, num_high, ext_key = ARGV[6], ARGV[7], ARGV[8]
if mode == "count" then num_low, num_high, ext_key = ARGV[2], ARGV[3], ARGV[4] end
-- Layout (segment.py): header 18, directory fence (12 bytes per 32 chunks), directory
-- (17 bytes per chunk), data. Only small slices are read: a large GETRANGE into Lua is
-- costly, and so is each call (a few us): the header and the fence of a day of up to
-- 4,096 chunks come in one read.
local W, FW, FE = 17, 12, 32
local head = redis.call("GETRANGE", S, 0, 18 + FW * 128 - 1)
if #head < 18 then return {""} end
local _, nonce, nchunks, count = struct.unpack(">c2c8I4I4", head)
local nfence = math.ceil(nchunks / FE)
local DIR = 18 + FW * nfence
local base = DIR + W * nchunks
local fence
if nfence <= 128 then
  fence = string.sub(head, 19, DIR)
else
  fence = redis.call("GETRANGE", S, 18, DIR - 1)
end
local data_len = nil
local function total()
  if not data_len then data_len = redis.call("STRLEN", S) - base end
  return data_len
end
local function dir_bytes(first, last)  -- directory entries first..last (0-based, inclusive)
  return redis.call("GETRANGE", S, DIR + W * first, DIR + W * (last + 1) - 1)
end
-- Chunks whose oldest (at = 0) or newest (at = 6) start is before t (<= t when
-- `inclusive`): both are non-decreasing along the chunks; the fence finds the block of 32.
local function count_chunks(t, at, inclusive)
  local function before(v)
    if inclusive then return v <= t end
    return v < t
  end
  local lo, hi = 0, nfence
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if before(uint48_at(fence, FW * mid + 1 + at)) then lo = mid + 1 else hi = mid end
  end
  if lo == 0 then return 0 end
  local first = (lo - 1) * FE
  local n = math.min(nchunks - first, FE)
  local block = dir_bytes(first, first + n - 1)
  local l2, h2 = 0, n
  while l2 < h2 do
    local mid = math.floor((l2 + h2) / 2)
    if before(uint48_at(block, W * mid + 1 + at)) then l2 = mid + 1 else h2 = mid end
  end
  return first + l2
end
local function upto(t) return count_chunks(t, 0, true) end  -- oldest start <= t
local function below(t) return count_chunks(t, 6, false) end  -- newest start < t
local function entry(dirs, i)  -- entry i of a directory slice: oldest, newest, offset, rows
  local a, b, c, d, off, rows = struct.unpack(">I2I4I2I4I4B", dirs, W * i + 1)
  return a * 4294967296 + b, c * 4294967296 + d, off, rows
end
-- The data of chunks first..last, from a directory slice `dirs` that starts at chunk
-- `low` and holds the entry of chunk last + 1 when there is one.
local function data_of(dirs, low, first, last)
  local _, _, from = entry(dirs, first - low)
  local to
  if last + 1 < nchunks then
    _, _, to = entry(dirs, last + 1 - low)
  else
    to = total()
  end
  return redis.call("GETRANGE", S, base + from, base + to - 1)
end
-- Chunks first..last: their directory entries and their data, one string each.
local function chunks(first, last)
  local dirs = dir_bytes(first, math.min(last + 1, nchunks - 1))
  return string.sub(dirs, 1, W * (last - first + 1)), data_of(dirs, first, first, last)
end

-- The chunks that may hold records started in [lower, upper], newest first, at most `most`.
local function walk(upper, lower, most, entries)
  local last = upto(upper) - 1
  local bottom = below(lower)
  local first = math.max(bottom, last - most + 1)
  if last < first then return {nonce, nchunks, count, "w", entries, 0, "", "", 0} end
  local more = 0
  if first > bottom then more = 1 end
  local dirs, data = chunks(first, last)
  return {nonce, nchunks, count, "w", entries, first, dirs, data, more}
end

if mode == "walk" then
  return walk(tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), -1)
end

if mode == "find" then
  local t = tonumber(ARGV[2])
  local first, last = below(t), upto(t) - 1
  if last < first then return {nonce, nchunks, count, 0, "", ""} end
  local dirs, data = chunks(first, last)
  return {nonce, nchunks, count, first, dirs, data}
end

if mode == "from" then
  local cutoff = tonumber(ARGV[2])
  local whole = 0
  local parts = {nonce, nchunks, count, 0}
  local first = below(cutoff)
  if first < nchunks then
    local dirs = dir_bytes(first, nchunks - 1)
    for i = first, nchunks - 1 do
      local o, _, _, rows = entry(dirs, i - first)
      if o >= cutoff then
        whole = whole + rows
      else
        local _, data = chunks(i, i)
        parts[#parts + 1] = data
      end
    end
  end
  parts[4] = whole
  return parts
end

-- The index (segment.py): header 10, number fences (every 4096th key, every 64th key),
-- extension fences (the same), number entries (11 bytes), extension entries (7 bytes).
-- Keys are compared as unsigned 32-bit numbers.
local ih = redis.call("GETRANGE", Y, 0, 9)
local nnum, next_ = 0, 0
if #ih == 10 then
  local _
  _, nnum, next_ = struct.unpack(">c2I4I4", ih)
end
local BLOCK = 64
local function fences(n)
  local f1 = math.ceil(n / BLOCK)
  return math.ceil(f1 / BLOCK), f1
end
local n2, n1 = fences(nnum)
local x2, x1 = fences(next_)
local NUM_F2 = 10
local NUM_F1 = NUM_F2 + 8 * n2
local EXT_F2 = NUM_F1 + 8 * n1
local EXT_F1 = EXT_F2 + 4 * x2
local NUM_AT = EXT_F1 + 4 * x1
local EXT_AT = NUM_AT + 11 * nnum

-- Slices of the index already read by this call (the bounds of one key range mostly read
-- the same fence block and entry block).
local slices = {}
local function slice(from, to)
  local k = from .. ":" .. to
  local v = slices[k]
  if not v then
    v = redis.call("GETRANGE", Y, from, to)
    slices[k] = v
  end
  return v
end
-- Of `cnt` keys `stride` bytes apart from byte `at`, how many are before the target (one
-- read, a binary search in it).
local function count_before(at, cnt, stride, words, t1, t2, strict)
  if cnt <= 0 then return 0 end
  local s = slice(at, at + stride * cnt - 1)
  local fmt = words == 2 and ">I4I4" or ">I4"
  local lo, hi = 0, cnt
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    local a, b = struct.unpack(fmt, s, stride * mid + 1)
    local before
    if a ~= t1 then before = a < t1
    elseif words == 2 and b ~= t2 then before = b < t2
    else before = strict end
    if before then lo = mid + 1 else hi = mid end
  end
  return lo
end
-- First entry (0-based) whose key is >= (strict: >) the target: top fence, one block of
-- the 64-key fence, one block of 64 entries.
local function bound(n, w, words, f2, f1, at, t1, t2, strict)
  local kw = 4 * words
  local c1n = math.ceil(n / BLOCK)
  local c2 = count_before(f2, math.ceil(c1n / BLOCK), kw, words, t1, t2, strict)
  if c2 == 0 then return 0 end
  local b1 = (c2 - 1) * BLOCK
  local c1 = b1 + count_before(f1 + kw * b1, math.min(BLOCK, c1n - b1), kw, words, t1, t2, strict)
  if c1 == 0 then return 0 end
  local b0 = (c1 - 1) * BLOCK
  return b0 + count_before(at + w * b0, math.min(BLOCK, n - b0), w, words, t1, t2, strict)
end
local function range(spec)  -- {at, width, first, end} of the entries of a key spec
  if spec == "num" then
    local l1, l2 = struct.unpack(">I4I4", num_low)
    local h1, h2 = struct.unpack(">I4I4", num_high)
    return {NUM_AT, 11, bound(nnum, 11, 2, NUM_F2, NUM_F1, NUM_AT, l1, l2, false),
            bound(nnum, 11, 2, NUM_F2, NUM_F1, NUM_AT, h1, h2, true)}
  end
  local e = struct.unpack(">I4", ext_key)
  return {EXT_AT, 7, bound(next_, 7, 1, EXT_F2, EXT_F1, EXT_AT, e, 0, false),
          bound(next_, 7, 1, EXT_F2, EXT_F1, EXT_AT, e, 0, true)}
end

if mode == "count" then
  local nr, xr = 0, 0
  if num_low ~= "" then
    local r = range("num")
    nr = r[4] - r[3]
  end
  if ext_key ~= "" then
    local r = range("ext")
    xr = r[4] - r[3]
  end
  return {nonce, nchunks, count, nr, xr}
end

-- mode == "index"
local upper, lower = tonumber(ARGV[2]), tonumber(ARGV[3])
local most_refs, most_chunks = tonumber(ARGV[4]), tonumber(ARGV[5])
local r
if num_low ~= "" and ext_key ~= "" then
  local rn, rx = range("num"), range("ext")
  if rn[4] - rn[3] <= rx[4] - rx[3] then r = rn else r = rx end
elseif num_low ~= "" then
  r = range("num")
else
  r = range("ext")
end
local at, w, first, stop = r[1], r[2], r[3], r[4]
local entries = stop - first
local kw = w - 3  -- key bytes of an entry (then chunk 2, row 1)
-- One key (an extension, a whole number): its entries are in (chunk, row) order, so the
-- newest below the bound are found by a binary search and read backwards, whatever the
-- key's count. A range of keys (a number prefix) has to be read whole and sorted.
local one_key = entries > 0 and
  redis.call("GETRANGE", Y, at + w * first, at + w * first + kw - 1) ==
  redis.call("GETRANGE", Y, at + w * (stop - 1), at + w * (stop - 1) + kw - 1)
if entries > tonumber(ARGV[11]) * count or (not one_key and entries > tonumber(ARGV[10])) then
  -- The key is dense in this day: walking and filtering reads less than its entries would.
  return walk(upper, lower, tonumber(ARGV[9]), entries)
end
-- Chunks above `top` hold only records after `upper`, below `bottom` only records before
-- `lower` (no search when the bounds take in the whole day).
local top, bottom = nchunks - 1, 0
if nchunks > 0 then
  local day_start = math.floor(uint48_at(fence, 1) / 86400000) * 86400000  -- one UTC day
  if upper < day_start + 86400000 - 1 then top = upto(upper) - 1 end
  if lower > day_start then bottom = below(lower) end
end
local refs = {}
-- An entry's row byte carries the record's direction (segment.py): a direction filter
-- drops entries here, before their chunks are read.
local dir = tonumber(ARGV[12] or "")
local function keep(c, b)
  if c <= top and c >= bottom and (dir == nil or math.floor(b / 32) == dir) then
    refs[#refs + 1] = c * 256 + b % 32
  end
end
if one_key then
  -- The first entry of a chunk after `top`: everything before it, newest chunk first.
  local lo, hi = first, stop
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    local c = struct.unpack(">I2", redis.call("GETRANGE", Y, at + w * mid + kw, at + w * mid + kw + 1))
    if c <= top then lo = mid + 1 else hi = mid end
  end
  -- Whole chunks, until one more entry than taken (so that the reply can tell that more
  -- remain): within a chunk, entries are in row-byte order, which is not row order.
  local most = most_refs + 1
  local step = math.max(64, 2 * most_refs)
  local last = lo
  local done = false
  while last > first and not done do
    local from = math.max(first, last - step)
    local raw = redis.call("GETRANGE", Y, at + w * from, at + w * last - 1)
    for i = last - from - 1, 0, -1 do
      local c, b = struct.unpack(">I2B", raw, w * i + kw + 1)
      if c < bottom or (#refs >= most and c ~= math.floor(refs[#refs] / 256)) then
        done = true
        break
      end
      keep(c, b)
    end
    last = from
  end
elseif stop > first then
  local raw = redis.call("GETRANGE", Y, at + w * first, at + w * stop - 1)
  for i = 0, stop - first - 1 do keep(struct.unpack(">I2B", raw, w * i + kw + 1)) end
end
table.sort(refs, function(x, y) return x > y end)
local out = {nonce, nchunks, count, "i", entries, "", 0}
local taken, wanted, last = {}, {}, -1
for i = 1, #refs do
  local c = math.floor(refs[i] / 256)
  if c ~= last then
    if #wanted == most_chunks then break end
    wanted[#wanted + 1] = c
    last = c
  end
  if #taken == most_refs then break end
  taken[#taken + 1] = struct.pack(">I2B", c, refs[i] % 256)
end
-- The chunks' directory entries: one read of the directory's slice when many are wanted,
-- else two small reads a chunk. `wanted` is newest first.
local all, low = nil, 0
if #wanted > 12 then
  low = wanted[#wanted]
  all = dir_bytes(low, math.min(wanted[1] + 1, nchunks - 1))
end
for _, c in ipairs(wanted) do
  out[#out + 1] = c
  if all then
    out[#out + 1] = string.sub(all, W * (c - low) + 1, W * (c - low + 1))
    out[#out + 1] = data_of(all, low, c, c)
  else
    local dirs, data = chunks(c, c)
    out[#out + 1] = dirs
    out[#out + 1] = data
  end
end
out[6] = table.concat(taken)
if #taken < #refs then out[7] = 1 end
return out
