-- Renew the leases of a worker's in-flight tasks: reset the idle time of those pending entries
-- that this consumer still owns (XCLAIM ... JUSTID leaves the delivery count alone). Entries
-- now owned by another consumer are not touched: stealing them back would run a task twice.
-- While the queue's cancel hash exists (some task's cancellation was asked for), it also
-- reports which of the renewed entries belong to a cancelled task: those whose task id maps to
-- that very entry id in the hash (a mark left by an earlier run of the same task, e.g. one that
-- finished before its cancellation was seen and was later replayed, names another entry and
-- is ignored). Nothing more is done per entry while nothing is cancelled.
-- KEYS[1] stream, KEYS[2] cancel hash (task id -> '<entry id> <unix ms>', see cancel.lua)
-- ARGV[1] group, ARGV[2] consumer, ARGV[3..] entry ids
-- Returns {ids that are no longer ours (lease lost, or already acked), ids of cancelled tasks}.
local mine, lost, cancelled = {}, {}, {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
    mine[#mine + 1] = ARGV[i]
  else
    lost[#lost + 1] = ARGV[i]
  end
end
if #mine > 0 then
  local args = {KEYS[1], ARGV[1], ARGV[2], 0}
  for _, id in ipairs(mine) do
    args[#args + 1] = id
  end
  args[#args + 1] = 'JUSTID'
  redis.call('XCLAIM', unpack(args))
  if KEYS[2] and redis.call('EXISTS', KEYS[2]) == 1 then
    for _, id in ipairs(mine) do
      local entry = redis.call('XRANGE', KEYS[1], id, id)
      local task = entry[1] and mq_task_id(entry[1][2])
      local mark = task and redis.call('HGET', KEYS[2], task)
      -- '<entry id> <unix ms>' (or the entry id alone, as marks were first written)
      if mark and (mark == id or string.sub(mark, 1, #id + 1) == id .. ' ') then
        cancelled[#cancelled + 1] = id
      end
    end
  end
end
return {lost, cancelled}
