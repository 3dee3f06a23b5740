-- Delayed tasks: a helper prepended to the scripts that schedule a task (scripts.rs joins this
-- file and the script into one).

-- Adds `member` to the delayed set `delayed`, due `when` ms from now by the server clock, or,
-- with `when` == '-', at unix ms `at`; publishes the due time on `wake` when it becomes the
-- earliest delayed task, so promoters wake for it (skipped if the user may not PUBLISH).
-- Returns the due time (unix ms).
local function mq_schedule(delayed, when, at, member, wake)
  local due
  if when == '-' then
    due = tonumber(at)
  else
    local t = redis.call('TIME')
    due = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(when)
  end
  local first = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')
  redis.call('ZADD', delayed, due, member)
  if (not first[2] or due < tonumber(first[2])) and redis.acl_check_cmd('PUBLISH', wake, 'x') then
    redis.call('PUBLISH', wake, due)
  end
  return due
end

