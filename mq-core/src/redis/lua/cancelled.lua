-- Settle a task whose cancellation reached its handler: ack and delete its entry, release its
-- unique key, record it `cancelled` if it is tracked (see status.lua), free its concurrency slot and remove its id from the cancel hash, atomically. It
-- is never retried nor dead-lettered. Only an entry still pending for this consumer is settled.
-- KEYS[1] stream, KEYS[2] cancel hash
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] unique key prefix, ARGV[4] entry id,
-- ARGV[5] task id, ARGV[6] the task's slots key or ''
-- Returns {1, 0}, or {0, 0} if the entry is no longer pending for this consumer (the reply
-- shape of dead.lua).
local e = ARGV[4]
local p = redis.call('XPENDING', KEYS[1], ARGV[1], e, e, 1)
if not p[1] or p[1][2] ~= ARGV[2] then
  return {0, 0}
end
local entry = redis.call('XRANGE', KEYS[1], e, e)
redis.call('XDEL', KEYS[1], e)
redis.call('XACK', KEYS[1], ARGV[1], e)
if entry[1] then
  local fields = entry[1][2]
  mq_release_unique(ARGV[3], fields, 0)
  local ttl, ev = mq_tracking(fields)
  if ttl or ev then
    mq_record(mq_base(ARGV[3]), ARGV[5], ttl, ev, 'cancelled', 'cancelled',
      {'finished', mq_now()})
  end
end
if ARGV[6] ~= '' then
  redis.call('ZREM', ARGV[6], e)
end
redis.call('HDEL', KEYS[2], ARGV[5])
return {1, 0}
