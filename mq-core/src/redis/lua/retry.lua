-- Retry a task: ack and delete its stream entry and schedule the next attempt, atomically.
-- The same script snoozes a task (the worker passes the member with its attempt unchanged) and,
-- with KEYS[3], takes a rate token at the start of a rate-limited task (see below).
-- KEYS[1] stream, KEYS[2] delayed zset, KEYS[3] (rate limit only) the limit's state
-- ARGV[1] group, ARGV[2] stream entry id, ARGV[3] delay in ms, ARGV[4] delayed member,
-- ARGV[5] consumer, ARGV[6] wake channel (the due time is published there when the retry
-- becomes the earliest delayed task, so promoters wake for it; skipped if PUBLISH is denied),
-- ARGV[7] (rate limit only) the limit's emission interval in microseconds, else 0,
-- ARGV[8] (per-key concurrency only) the task's slots key (`{prefix}:{queue}:slots:<task>:<ck>`,
-- under the queue's hash tag), or '' / absent: a rescheduled entry leaves it in the same script,
-- ARGV[9], ARGV[10] (slot check only, see below) the key's limit and the slot lease in ms
-- ('' for none when the arguments below follow),
-- ARGV[11..17] (tracked tasks and tasks of a run only, see status.lua) the unique-key prefix
-- (the queue's key base), the task id, the status ttl in ms or '', '1' if the task emits
-- events else '', the status (`retrying`, or `scheduled` for a snooze), the error, and the
-- run's key (entry field `rn`) or '': recorded with the due time in the same script
-- Returns {1, 0}, or {0, 0} if the entry is no longer pending for this consumer (acked
-- meanwhile, or taken over by another worker after this one's lease lapsed): then nothing
-- changes. (The second element, dead entries trimmed, keeps the reply shape of dead.lua.)
--
-- Rate limit (GCRA on the server clock, without bursts): KEYS[3] is the limit's state (see
-- rate.lua: the theoretical arrival time (TAT, unix µs) of the next free slot, the interval
-- that wrote it and the slots given back), absent when the limit is idle. If TAT <= now, the
-- task takes the token (TAT becomes now + interval) and the script returns {2, 0} without
-- touching the entry. Otherwise the task reserves a slot: the earliest given-back slot ahead
-- if there is one, else the slot at TAT (TAT advances by one interval, so every task over the
-- limit gets a slot of its own and none are woken together), and the entry is rescheduled for
-- it as a retry would be (ARGV[3] is ignored; ARGV[4] is the member marked `rs` = the
-- interval, holding its slot, with its attempt unchanged); returns {1, due time in unix ms}.
-- A state written with another interval (the limit changed) first adopts this one: slots
-- reserved under the old one no longer count and their tasks take a token again when they
-- come due. The state expires once its TAT has passed.
--
-- Slot check (per-key concurrency, with ARGV[9]; KEYS[3] absent): ARGV[8] is a sorted set of
-- the entry ids running with this concurrency key, scored by their lease expiry (unix ms). The
-- script drops expired members (a SIGKILLed worker's slots), then if fewer than ARGV[9]
-- remain (or this entry is a member already: a reclaimed entry), adds this entry with expiry
-- now + ARGV[10] and returns {2, 0} without touching the entry. Otherwise the entry is
-- rescheduled as a retry would be (ARGV[4] is its member with its attempt unchanged) for the
-- earliest slot expiry, at most 200 ms ahead (a slot is usually freed by an ack, which does
-- not wake anyone), and the script returns {1, due time in unix ms}.
--
-- Redis does not roll back a script that fails half way, so before its first write the script
-- checks that every write will succeed (`delayed` is a sorted set or absent, the rate state a
-- string or absent, and the user may run each command); if not, it fails with an error naming
-- the problem and nothing changed.
-- The deletion comes first on purpose: under `maxmemory` a script may still run ZADD (which
-- Redis refuses at OOM) once it has written something, so a full Redis can still retry.
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if not p[1] or p[1][2] ~= ARGV[5] then
  return {0, 0}
end
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = math.floor(now_us / 1000)
local due = now + tonumber(ARGV[3])
local rate, state, interval = KEYS[3], nil, tonumber(ARGV[7])
local slots = ARGV[8]
if slots == '' then
  slots = nil
end
local limit = ARGV[9]
if limit == '' then
  limit = nil
end
if slots then
  local kind = redis.call('TYPE', slots)['ok']
  if kind ~= 'none' and kind ~= 'zset' then
    return redis.error_reply('WRONGTYPE ' .. slots .. ' holds a ' .. kind ..
      ', not a zset: nothing changed')
  end
  if not redis.acl_check_cmd('ZADD', slots, '0', 'x') then
    return redis.error_reply('NOPERM this user may not run ZADD on ' .. slots ..
      ': nothing changed')
  end
end
if slots and limit then
  redis.call('ZREMRANGEBYSCORE', slots, '-inf', now)
  if redis.call('ZSCORE', slots, ARGV[2])
      or redis.call('ZCARD', slots) < tonumber(limit) then
    redis.call('ZADD', slots, now + tonumber(ARGV[10]), ARGV[2])
    return {2, 0}
  end
  local first = redis.call('ZRANGE', slots, 0, 0, 'WITHSCORES')
  due = math.max(now + 1, math.min(tonumber(first[2]), now + 200))
end
if rate then
  local kind = redis.call('TYPE', rate)['ok']
  if kind ~= 'none' and kind ~= 'string' then
    return redis.error_reply('WRONGTYPE ' .. rate .. ' holds a ' .. kind ..
      ', not a string: no rate token taken, nothing changed')
  end
  if not redis.acl_check_cmd('SET', rate, '0', 'PX', '1') then
    return redis.error_reply('NOPERM this user may not run SET on ' .. rate ..
      ': no rate token taken, nothing changed')
  end
  state = mq_rate_read(rate, now_us)
  mq_rate_adopt(state, interval, now_us)
  if state.tat <= now_us then
    state.tat = now_us + interval
    mq_rate_write(rate, state, now_us)
    return {2, 0}
  end
  if #state.holes > 0 then
    due = math.ceil(table.remove(state.holes, 1) / 1000)
  else
    due = math.ceil(state.tat / 1000)
    state.tat = state.tat + interval
  end
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
local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
-- A tracked task's record, planned before the first write (see mq_plan).
local plan = ARGV[11] and ARGV[11] ~= '' and
  mq_plan(ARGV[11], {'tr', ARGV[13], 'ev', ARGV[14], 'rn', ARGV[17]}, ARGV[12])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], due, ARGV[4])
if slots then
  redis.call('ZREM', slots, ARGV[2])
end
if rate then
  mq_rate_write(rate, state, now_us)
end
if plan then
  local event = 'retrying'
  if ARGV[15] == 'scheduled' then
    event = 'snoozed'
  end
  mq_record(plan, ARGV[15], event, {'due', due, 'error', ARGV[16]})
end
if ARGV[6] and (not first[2] or due < tonumber(first[2]))
    and redis.acl_check_cmd('PUBLISH', ARGV[6], 'x') then
  redis.call('PUBLISH', ARGV[6], due)
end
if rate or (slots and limit) then
  return {1, due}
end
return {1, 0}
