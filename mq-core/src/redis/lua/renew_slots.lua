-- Renew the concurrency slots of a worker's running tasks with per-key concurrency (run with the
-- lease renewal, only when such tasks are in flight): each entry still pending for this
-- consumer gets its slot's expiry set to now + the lease (server clock), so its slot lives as
-- long as its lease and expires with it if the worker dies.
-- KEYS[1] stream; ARGV[1] group, ARGV[2] consumer, ARGV[3] lease in ms, then pairs:
-- ARGV[4 + 2i] entry id, ARGV[5 + 2i] its slots key (`{prefix}:{queue}:slots:<task>:<ck>`)
-- Returns the number of slots renewed.
local t = redis.call('TIME')
local expiry = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[3])
local n = 0
for i = 4, #ARGV, 2 do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
    redis.call('ZADD', ARGV[i + 1], expiry, ARGV[i])
    n = n + 1
  end
end
return n
