-- Retry a task: ack and delete its stream entry and schedule the next attempt, atomically.
-- KEYS[1] stream, KEYS[2] delayed zset
-- ARGV[1] group, ARGV[2] stream entry id, ARGV[3] delay in ms, ARGV[4] delayed member,
-- ARGV[5] consumer, ARGV[6] wake channel (the due time is published there when the retry
-- becomes the earliest delayed task, so promoters wake for it; skipped if PUBLISH is denied)
-- Returns {1, 0}, or {0, 0} if the entry is no longer pending for this consumer (acked
-- meanwhile, or taken over by another worker after this one's lease lapsed): then nothing
-- changes. (The second element, dead entries trimmed, keeps the reply shape of dead.lua.)
--
-- Redis does not roll back a script that fails half way, so before its first write the script
-- checks that every write will succeed (`delayed` is a sorted set or absent, and the user may
-- run each command); if not, it fails with an error naming the problem and nothing changed.
-- The deletion comes first on purpose: under `maxmemory` a script may still run ZADD (which
-- Redis refuses at OOM) once it has written something, so a full Redis can still retry.
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if not p[1] or p[1][2] ~= ARGV[5] then
  return {0, 0}
end
local kind = redis.call('TYPE', KEYS[2])['ok']
if kind ~= 'none' and kind ~= 'zset' then
  return redis.error_reply('WRONGTYPE ' .. KEYS[2] .. ' holds a ' .. kind ..
    ', not a zset: retry not scheduled, nothing changed')
end
for _, c in ipairs({{'XACK', KEYS[1], ARGV[1], ARGV[2]}, {'XDEL', KEYS[1], ARGV[2]},
    {'ZADD', KEYS[2], '0', ARGV[4]}}) do
  if not redis.acl_check_cmd(unpack(c)) then
    return redis.error_reply('NOPERM this user may not run ' .. c[1] .. ' on ' .. c[2] ..
      ': retry not scheduled, nothing changed')
  end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = now + tonumber(ARGV[3])
local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], due, ARGV[4])
if ARGV[6] and (not first[2] or due < tonumber(first[2]))
    and redis.acl_check_cmd('PUBLISH', ARGV[6], 'x') then
  redis.call('PUBLISH', ARGV[6], due)
end
return {1, 0}
