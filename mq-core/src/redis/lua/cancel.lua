-- Cancel a task by its id: look for it in one chunk of the stream or of the delayed set and,
-- if it is there, cancel it in the same script. The client calls this repeatedly with the
-- cursor it returns (stream first, then the delayed set), so no call blocks Redis for long.
-- KEYS[1] stream, KEYS[2] delayed zset, KEYS[3] cancel hash (`{prefix}:{queue}:cancel`)
-- ARGV[1] group, ARGV[2] task id, ARGV[3] unique key prefix (`{prefix}:{queue}:unique:`),
-- ARGV[4] where: 's' (stream) or 'd' (delayed set), ARGV[5] cursor: for 's' the last entry id
-- looked at ('-' to start), for 'd' the index of the first member to look at,
-- ARGV[6] entries or members per call, ARGV[7] the cancel hash's expiry in ms
-- Returns one of:
--   {'queued', entry id}: an entry not yet delivered; deleted, it never runs
--   {'delayed', ''}: a scheduled or retrying task; removed from the delayed set
--   {'running', consumer}: an entry pending for `consumer`; the task id goes into the cancel
--     hash (task id -> entry id), whose lease renewals signal it to its handler
--   {'next', cursor}: not in this chunk; call again with `cursor`
--   {'end', ''}: not found in this key
-- A cancelled queued or delayed task's unique key is released, and a tracked one is recorded
-- `cancelled` (see status.lua).
local id, chunk = ARGV[2], tonumber(ARGV[6])
-- Records a tracked task removed before it ran as cancelled.
local function mq_record_cancelled(fields)
  local ttl, ev = mq_tracking(fields)
  if ttl or ev then
    mq_record(mq_base(ARGV[3]), id, ttl, ev, 'cancelled', 'cancelled', {'finished', mq_now()})
  end
end
for _, k in ipairs({{KEYS[3], 'hash'}, {KEYS[2], 'zset'}, {KEYS[1], 'stream'}}) do
  local kind = redis.call('TYPE', k[1])['ok']
  if kind ~= 'none' and kind ~= k[2] then
    return redis.error_reply('WRONGTYPE ' .. k[1] .. ' holds a ' .. kind .. ', not a ' ..
      k[2] .. ': nothing changed')
  end
end
if ARGV[4] == 's' then
  local start = '-'
  if ARGV[5] ~= '-' then
    start = '(' .. ARGV[5]
  end
  local entries = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', chunk)
  for _, e in ipairs(entries) do
    if mq_task_id(e[2]) == id then
      -- No consumer group yet (no worker ever started): nothing was delivered.
      local p = redis.pcall('XPENDING', KEYS[1], ARGV[1], e[1], e[1], 1)
      if p.err then
        p = {}
      end
      if p[1] then
        redis.call('HSET', KEYS[3], id, e[1])
        redis.call('PEXPIRE', KEYS[3], ARGV[7])
        return {'running', p[1][2]}
      end
      -- Not delivered yet: deleting the entry is all it takes (it is in no pending list).
      redis.call('XDEL', KEYS[1], e[1])
      mq_release_unique(ARGV[3], e[2], 0)
      mq_record_cancelled(e[2])
      return {'queued', e[1]}
    end
  end
  if #entries < chunk then
    return {'end', ''}
  end
  return {'next', entries[#entries][1]}
end
local first = tonumber(ARGV[5])
local members = redis.call('ZRANGE', KEYS[2], first, first + chunk - 1)
for _, m in ipairs(members) do
  local ok, f = pcall(cmsgpack.unpack, m)
  if ok and type(f) == 'table' then
    local fields = {}
    for _, k in ipairs({'t', 'id', 'u', 'tr', 'ev'}) do
      if type(f[k]) == 'string' then
        fields[#fields + 1] = k
        fields[#fields + 1] = f[k]
      end
    end
    if mq_task_id(fields) == id then
      redis.call('ZREM', KEYS[2], m)
      mq_release_unique(ARGV[3], fields, 0)
      mq_record_cancelled(fields)
      return {'delayed', ''}
    end
  end
end
if #members < chunk then
  return {'end', ''}
end
return {'next', tostring(first + chunk)}
