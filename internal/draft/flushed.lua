-- Records that the durable store holds the draft up to rev F, and trims the
-- log below what is both flushed and older than the last `keep` entries
-- (kept so that reconnecting sessions can resume with `since`).
-- KEYS: 1 meta, 2 log, 3 ids, 4 idlog
-- ARGV: 1 F, 2 keep, 3 at most this many entries trimmed per call
-- Returns {rev, flushed, floor, more}: more is '1' when entries that may go
-- are left, for the next call. A call holds Redis for its whole run, and a
-- busy campaign logs thousands of entries between flushes (about 80 ms of
-- trimming in one call at 6,000 edits/s): in chunks, every other
-- campaign's edits run in between.
--
-- The batch ids of the trimmed entries come from the id list ("rev id" in
-- rev order, written by the edit script), so the entries themselves are
-- never read. A log older than the list (written before it existed) is
-- trimmed by reading its entries' ids.
local m = redis.call('HMGET', KEYS[1], 'rev', 'flushed', 'floor')
if not m[1] then return {'0', '0', '0', '0'} end
local rev, flushed, floor = tonumber(m[1]), tonumber(m[2]), tonumber(m[3])
local f = tonumber(ARGV[1])
local chunk = tonumber(ARGV[3])
if f > flushed then
  flushed = f
  redis.call('HSET', KEYS[1], 'flushed', f)
end
local minid = math.min(flushed, rev - tonumber(ARGV[2]))
local more = '0'
if minid > floor then
  local ids = {}
  local last = minid
  local items = redis.call('LRANGE', KEYS[4], 0, chunk - 1)
  local head = items[1] and tonumber(string.match(items[1], '^(%d+)'))
  if head and head <= floor + 1 then
    local n = 0
    for _, it in ipairs(items) do
      local r, id = string.match(it, '^(%d+) (.*)$')
      r = tonumber(r)
      if r > minid then break end
      n = n + 1
      ids[n] = id
      if n == chunk and r < minid then
        -- (an id of a rev trimmed already may sit at the list's head)
        last, more = math.max(r, floor), '1'
      end
    end
    redis.call('LTRIM', KEYS[4], n, -1)
  else
    local old = redis.call('XRANGE', KEYS[2], '-', minid .. '-1', 'COUNT', chunk)
    for _, e in ipairs(old) do
      local fields = e[2]
      for i = 1, #fields, 2 do
        if fields[i] == 'k' and fields[i + 1] ~= '' then ids[#ids + 1] = fields[i + 1] end
      end
    end
    if #old == chunk then
      last = tonumber(string.match(old[#old][1], '^(%d+)'))
      if last < minid then more = '1' end
    end
  end
  -- In chunks: unpack is bounded by Lua's C stack (about 8,000 values).
  for i = 1, #ids, 1000 do
    redis.call('HDEL', KEYS[3], unpack(ids, i, math.min(i + 999, #ids)))
  end
  redis.call('XTRIM', KEYS[2], 'MINID', (last + 1) .. '-0')
  redis.call('HSET', KEYS[1], 'floor', last)
  floor = last
end
return {tostring(rev), tostring(flushed), tostring(floor), more}
