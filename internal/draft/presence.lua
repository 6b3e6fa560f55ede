-- Presence of one campaign: a sorted set of session -> expiry (ms) and a hash
-- of session -> JSON entry. Entries of dead nodes expire by themselves.
-- KEYS: 1 zset, 2 hash
-- ARGV: 1 op (set, touch, del, list), 2 now (ms), 3 channel, 4 ttl (ms), 5.. args
--   set: session, json          touch: sessions...     del: session
-- Every change (and every expiry swept) publishes PRESENCE_CHANGED, which
-- Go replaces with protocol.PresenceChanged when it loads this script.
local op, now, ch, ttl = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local changed = false
-- unpack is bounded by Lua's C stack (about 8,000 values): in chunks.
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for i = 1, #expired, 1000 do
  local j = math.min(i + 999, #expired)
  redis.call('ZREM', KEYS[1], unpack(expired, i, j))
  redis.call('HDEL', KEYS[2], unpack(expired, i, j))
  changed = true
end
if op == 'set' then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[5])
  local old = redis.call('HGET', KEYS[2], ARGV[5])
  if old ~= ARGV[6] then
    redis.call('HSET', KEYS[2], ARGV[5], ARGV[6])
    changed = true
  end
elseif op == 'touch' then
  for i = 5, #ARGV do
    if redis.call('HEXISTS', KEYS[2], ARGV[i]) == 1 then
      redis.call('ZADD', KEYS[1], now + ttl, ARGV[i])
    end
  end
elseif op == 'del' then
  if redis.call('ZREM', KEYS[1], ARGV[5]) == 1 then changed = true end
  redis.call('HDEL', KEYS[2], ARGV[5])
end
if changed then redis.call('PUBLISH', ch, 'PRESENCE_CHANGED') end
if op == 'list' then
  local live = redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')
  local out = {}
  for i = 1, #live, 1000 do
    local got = redis.call('HMGET', KEYS[2], unpack(live, i, math.min(i + 999, #live)))
    for _, v in ipairs(got) do out[#out + 1] = v end
  end
  return out
end
return {}
