-- Applies one edit batch atomically: the only arbiter of order.
-- KEYS: 1 meta, 2 paths, 3 log, 4 ids
-- ARGV: 1 epoch, 2 base, 3 session, 4 dedup key (user NUL batch id, or ""),
--       5 entry prefix, 6 entry suffix (the update message is prefix..rev..suffix),
--       7 now (ms), 8 channel, 9 max log length ("check": only report
--       conflicts, apply nothing, answer {'valid', rev} when there are none),
--       10.. pairs of (conflict key, "w" for a write or "t" for a test)
-- Returns {status, rev, conflicting keys...} where status is one of
-- ok, dup, conflict, gap, ahead, epoch, noinit, archived, full.
--
-- Per-path revisions live in the paths hash: "a"..P holds the writes exactly
-- at P, "s"..P the writes at P or below it. Each value keeps the newest
-- writer and the newest write by any other session ("r1 s1 r2 s2"), which is
-- all a "rev by another session above base" question needs. The cost is
-- O(ops x path depth), whatever the document's size.
local meta = redis.call('HMGET', KEYS[1], 'rev', 'epoch', 'floor', 'status')
if not meta[1] then return {'noinit', '0'} end
if meta[2] ~= ARGV[1] then return {'epoch', meta[1], meta[2]} end
if meta[4] == 'archived' then return {'archived', meta[1]} end
local rev = tonumber(meta[1])
local base = tonumber(ARGV[2])
local sess = ARGV[3]
if ARGV[4] ~= '' then
  local prev = redis.call('HGET', KEYS[4], ARGV[4])
  if prev then return {'dup', prev} end
end
if base > rev then return {'ahead', meta[1]} end
if base < tonumber(meta[3]) then return {'gap', meta[1]} end
if ARGV[9] ~= 'check' and redis.call('XLEN', KEYS[3]) >= tonumber(ARGV[9]) then return {'full', meta[1]} end

-- the newest rev written by a session other than sess, from "r1 s1 r2 s2"
local function other(v)
  if not v then return 0 end
  local r1, s1, r2 = string.match(v, '^(%d+) (%S+) ?(%d*)')
  if s1 ~= sess then return tonumber(r1) end
  if r2 == '' then return 0 end
  return tonumber(r2)
end

-- the strict ancestors of an escaped pointer ("/a/b/c" -> "/a", "/a/b")
local function ancestors(p)
  local out = {}
  local i = 2
  while true do
    local j = string.find(p, '/', i, true)
    if not j then break end
    out[#out + 1] = string.sub(p, 1, j - 1)
    i = j + 1
  end
  return out
end

local conflicts = {}
for i = 10, #ARGV, 2 do
  local key = ARGV[i]
  local anc = ancestors(key)
  local fields = {'s' .. key}
  for _, q in ipairs(anc) do fields[#fields + 1] = 'a' .. q end
  local vals = redis.call('HMGET', KEYS[2], unpack(fields))
  for n = 1, #fields do
    if other(vals[n]) > base then
      conflicts[#conflicts + 1] = key
      break
    end
  end
end
if #conflicts > 0 then
  local out = {'conflict', tostring(rev)}
  for _, k in ipairs(conflicts) do out[#out + 1] = k end
  return out
end
if ARGV[9] == 'check' then return {'valid', tostring(rev)} end

rev = rev + 1
local function bump(field)
  local v = redis.call('HGET', KEYS[2], field)
  local nv = rev .. ' ' .. sess
  if v then
    local r1, s1, r2, s2 = string.match(v, '^(%d+) (%S+) ?(%d*) ?(%S*)$')
    if s1 == sess then
      if r2 ~= '' then nv = nv .. ' ' .. r2 .. ' ' .. s2 end
    else
      nv = nv .. ' ' .. r1 .. ' ' .. s1
    end
  end
  return nv
end
for i = 10, #ARGV, 2 do
  if ARGV[i + 1] == 'w' then
    local key = ARGV[i]
    local set = {'a' .. key, bump('a' .. key), 's' .. key, bump('s' .. key)}
    for _, q in ipairs(ancestors(key)) do
      set[#set + 1] = 's' .. q
      set[#set + 1] = bump('s' .. q)
    end
    redis.call('HSET', KEYS[2], unpack(set))
  end
end

local entry = ARGV[5] .. rev .. ARGV[6]
redis.call('HSET', KEYS[1], 'rev', rev)
redis.call('XADD', KEYS[3], rev .. '-1', 'u', entry, 't', ARGV[7], 'k', ARGV[4])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[4], ARGV[4], rev) end
redis.call('PUBLISH', ARGV[8], entry)
return {'ok', tostring(rev)}
