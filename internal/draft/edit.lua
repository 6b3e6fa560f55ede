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
--
-- The script runs for every group commit, and its Lua, not the commands it
-- calls, was most of its time: globals are read into locals once, nothing
-- is rebuilt per batch that the call can build once (field names, a key's
-- ancestors), no closure is made per batch, and a rev is formatted once.
local call, pcall, tonumber, tostring, unpack = redis.call, pcall, tonumber, tostring, unpack
local match, find, sub, min, floorf = string.match, string.find, string.sub, math.min, math.floor
local concat = table.concat
local KEYS, ARGV = KEYS, ARGV
local nargs = #ARGV

local meta = call('HMGET', KEYS[1], 'rev', 'epoch', 'floor', 'status', 'run', 'checked', 'fence', 'saved')
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
local now = call('TIME')
local sec = tonumber(now[1])
now = sec * 1000 + floorf(tonumber(now[2]) / 1000)
local saved = '-'
do
  local ok, ls = pcall(call, 'LASTSAVE')
  if ok and type(ls) == 'number' then saved = tostring(ls) end
end
if saved ~= meta[8] or now - tonumber(meta[6] or '0') > 1000 then
  local run = ''
  local ok, info = pcall(call, 'INFO', 'server')
  if ok and type(info) == 'string' then run = match(info, 'run_id:(%w+)') or '' end
  if meta[5] ~= run then return all('restarted', meta[1]) end
  if saved ~= '-' and tonumber(saved) >= sec then saved = '' end
  call('HSET', KEYS[1], 'checked', now, 'saved', saved)
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
local vals, dirty, ndirty = {}, {}, 0

-- What a conflict key needs, built once per call: its own fields ("s"..key,
-- "a"..key) and its strict ancestors' ("/a/b/c" -> "/a", "/a/b"), both
-- fields of each.
local function fieldsOf(key)
  local f = {s = 's' .. key, a = 'a' .. key, anca = {}, ancs = {}}
  local n, i = 0, 2
  while true do
    local j = find(key, '/', i, true)
    if not j then break end
    local q = sub(key, 1, j - 1)
    n = n + 1
    f.anca[n] = 'a' .. q
    f.ancs[n] = 's' .. q
    i = j + 1
  end
  f.n = n
  return f
end

local out, nout = {}, 0
local function answer(status, r, extra)
  out[nout + 1] = status
  out[nout + 2] = r
  if not extra then
    out[nout + 3] = '0'
    nout = nout + 3
    return
  end
  out[nout + 3] = tostring(#extra)
  nout = nout + 3
  for k = 1, #extra do
    nout = nout + 1
    out[nout] = extra[k]
  end
end

-- the newest rev written by a session other than sess, from "r1 s1 r2 s2"
local function other(v, sess)
  if not v then return 0 end
  local r1, s1, r2 = match(v, '^(%d+) (%S+) ?(%d*)')
  if s1 ~= sess then return tonumber(r1) end
  if r2 == '' then return 0 end
  return tonumber(r2)
end

-- records a write by me (rev .. ' ' .. sess) in field f
local function bump(f, me, sess)
  local v = vals[f]
  local nv = me
  if v then
    local r1, s1, r2, s2 = match(v, '^(%d+) (%S+) ?(%d*) ?(%S*)$')
    if s1 == sess then
      if r2 ~= '' then nv = me .. ' ' .. r2 .. ' ' .. s2 end
    else
      nv = me .. ' ' .. r1 .. ' ' .. s1
    end
  end
  if v ~= nv then
    vals[f] = nv
    if not dirty[f] then
      dirty[f] = true
      ndirty = ndirty + 1
      dirty[ndirty] = f
    end
  end
end

-- One pass ahead reads what every batch needs in two calls, one HMGET of
-- the batch ids and one of the paths fields: each redis.call costs a few
-- microseconds whatever it reads, and a group commit carries up to 128
-- batches. The batches are then decided one by one on the cached values,
-- each seeing what the ones before it wrote (vals, seen); the writes go out
-- in one HSET each at the end.
local seen, ids, fields, fieldsFor = {}, {}, {}, {}
do
  local nids, nfields = 0, 0
  -- keys share ancestors ("/fields" of every "/fields/x"): each field once
  local function need(field)
    if vals[field] == nil then
      vals[field] = false
      nfields = nfields + 1
      fields[nfields] = field
    end
  end
  local j = 6
  while j <= nargs do
    local dedup, n = ARGV[j + 2], tonumber(ARGV[j + 6])
    if dedup ~= '' and seen[dedup] == nil then
      seen[dedup] = false
      nids = nids + 1
      ids[nids] = dedup
    end
    for k = j + 7, j + 6 + 2 * n, 2 do
      local key = ARGV[k]
      if not fieldsFor[key] then
        local f = fieldsOf(key)
        fieldsFor[key] = f
        need(f.s)
        need(f.a)
        for q = 1, f.n do
          need(f.anca[q])
          need(f.ancs[q])
        end
      end
    end
    j = j + 7 + 2 * n
  end
  -- In chunks: unpack is bounded by Lua's C stack (about 8,000 values).
  for c = 1, nids, 1000 do
    local e = min(c + 999, nids)
    local got = call('HMGET', KEYS[4], unpack(ids, c, e))
    for n = c, e do seen[ids[n]] = got[n - c + 1] or false end
  end
  for c = 1, nfields, 1000 do
    local e = min(c + 999, nfields)
    local got = call('HMGET', KEYS[2], unpack(fields, c, e))
    for n = c, e do vals[fields[n]] = got[n - c + 1] or false end
  end
end

local published, npub, idlog, nidlog, newids, nnew = {}, 0, {}, 0, {}, 0
local conflicts = {}
local i = 6
while i <= nargs do
  local at = i -- base, session, dedup, prefix, suffix, nonce, n, then the keys
  local base, sess, dedup = tonumber(ARGV[at]), ARGV[at + 1], ARGV[at + 2]
  local n = tonumber(ARGV[at + 6])
  local first = at + 7
  local last = first + 2 * n - 1
  i = last + 1

  local prev = false
  if dedup ~= '' then prev = seen[dedup] end
  if prev then
    local r, nn = match(prev, '^(%d+) ?(.*)$')
    answer('dup', r, {nn})
  elseif base > rev then
    answer('ahead', tostring(rev))
  elseif base < floor then
    answer('gap', tostring(rev))
  elseif not check and room <= 0 then
    answer('full', tostring(rev))
  else
    local nc = 0
    for k = first, last, 2 do
      local key = ARGV[k]
      local f = fieldsFor[key]
      local hit = other(vals[f.s], sess) > base
      if not hit then
        local anca = f.anca
        for q = 1, f.n do
          if other(vals[anca[q]], sess) > base then hit = true break end
        end
      end
      if hit then
        nc = nc + 1
        conflicts[nc] = key
      end
    end
    if nc > 0 then
      answer('conflict', tostring(rev), {unpack(conflicts, 1, nc)})
    elseif check then
      answer('valid', tostring(rev))
    else
      rev = rev + 1
      room = room - 1
      local revs = tostring(rev)
      local me = revs .. ' ' .. sess
      for k = first, last, 2 do
        if ARGV[k + 1] == 'w' then
          local f = fieldsFor[ARGV[k]]
          bump(f.a, me, sess)
          bump(f.s, me, sess)
          local ancs = f.ancs
          for q = 1, f.n do bump(ancs[q], me, sess) end
        end
      end
      local entry = ARGV[at + 3] .. revs .. ARGV[at + 4]
      call('XADD', KEYS[3], revs .. '-1', 'u', entry, 't', ARGV[2], 'k', dedup)
      if dedup ~= '' then
        local mark = revs .. ' ' .. ARGV[at + 5]
        seen[dedup] = mark
        newids[nnew + 1] = dedup
        newids[nnew + 2] = mark
        nnew = nnew + 2
        nidlog = nidlog + 1
        idlog[nidlog] = revs .. ' ' .. dedup
      end
      npub = npub + 1
      published[npub] = entry
      answer('ok', revs)
    end
  end
end

if ndirty > 0 then
  local set = {}
  for d = 1, ndirty do
    local f = dirty[d]
    set[2 * d - 1] = f
    set[2 * d] = vals[f]
  end
  for c = 1, #set, 1000 do
    call('HSET', KEYS[2], unpack(set, c, min(c + 999, #set)))
  end
end
if rev ~= tonumber(meta[1]) then call('HSET', KEYS[1], 'rev', rev) end
for c = 1, nnew, 1000 do
  call('HSET', KEYS[4], unpack(newids, c, min(c + 999, nnew)))
end
for c = 1, nidlog, 1000 do
  call('RPUSH', KEYS[5], unpack(idlog, c, min(c + 999, nidlog)))
end
if npub > 0 then
  call('PUBLISH', ARGV[3], '@' .. ARGV[5] .. '\n' .. concat(published, '\n'))
end
return out
