-- Move due members of a queue's delayed set into its stream, atomically.
-- KEYS[1] delayed zset, KEYS[2] stream, KEYS[3] dead stream
-- ARGV[1] max members to move
-- A member is a MessagePack map of stream-entry fields (see envelope.rs). The due time is
-- compared with the server clock, so worker clocks do not matter.
-- Returns the number of members moved (including undecodable ones sent to dead).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, m in ipairs(due) do
  local ok, f = pcall(cmsgpack.unpack, m)
  if ok and type(f) == 'table' and next(f) ~= nil then
    local args = {}
    for k, v in pairs(f) do
      args[#args + 1] = tostring(k)
      args[#args + 1] = v
    end
    redis.call('XADD', KEYS[2], '*', unpack(args))
  else
    redis.call('XADD', KEYS[3], '*', 'raw', m, 'error', 'undecodable delayed member',
      'failed_at', now)
  end
  redis.call('ZREM', KEYS[1], m)
end
return #due
