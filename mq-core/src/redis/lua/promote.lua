-- Move due members of a queue's delayed set into its stream, atomically, oldest due first:
-- at most ARGV[1] members and, after the first, no more once ARGV[2] bytes of members moved,
-- so that one call never blocks Redis for long however large the members are.
-- KEYS[1] delayed zset, KEYS[2] stream, KEYS[3] dead stream, KEYS[4] (optional) cancel hash
-- ARGV[1] max members to move, ARGV[2] max member bytes, ARGV[3] dead stream cap
-- (`XTRIM MAXLEN ~`), ARGV[4] (with KEYS[4]) unique key prefix
-- While the cancel hash exists, a due member whose task id is in it (a task cancelled while it
-- ran, then rescheduled before its worker learned it) is dropped instead of promoted: removed
-- from the hash, its unique key released, recorded `cancelled` if tracked (see status.lua). Nothing more is done while nothing is cancelled.
-- A member is a MessagePack map of stream-entry fields (see envelope.rs): mq writes
-- {"t": <v2 task blob>} or {"t": .., "r": ..}, each blob a MessagePack str, which cmsgpack
-- hands over as a Lua string and XADD writes back byte for byte. The due time is
-- compared with the server clock, so worker clocks do not matter. A member that is not such a
-- map (undecodable, a non-string value, too many fields) goes to the dead stream with the
-- reason instead, so one bad member never blocks the ones behind it.
-- Returns {members moved (including those sent to dead), 1 if more are due else 0, dead
-- entries trimmed, ms until the earliest member left is due (0 if due now, -1 if none)}.
local MAX_FIELDS = 64
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- One member at a time: fetching many at once would copy them all into the script's memory.
local function next_due()
  return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 1)[1]
end
-- When the earliest member left is due, by the server clock: promoters sleep until then.
local function due_in()
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  if not first[2] then
    return -1
  end
  return math.max(0, math.ceil(tonumber(first[2]) - now))
end
local m = next_due()
if not m then
  return {0, 0, 0, due_in()}
end

-- Redis does not roll back a script that fails half way: check that every write below will
-- succeed before the first one, else fail with nothing changed.
for _, key in ipairs({KEYS[2], KEYS[3]}) do
  local kind = redis.call('TYPE', key)['ok']
  if kind ~= 'none' and kind ~= 'stream' then
    return redis.error_reply('WRONGTYPE ' .. key .. ' holds a ' .. kind ..
      ', not a stream: nothing promoted, nothing changed')
  end
end
for _, c in ipairs({{'XADD', KEYS[2], '*', 'f', 'v'}, {'XADD', KEYS[3], '*', 'f', 'v'},
    {'ZREM', KEYS[1], 'm'}, {'XTRIM', KEYS[3], 'MAXLEN', '~', ARGV[3]}}) do
  if not redis.acl_check_cmd(unpack(c)) then
    return redis.error_reply('NOPERM this user may not run ' .. c[1] .. ' on ' .. c[2] ..
      ': nothing promoted, nothing changed')
  end
end

local max_members, max_bytes = tonumber(ARGV[1]), tonumber(ARGV[2])
local cancel = KEYS[4] and redis.call('EXISTS', KEYS[4]) == 1 and KEYS[4]
-- Whether a member's task was cancelled (only called while the cancel hash exists).
local function cancelled(f)
  local fields = {}
  for _, k in ipairs({'t', 'id', 'u', 'tr', 'ev'}) do
    if type(f[k]) == 'string' then
      fields[#fields + 1] = k
      fields[#fields + 1] = f[k]
    end
  end
  local id = mq_task_id(fields)
  if id and redis.call('HEXISTS', cancel, id) == 1 then
    local plan = mq_plan(ARGV[4], fields, id)
    mq_forget_cancel(plan)
    mq_release(plan.unique, 0)
    mq_record(plan, 'cancelled', 'cancelled', {'finished', now})
    return true
  end
  return false
end
local moved, bytes, dead, more = 0, 0, 0, 0
while m do
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
    if not (cancel and cancelled(f)) then
      redis.call('XADD', KEYS[2], '*', unpack(args))
    end
  else
    redis.call('XADD', KEYS[3], '*', 'raw', m, 'error', reason, 'failed_at', now)
    dead = dead + 1
  end
  redis.call('ZREM', KEYS[1], m)
  moved = moved + 1
  bytes = bytes + #m
  if moved >= max_members or bytes >= max_bytes then
    if redis.call('ZCOUNT', KEYS[1], '-inf', now) > 0 then
      more = 1
    end
    break
  end
  m = next_due()
end
local trimmed = 0
if dead > 0 then
  trimmed = redis.call('XTRIM', KEYS[3], 'MAXLEN', '~', ARGV[3])
end
return {moved, more, trimmed, due_in()}
