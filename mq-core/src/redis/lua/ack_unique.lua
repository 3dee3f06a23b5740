-- Ack unique tasks, tasks with per-key concurrency and tracked tasks (entry field `tr` or `ev`,
-- see status.lua: their status becomes `succeeded`, with the result, in the same script): ack and delete each entry, release its
-- task's unique key (delete it, or keep it for the task's `unique_for`) and free its
-- concurrency slot (remove the entry id from its slots key), atomically, so a crash never leaves the key held with
-- no task and a key is never released while its task can still run. Only entries still
-- pending for this consumer are acked: an entry another worker took over (this one's lease
-- lapsed) is that worker's to finish, and its key stays held until then. Plain tasks are acked
-- by the acker's pipelined XDEL + XACK instead.
-- KEYS[1] stream
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] unique key prefix (`{prefix}:{queue}:unique:`),
-- then quadruples: ARGV[4 + 4i] entry id, ARGV[5 + 4i] ms to keep the unique key (0: delete it),
-- ARGV[6 + 4i] the task's slots key (`{prefix}:{queue}:slots:<task>:<ck>`) or '' for none,
-- ARGV[7 + 4i] the handler's result (JSON) of a tracked task, or '' for none
-- Returns {entries acked, 0} (the reply shape of dead.lua).
--
-- The deletion comes first on purpose: under `maxmemory` a script that wrote still runs
-- PEXPIRE, and XDEL/XACK/DEL/PEXPIRE/ZREM never need memory to succeed.
local n = 0
for i = 4, #ARGV, 4 do
  local id = ARGV[i]
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
  if p[1] and p[1][2] == ARGV[2] then
    local entry = redis.call('XRANGE', KEYS[1], id, id)
    redis.call('XDEL', KEYS[1], id)
    redis.call('XACK', KEYS[1], ARGV[1], id)
    if entry[1] then
      local fields = entry[1][2]
      mq_release_unique(ARGV[3], fields, tonumber(ARGV[i + 1]))
      local ttl, ev = mq_tracking(fields)
      local task = (ttl or ev) and mq_task_id(fields)
      if task then
        local result = ARGV[i + 3]
        if result == '' then
          result = nil
        end
        mq_record(mq_base(ARGV[3]), task, ttl, ev, 'succeeded', 'succeeded',
          {'finished', mq_now()}, result)
      end
    end
    if ARGV[i + 2] ~= '' then
      redis.call('ZREM', ARGV[i + 2], id)
    end
    n = n + 1
  end
end
return {n, 0}
