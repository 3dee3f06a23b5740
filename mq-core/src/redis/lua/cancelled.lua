-- Settle a task whose cancellation reached its handler: ack and delete its entry, release its
-- unique key, record it `cancelled` if it is tracked (see status.lua), free its concurrency
-- slot and remove its id from the cancel hash, atomically. It is never retried nor
-- dead-lettered. Only an entry still pending for this consumer is settled.
-- KEYS[1] stream, KEYS[2] cancel hash, KEYS[3..] every other key the script may touch (it
-- declares them, see unique.lua): the task's unique key if its entry has field `u`, its status
-- hash, the event stream, and its slots key if ARGV[6] names one
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] unique key prefix, ARGV[4] entry id,
-- ARGV[5] task id, ARGV[6] the task's slots key or ''
-- Returns {1, 0}, or {0, 0} if the entry is no longer pending for this consumer (the reply
-- shape of dead.lua).
MQ.strict = true
local e = ARGV[4]
local p = redis.call('XPENDING', KEYS[1], ARGV[1], e, e, 1)
if not p[1] or p[1][2] ~= ARGV[2] then
  return {0, 0}
end
local entry = redis.call('XRANGE', KEYS[1], e, e)
local fields = entry[1] and entry[1][2] or {}
local plan = mq_plan(ARGV[3], fields, ARGV[5])
local slots = ARGV[6] ~= '' and mq_usable(ARGV[6], 'zset') and ARGV[6]
-- Planned: nothing below can fail.
redis.call('XDEL', KEYS[1], e)
redis.call('XACK', KEYS[1], ARGV[1], e)
if entry[1] then
  mq_release(plan.unique, 0)
  mq_record(plan, 'cancelled', 'cancelled', {'finished', mq_now()})
end
if slots then
  redis.call('ZREM', slots, e)
end
mq_forget_cancel(plan)
return {1, 0}
