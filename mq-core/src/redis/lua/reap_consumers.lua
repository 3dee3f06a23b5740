-- Remove consumers that have nothing pending and were idle longer than ARGV[2] ms.
-- XGROUP DELCONSUMER drops a consumer's pending entries, so the pending count is checked in
-- the same script: a consumer with pending entries is never removed here.
-- KEYS[1] stream; ARGV[1] group, ARGV[2] min idle ms (-1: any), ARGV[3] optional: only this
-- consumer (a worker removing itself at a graceful shutdown)
-- Returns the number of consumers removed.
local removed = 0
local consumers = redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
for _, c in ipairs(consumers) do
  local info = {}
  for i = 1, #c, 2 do
    info[c[i]] = c[i + 1]
  end
  if info['pending'] == 0 and info['idle'] > tonumber(ARGV[2])
      and (ARGV[3] == nil or info['name'] == ARGV[3]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
    removed = removed + 1
  end
end
return removed
