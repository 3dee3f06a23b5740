-- One consistent snapshot of a queue's sizes: every count is read in the same script, so a
-- task moved meanwhile (promoted, retried, dead-lettered, acked) is counted exactly once.
-- KEYS[1] stream, KEYS[2] delayed zset, KEYS[3] dead stream
-- ARGV[1] consumer group
-- Returns {stream length, pending of the group, delayed, dead, consumers of the group};
-- pending and consumers are 0 when the stream or the group does not exist.
local length = redis.call('XLEN', KEYS[1])
local pending, consumers = 0, 0
if redis.call('EXISTS', KEYS[1]) == 1 then
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local info = {}
    for i = 1, #g, 2 do
      info[g[i]] = g[i + 1]
    end
    if info['name'] == ARGV[1] then
      pending = info['pending']
      consumers = info['consumers']
    end
  end
end
return {length, pending, redis.call('ZCARD', KEYS[2]), redis.call('XLEN', KEYS[3]), consumers}
