-- Makes sure a campaign's draft buffer exists and is not behind the durable
-- store. A missing buffer, or one whose rev is below what SQL already saved
-- (Redis lost writes), starts a new epoch at the saved rev; the old keys go.
-- KEYS: 1 meta, 2 paths, 3 log, 4 ids
-- ARGV: 1 saved rev, 2 new epoch, 3 workspace, 4 status
-- Returns {rev, epoch, floor, flushed, status, created (1/0)}
local rev = redis.call('HGET', KEYS[1], 'rev')
local created = 0
if (not rev) or tonumber(rev) < tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
  redis.call('HSET', KEYS[1], 'rev', ARGV[1], 'epoch', ARGV[2], 'floor', ARGV[1],
    'flushed', ARGV[1], 'ws', ARGV[3], 'status', ARGV[4])
  created = 1
end
local m = redis.call('HMGET', KEYS[1], 'rev', 'epoch', 'floor', 'flushed', 'status')
m[6] = tostring(created)
return m
