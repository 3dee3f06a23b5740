-- Schedule a task: add it to the delayed set, due `delay` ms from now by the server clock (or
-- at an absolute time), and wake the promoters if it is now the earliest delayed task.
-- KEYS[1] delayed zset
-- ARGV[1] delay in ms, or '-' to use ARGV[2]; ARGV[2] due time in unix ms (if ARGV[1] is '-');
-- ARGV[3] member; ARGV[4] wake channel (its due time is published there when it becomes the
-- earliest; skipped if the user may not PUBLISH)
-- Returns the due time.
local due
if ARGV[1] == '-' then
  due = tonumber(ARGV[2])
else
  local t = redis.call('TIME')
  due = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
redis.call('ZADD', KEYS[1], due, ARGV[3])
if (not first[2] or due < tonumber(first[2])) and redis.acl_check_cmd('PUBLISH', ARGV[4], 'x') then
  redis.call('PUBLISH', ARGV[4], due)
end
return due
