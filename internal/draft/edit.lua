-- Applies one edit batch atomically: the only arbiter of order.
-- KEYS: 1 meta, 2 paths, 3 log, 4 ids
-- ARGV: 1 epoch, 2 base, 3 session, 4 dedup key (user NUL batch id, or ""),
--       5 entry prefix, 6 entry suffix (the update message is prefix..rev..suffix),
--       7 now (ms), 8 channel, 9 max log length ("check": only report
--       conflicts, apply nothing, answer {'valid', rev} when there are none),
--       10 nonce (unique to this call: a client library's retry of the same
--       call finds its own dedup entry and reports 'dup' with it),
--       11.. pairs of (conflict key, "w" for a write or "t" for a test)
-- Returns {status, rev, conflicting keys...} where status is one of
-- ok, dup (rev, nonce of the call that applied it), conflict, gap, ahead,
-- epoch, noinit, restarted, unfenced, archived, full.
--
-- Per-path revisions live in the paths hash: "a"..P holds the writes exactly
-- at P, "s"..P the writes at P or below it. Each value keeps the newest
-- writer and the newest write by any other session ("r1 s1 r2 s2"), which is
-- all a "rev by another session above base" question needs. The cost is
-- O(ops x path depth), whatever the document's size.
local meta = redis.call('HMGET', KEYS[1], 'rev', 'epoch', 'floor', 'status', 'run', 'checked', 'fence')
if not meta[1] then return {'noinit', '0'} end
if meta[2] ~= ARGV[1] then return {'epoch', meta[1], meta[2]} end
if meta[7] == 'pending' then return {'unfenced', meta[1]} end
-- A buffer from an earlier run of this server (a restart, a failover) may
-- miss acknowledged writes: accept nothing until a reopen starts a new
-- epoch. Asking the server its run id costs ~10 us, so it is asked at most
-- every 50 ms per campaign: 'checked' is restored with the buffer, so the
-- first edit after any restart slower than that asks. (A server without
-- INFO in scripts, the in-process one, has run id "".)
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if now - tonumber(meta[6] or '0') > 50 then
  local run = ''
  local ok, info = pcall(redis.call, 'INFO', 'server')
  if ok and type(info) == 'string' then run = string.match(info, 'run_id:(%w+)') or '' end
  if meta[5] ~= run then return {'restarted', meta[1]} end
  redis.call('HSET', KEYS[1], 'checked', now)
end
if meta[4] == 'archived' then return {'archived', meta[1]} end
local rev = tonumber(meta[1])
local base = tonumber(ARGV[2])
local sess = ARGV[3]
if ARGV[4] ~= '' then
  local prev = redis.call('HGET', KEYS[4], ARGV[4])
  if prev then
    local r, n = string.match(prev, '^(%d+) ?(.*)$')
    return {'dup', r, n}
  end
end
if base > rev then return {'ahead', meta[1]} end
if base < tonumber(meta[3]) then return {'gap', meta[1]} end
if ARGV[9] ~= 'check' and redis.call('XLEN', KEYS[3]) >= tonumber(ARGV[9]) then return {'full', meta[1]} end

-- Field values of the paths hash, read once (one HMGET) and written once
-- (one HSET) per batch; vals caches them, dirty lists the changed ones.
local vals, dirty = {}, {}
local function load(fields)
  local need = {}
  for _, f in ipairs(fields) do
    if vals[f] == nil then need[#need + 1] = f end
  end
  if #need > 0 then
    local got = redis.call('HMGET', KEYS[2], unpack(need))
    for n, f in ipairs(need) do vals[f] = got[n] or false end
  end
end

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

local ops = {}
for i = 11, #ARGV, 2 do
  local key = ARGV[i]
  local op = {key = key, write = ARGV[i + 1] == 'w', anc = ancestors(key)}
  local fields = {'s' .. key, 'a' .. key}
  for _, q in ipairs(op.anc) do
    fields[#fields + 1] = 'a' .. q
    fields[#fields + 1] = 's' .. q
  end
  load(fields)
  ops[#ops + 1] = op
end

local conflicts = {}
for _, op in ipairs(ops) do
  local hit = other(vals['s' .. op.key]) > base
  if not hit then
    for _, q in ipairs(op.anc) do
      if other(vals['a' .. q]) > base then hit = true break end
    end
  end
  if hit then conflicts[#conflicts + 1] = op.key end
end
if #conflicts > 0 then
  local out = {'conflict', tostring(rev)}
  for _, k in ipairs(conflicts) do out[#out + 1] = k end
  return out
end
if ARGV[9] == 'check' then return {'valid', tostring(rev)} end

rev = rev + 1
local me = rev .. ' ' .. sess
local function bump(field)
  local v = vals[field]
  local nv = me
  if v then
    local r1, s1, r2, s2 = string.match(v, '^(%d+) (%S+) ?(%d*) ?(%S*)$')
    if s1 == sess then
      if r2 ~= '' then nv = me .. ' ' .. r2 .. ' ' .. s2 end
    else
      nv = me .. ' ' .. r1 .. ' ' .. s1
    end
  end
  if vals[field] ~= nv then
    vals[field] = nv
    dirty[field] = true
  end
end
for _, op in ipairs(ops) do
  if op.write then
    bump('a' .. op.key)
    bump('s' .. op.key)
    for _, q in ipairs(op.anc) do bump('s' .. q) end
  end
end
local set = {}
for f in pairs(dirty) do
  set[#set + 1] = f
  set[#set + 1] = vals[f]
end
if #set > 0 then redis.call('HSET', KEYS[2], unpack(set)) end

local entry = ARGV[5] .. rev .. ARGV[6]
redis.call('HSET', KEYS[1], 'rev', rev)
redis.call('XADD', KEYS[3], rev .. '-1', 'u', entry, 't', ARGV[7], 'k', ARGV[4])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[4], ARGV[4], rev .. ' ' .. ARGV[10]) end
redis.call('PUBLISH', ARGV[8], entry)
return {'ok', tostring(rev)}
