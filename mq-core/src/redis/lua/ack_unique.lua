-- Ack a unique task, a task with per-key concurrency or a tracked task (entry field `tr` or
-- `ev`, see status.lua: its status becomes `succeeded`, with the result, in the same script):
-- ack and delete its entry, release its unique key (delete it, or keep it for the task's
-- `unique_for`), free its concurrency slot (remove the entry id from its slots key) and forget
-- a cancellation asked for it, atomically, so a crash never leaves the key held with no task
-- and a key is never released while its task can still run. Only an entry still pending for
-- this consumer is acked: an entry another worker took over (this one's lease lapsed) is that
-- worker's to finish, and its key stays held until then. Plain tasks are acked by the acker's
-- pipelined XDEL + XACK instead.
-- KEYS[1] stream, KEYS[2..] every other key the script may touch (it declares them, see
-- unique.lua): the task's unique key if its entry has field `u`, its status hash, the event
-- stream, the cancel hash, and its slots key if ARGV[6] names one
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] unique key prefix (`{prefix}:{queue}:unique:`),
-- ARGV[4] entry id, ARGV[5] ms to keep the unique key (0: delete it), ARGV[6] the task's slots
-- key (`{prefix}:{queue}:slots:<task>:<ck>`) or '' for none, ARGV[7] the handler's result
-- (JSON) of a tracked task, or '' for none, ARGV[8] the task id
-- Returns {entries acked (1 or 0), 0} (the reply shape of dead.lua).
--
-- Every optional write is planned before the first write (mq_plan), so none can fail after it.
-- The deletion comes first on purpose: under `maxmemory` a script that wrote still runs
-- PEXPIRE, and XDEL/XACK/DEL/PEXPIRE/ZREM never need memory to succeed.
MQ.strict = true
local id = ARGV[4]
local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
if not p[1] or p[1][2] ~= ARGV[2] then
  return {0, 0}
end
local entry = redis.call('XRANGE', KEYS[1], id, id)
local fields = entry[1] and entry[1][2] or {}
local plan = mq_plan(ARGV[3], fields, ARGV[8])
local slots = ARGV[6] ~= '' and mq_usable(ARGV[6], 'zset') and ARGV[6]
-- Planned: nothing below can fail.
redis.call('XDEL', KEYS[1], id)
redis.call('XACK', KEYS[1], ARGV[1], id)
if entry[1] then
  mq_release(plan.unique, tonumber(ARGV[5]))
  local result = ARGV[7]
  if result == '' then
    result = nil
  end
  mq_record(plan, 'succeeded', 'succeeded', {'finished', mq_now()}, result)
end
if slots then
  redis.call('ZREM', slots, id)
end
mq_forget_cancel(plan)
return {1, 0}
