-- Schedule a task `delay` ms from now by the server clock.
-- KEYS[1] delayed zset; ARGV[1] delay in ms, ARGV[2] member
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[2])
