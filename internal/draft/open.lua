-- Makes sure a campaign's draft buffer exists and can be trusted.
-- * A missing buffer, or one whose rev is below what SQL already saved (Redis
--   lost writes), starts a new epoch at the saved rev; the old keys go.
-- * A buffer written by an earlier run of this Redis server (it restarted
--   and reloaded its AOF, or a replica took over) keeps its content but
--   starts a new epoch: the last acknowledged writes may be missing from it,
--   and a new epoch makes every client resync and resend what it holds. No
--   rev is ever reused within an epoch.
-- 'start' records the saved rev when the epoch began: every rev at or below
-- it was durable in SQL, whatever the epoch.
-- A new epoch is 'fence' pending: the edit script refuses edits until the
-- caller has moved the SQL store's epoch to it and confirmed (confirm.lua),
-- so a flush built in the old epoch can no longer commit once it accepts.
-- An archived status in SQL is final: it is always written here, so a
-- status change that never reached Redis is repaired on the next open.
-- KEYS: 1 meta, 2 paths, 3 log, 4 ids
-- ARGV: 1 saved rev, 2 new epoch, 3 workspace, 4 status
-- Returns {rev, epoch, floor, flushed, status, created (1/0), start, pending (1/0)}
local run = ''
local ok, info = pcall(redis.call, 'INFO', 'server')
if ok and type(info) == 'string' then run = string.match(info, 'run_id:(%w+)') or '' end
local m = redis.call('HMGET', KEYS[1], 'rev', 'run', 'flushed')
local created = 0
if (not m[1]) or tonumber(m[1]) < tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
  redis.call('HSET', KEYS[1], 'rev', ARGV[1], 'epoch', ARGV[2], 'floor', ARGV[1],
    'flushed', ARGV[1], 'ws', ARGV[3], 'status', ARGV[4], 'run', run, 'start', ARGV[1], 'fence', 'pending')
  created = 1
elseif m[2] ~= run then
  local start = math.max(tonumber(m[3] or '0'), tonumber(ARGV[1]))
  redis.call('HSET', KEYS[1], 'epoch', ARGV[2], 'run', run, 'start', start, 'flushed', start, 'fence', 'pending')
  created = 1
end
if ARGV[4] == 'archived' then redis.call('HSET', KEYS[1], 'status', 'archived') end
local out = redis.call('HMGET', KEYS[1], 'rev', 'epoch', 'floor', 'flushed', 'status', 'start', 'fence')
local pending = '0'
if out[7] == 'pending' then pending = '1' end
return {out[1], out[2], out[3], out[4], out[5], tostring(created), out[6] or out[3], pending}
