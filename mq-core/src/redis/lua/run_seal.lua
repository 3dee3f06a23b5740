-- Seals run KEYS[1] (see run.lua): no task is to be added, so the run ends once
-- every task counted in it has ended, at once if they all have (mq_run_end). With ARGV[1] (a
-- stream key, else ''), the completion task's entry, fields and values ARGV[2..], is kept in
-- the hash as `cs` and `f:<field>` and added to that stream when the run ends, exactly once.
-- A run sealed before stays as it was (its completion task too).
-- Returns {1 if this call sealed the run else 0, 1 if the run ended in this call else 0}, or
-- an error if KEYS[1] is not a run.
if redis.call('TYPE', KEYS[1])['ok'] ~= 'hash' or redis.call('HEXISTS', KEYS[1], 'total') == 0 then
  return redis.error_reply('MQNORUN ' .. KEYS[1] .. ' is not a run (or it expired)')
end
if redis.call('HEXISTS', KEYS[1], 'sealed') == 1 then
  return {0, 0}
end
local now = mq_now()
if ARGV[1] ~= '' then
  local args = {'cs', ARGV[1]}
  for i = 2, #ARGV - 1, 2 do
    args[#args + 1] = 'f:' .. ARGV[i]
    args[#args + 1] = ARGV[i + 1]
  end
  redis.call('HSET', KEYS[1], unpack(args))
end
redis.call('HSET', KEYS[1], 'sealed', now)
if mq_run_end(KEYS[1], now) then
  return {1, 1}
end
return {1, 0}
