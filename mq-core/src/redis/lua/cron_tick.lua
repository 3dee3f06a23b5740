-- Enqueue one tick of a cron schedule, exactly once however many workers run the schedule:
-- only the caller whose `SET tick-key NX PX ttl` succeeds adds the task, and only if the tick
-- is later than the schedule's last recorded tick (so a tick is never enqueued after a later
-- one, and a worker that was stalled past a tick does not add it late). Nothing is held
-- across calls: a worker killed at any point leaves either the whole tick done or nothing.
-- The Redis server's clock (`TIME`) is the judge of time: a tick more than ARGV[6] ms ahead
-- of it comes from a worker whose clock is ahead and is refused (recorded, it would make every
-- other worker skip its ticks until real time caught up), and a recorded last tick that far
-- ahead (left by such a worker before ticks were checked) does not count.
-- A schedule renamed from another (ARGV[7]) counts the old name's tick key and last tick as its
-- own and sets both tick keys: during a rolling deploy, old workers ticking under the old name
-- and new ones under the new enqueue each tick once. Each tick it enqueues removes the old
-- name's fields from the schedules hash, so the old name is no longer listed once no old
-- worker runs.
-- KEYS[1] tick key (`{prefix}:{queue}:cron:<name>:<tick>`), KEYS[2] schedules hash
-- (`{prefix}:{queue}:cron`), KEYS[3] the queue's stream, KEYS[4] (renamed schedules only) the
-- old name's tick key
-- ARGV[1] tick key expiry (ms), ARGV[2] schedule name, ARGV[3] tick (unix ms), ARGV[4] the
-- schedule's next tick after this one (unix ms, '' if none), ARGV[5] '1' for a catch-up of a
-- missed tick (added only if the schedule has a recorded last tick), else '0'; ARGV[6] how far
-- ahead of the server's clock a tick may be (ms); ARGV[7] the old name ('' if none);
-- ARGV[8..] the stream entry's field/value pairs
-- Returns {1, server time} if the task was added, {0, server time} if not, {-1, server time}
-- if the tick is too far ahead of the server's clock (server time in unix ms).
local tick = tonumber(ARGV[3])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local ahead = now + tonumber(ARGV[6])
if tick > ahead then
  return {-1, now}
end
local old = ARGV[7]
-- The schedule's last tick: a recorded one too far ahead does not count.
local function last_of(name)
  local l = tonumber(redis.call('HGET', KEYS[2], name .. ':last'))
  if l and l > ahead then
    return nil
  end
  return l
end
local last = last_of(ARGV[2])
if old ~= '' then
  local l = last_of(old)
  if l and (not last or l > last) then
    last = l
  end
  if redis.call('EXISTS', KEYS[4]) == 1 then
    return {0, now}
  end
end
if last and last >= tick then
  return {0, now}
end
if not last and ARGV[5] == '1' then
  return {0, now}
end
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
  return {0, now}
end
local fields = {}
if old ~= '' then
  redis.call('SET', KEYS[4], '1', 'PX', ARGV[1])
  redis.call('HDEL', KEYS[2], old .. ':expr', old .. ':tz', old .. ':last', old .. ':next')
end
for i = 8, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
redis.call('XADD', KEYS[3], '*', unpack(fields))
redis.call('HSET', KEYS[2], ARGV[2] .. ':last', ARGV[3])
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[2], ARGV[2] .. ':next', ARGV[4])
end
return {1, now}
