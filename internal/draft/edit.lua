-- Applies edit batches atomically, one after the other: the only arbiter
-- of order. Several sessions' batches to one campaign go in one call (group
-- commit); each is checked against the state the ones before it left, so
-- first-writer-wins holds batch by batch exactly as if they came one by one.
-- KEYS: 1 meta, 2 paths, 3 log, 4 ids, 5 idlog (the ids in rev order, "rev id", so
--       that trimming the log never reads its entries)
-- ARGV: 1 epoch, 2 now (ms), 3 channel, 4 max log length ("check": only
--       report conflicts, apply nothing, answer 'valid' when there are
--       none), 5 origin (the calling node's tag), then per batch: base, session, dedup key (user NUL batch id,
--       or a key of the server's own), entry prefix, entry suffix (the
--       update message is prefix..rev..suffix), nonce (unique to the call:
--       a client library's retry of the same call finds its own dedup
--       entry), n, then n pairs of (conflict key, "w" for a write or "t" for
--       a test).
-- Returns, per batch, status, rev, count, then count extra values (the
-- conflicting keys, or a dup's nonce). status is one of ok, dup, conflict,
-- gap, ahead, full, valid. A refusal of the whole buffer answers
-- {'*', status, rev[, epoch]} with status one of epoch, noinit, restarted,
-- unfenced, archived.
--
-- The accepted entries go out in one PUBLISH per call, "@" origin "\n" and
-- the entries joined by "\n" (see draft.Updates): the calling node drops
-- its own copy by the tag alone, and a group costs one message, not one per
-- batch.
--
-- Per-path revisions live in the paths hash: "a"..P holds the writes exactly
-- at P, "s"..P the writes at P or below it. Each value keeps the newest
-- writer and the newest write by any other session ("r1 s1 r2 s2"), which is
-- all a "rev by another session above base" question needs. The cost is
-- O(ops x path depth), whatever the document's size.
local meta = redis.call('HMGET', KEYS[1], 'rev', 'epoch', 'floor', 'status', 'run', 'checked', 'fence', 'saved')
-- A refusal of the whole buffer: every batch gets it.
local function all(status, rev, extra)
  if extra then return {'*', status, rev or '0', extra} end
  return {'*', status, rev or '0'}
end
if not meta[1] then return all('noinit', '0') end
if meta[2] ~= ARGV[1] then return all('epoch', meta[1], meta[2]) end
if meta[7] == 'pending' then return all('unfenced', meta[1]) end
-- A buffer from an earlier run of this server (a restart, a failover) may
-- miss acknowledged writes: accept nothing until a reopen starts a new
-- epoch. Asking the server its run id (INFO) costs more than the rest of a
-- small call, so it is asked only when LASTSAVE differs from what the last
-- check saw, or that check is over a second old. A restarted server's
-- LASTSAVE is its start time, so a restart, however fast, changes it; a
-- LASTSAVE of the current second is not recorded (a restart within that
-- second would repeat it), and asks again on the next call. A replica that
-- took over has its own LASTSAVE, and a failover takes longer than a
-- second. A BGSAVE changes it too, which costs one more question. 'checked'
-- and 'saved' are restored with the buffer. (A server without INFO or
-- LASTSAVE in scripts, the in-process one, has run id "" and LASTSAVE "-".)
local now = redis.call('TIME')
local sec = tonumber(now[1])
now = sec * 1000 + math.floor(tonumber(now[2]) / 1000)
local saved = '-'
do
  local ok, ls = pcall(redis.call, 'LASTSAVE')
  if ok and type(ls) == 'number' then saved = tostring(ls) end
end
if saved ~= meta[8] or now - tonumber(meta[6] or '0') > 1000 then
  local run = ''
  local ok, info = pcall(redis.call, 'INFO', 'server')
  if ok and type(info) == 'string' then run = string.match(info, 'run_id:(%w+)') or '' end
  if meta[5] ~= run then return all('restarted', meta[1]) end
  if saved ~= '-' and tonumber(saved) >= sec then saved = '' end
  redis.call('HSET', KEYS[1], 'checked', now, 'saved', saved)
end
if meta[4] == 'archived' then return all('archived', meta[1]) end

local rev = tonumber(meta[1])
local floor = tonumber(meta[3])
local check = ARGV[4] == 'check'
local room = 0
-- The log holds exactly the revs above floor: every accepted batch adds
-- rev+1, and a trim removes up to the new floor in the same call that
-- moves it; so its length is rev - floor, without asking.
if not check then room = tonumber(ARGV[4]) - (rev - floor) end

-- Field values of the paths hash, read once per field (HMGET) and written
-- once at the end (one HSET); vals caches them across the call's batches,
-- so each batch sees what the ones before it wrote. dirty lists the changed.
local vals, dirty = {}, {}
local function load(fields)
  local need = {}
  for _, f in ipairs(fields) do
    if vals[f] == nil then need[#need + 1] = f end
  end
  -- In chunks: unpack is bounded by Lua's C stack (about 8,000 values).
  for i = 1, #need, 1000 do
    local j = math.min(i + 999, #need)
    local got = redis.call('HMGET', KEYS[2], unpack(need, i, j))
    for n = i, j do vals[need[n]] = got[n - i + 1] or false end
  end
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

local out = {}
local function answer(status, r, extra)
  out[#out + 1] = status
  out[#out + 1] = tostring(r)
  out[#out + 1] = tostring(#extra)
  for _, x in ipairs(extra) do out[#out + 1] = x end
end

-- One pass ahead reads what every batch needs in two calls, one HMGET of
-- the batch ids and one of the paths fields: each redis.call costs a few
-- microseconds whatever it reads, and a group commit carries up to 128
-- batches. The batches are then decided one by one on the cached values,
-- each seeing what the ones before it wrote (vals, seen); the writes go out
-- in one HSET each at the end. ancOf keeps each key's ancestors, computed
-- once per call.
local seen, ids, fields, ancOf = {}, {}, {}, {}
do
  local j = 6
  while j <= #ARGV do
    local dedup, n = ARGV[j + 2], tonumber(ARGV[j + 6])
    if dedup ~= '' and seen[dedup] == nil then
      seen[dedup] = false
      ids[#ids + 1] = dedup
    end
    for k = j + 7, j + 6 + 2 * n, 2 do
      local key = ARGV[k]
      if not ancOf[key] then
        ancOf[key] = ancestors(key)
        fields[#fields + 1] = 's' .. key
        fields[#fields + 1] = 'a' .. key
        for _, q in ipairs(ancOf[key]) do
          fields[#fields + 1] = 'a' .. q
          fields[#fields + 1] = 's' .. q
        end
      end
    end
    j = j + 7 + 2 * n
  end
  for c = 1, #ids, 1000 do
    local got = redis.call('HMGET', KEYS[4], unpack(ids, c, math.min(c + 999, #ids)))
    for n = c, math.min(c + 999, #ids) do seen[ids[n]] = got[n - c + 1] or false end
  end
  load(fields)
end

local published, idlog, newids = {}, {}, {}
local i = 6
while i <= #ARGV do
  local base, sess, dedup = tonumber(ARGV[i]), ARGV[i + 1], ARGV[i + 2]
  local prefix, suffix, nonce = ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  local n = tonumber(ARGV[i + 6])
  local first = i + 7
  i = first + 2 * n

  -- the newest rev written by a session other than sess, from "r1 s1 r2 s2"
  local function other(v)
    if not v then return 0 end
    local r1, s1, r2 = string.match(v, '^(%d+) (%S+) ?(%d*)')
    if s1 ~= sess then return tonumber(r1) end
    if r2 == '' then return 0 end
    return tonumber(r2)
  end

  local prev = false
  if dedup ~= '' then prev = seen[dedup] end
  if prev then
    local r, nn = string.match(prev, '^(%d+) ?(.*)$')
    answer('dup', r, {nn})
  elseif base > rev then
    answer('ahead', rev, {})
  elseif base < floor then
    answer('gap', rev, {})
  elseif not check and room <= 0 then
    answer('full', rev, {})
  else
    local ops = {}
    for k = first, first + 2 * n - 1, 2 do
      local key = ARGV[k]
      ops[#ops + 1] = {key = key, write = ARGV[k + 1] == 'w', anc = ancOf[key]}
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
      answer('conflict', rev, conflicts)
    elseif check then
      answer('valid', rev, {})
    else
      rev = rev + 1
      room = room - 1
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
      local entry = prefix .. rev .. suffix
      redis.call('XADD', KEYS[3], rev .. '-1', 'u', entry, 't', ARGV[2], 'k', dedup)
      if dedup ~= '' then
        seen[dedup] = rev .. ' ' .. nonce
        newids[#newids + 1] = dedup
        newids[#newids + 1] = seen[dedup]
        idlog[#idlog + 1] = rev .. ' ' .. dedup
      end
      published[#published + 1] = entry
      answer('ok', rev, {})
    end
  end
end

local set = {}
for f in pairs(dirty) do
  set[#set + 1] = f
  set[#set + 1] = vals[f]
end
for i = 1, #set, 1000 do
  redis.call('HSET', KEYS[2], unpack(set, i, math.min(i + 999, #set)))
end
if rev ~= tonumber(meta[1]) then redis.call('HSET', KEYS[1], 'rev', rev) end
for i = 1, #newids, 1000 do
  redis.call('HSET', KEYS[4], unpack(newids, i, math.min(i + 999, #newids)))
end
for i = 1, #idlog, 1000 do
  redis.call('RPUSH', KEYS[5], unpack(idlog, i, math.min(i + 999, #idlog)))
end
if #published > 0 then
  redis.call('PUBLISH', ARGV[3], '@' .. ARGV[5] .. '\n' .. table.concat(published, '\n'))
end
return out
