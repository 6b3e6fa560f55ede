-- Ends a new epoch's fence once the SQL store's epoch was moved to it: from
-- here on the edit script accepts edits in it.
-- KEYS: 1 meta
-- ARGV: 1 epoch
-- Returns 1 when the buffer is in that epoch (fenced now or before), 0 when
-- it has moved on (the caller opens again).
local e = redis.call('HGET', KEYS[1], 'epoch')
if e ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[1], 'fence')
return 1
