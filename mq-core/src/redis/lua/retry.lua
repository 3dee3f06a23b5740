-- Retry a task: ack and delete its stream entry and schedule the next attempt, atomically.
-- KEYS[1] stream, KEYS[2] delayed zset
-- ARGV[1] group, ARGV[2] stream entry id, ARGV[3] delay in ms, ARGV[4] delayed member,
-- ARGV[5] consumer
-- Returns 1, or 0 if the entry is no longer pending for this consumer (acked meanwhile, or
-- taken over by another worker after this one's lease lapsed): then nothing changes.
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if not p[1] or p[1][2] ~= ARGV[5] then
  return 0
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[4])
return 1
