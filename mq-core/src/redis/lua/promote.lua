-- Move due members of a queue's delayed set into its stream, atomically.
-- KEYS[1] delayed zset, KEYS[2] stream, KEYS[3] dead stream
-- ARGV[1] max members to move
-- A member is a MessagePack map of stream-entry fields (see envelope.rs). The due time is
-- compared with the server clock, so worker clocks do not matter. A member that is not such a
-- map (undecodable, a non-string value, too many fields) goes to the dead stream with the
-- reason instead, so one bad member never blocks the ones behind it.
-- Returns the number of members moved (including those sent to dead).
local MAX_FIELDS = 64
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, m in ipairs(due) do
  local ok, f = pcall(cmsgpack.unpack, m)
  local reason = nil
  local args = {}
  if not ok or type(f) ~= 'table' or next(f) == nil then
    reason = 'undecodable delayed member'
  else
    for k, v in pairs(f) do
      local tv = type(v)
      if (type(k) ~= 'string' and type(k) ~= 'number') or (tv ~= 'string' and tv ~= 'number') then
        reason = 'delayed member has a value that is not a string or number'
        break
      end
      args[#args + 1] = tostring(k)
      args[#args + 1] = v
      if #args > 2 * MAX_FIELDS then
        reason = 'delayed member has more than ' .. MAX_FIELDS .. ' fields'
        break
      end
    end
  end
  if reason == nil then
    redis.call('XADD', KEYS[2], '*', unpack(args))
  else
    redis.call('XADD', KEYS[3], '*', 'raw', m, 'error', reason, 'failed_at', now)
  end
  redis.call('ZREM', KEYS[1], m)
end
return #due
