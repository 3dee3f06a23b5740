-- Cancel a task by its id: look for it in one chunk of the stream or of the delayed set and,
-- if it is there, cancel it in the same script. The client calls this repeatedly with the
-- cursor it returns (stream first, then the delayed set), so no call blocks Redis for long.
-- KEYS[1] stream, KEYS[2] delayed zset, KEYS[3] cancel hash (`{prefix}:{queue}:cancel`)
-- ARGV[1] group: '' for the stream's own group (mq streams have one, see ensure_group.lua),
-- else the group the caller expects, which must be the stream's; ARGV[2] task id, ARGV[3] unique
-- key prefix (`{prefix}:{queue}:unique:`), ARGV[4] where: 's' (stream) or 'd' (delayed set),
-- ARGV[5] cursor: for 's' the last entry id looked at ('-' to start), for 'd' the last member
-- looked at ('' to start), ARGV[6] entries or members per call, ARGV[7] the cancel hash's
-- expiry and the age after which a mark is stale, in ms, ARGV[8] (for 'd') the cursor
-- member's score, ARGV[9] the most marks the cancel hash may hold, ARGV[10] the prefix of the
-- queue's rate-limit states (`{prefix}:{queue}:rate`)
-- Returns one of:
--   {'queued', entry id}: an entry not yet delivered; deleted, it never runs
--   {'delayed', ''}: a scheduled or retrying task; removed from the delayed set
--   {'running', consumer}: an entry pending for `consumer`; the task id goes into the cancel
--     hash (task id -> '<entry id> <unix ms>'), whose lease renewals signal it to its handler
--   {'next', cursor, score}: not in this chunk; call again with `cursor` (and `score`)
--   {'end', ''}: not found in this key
-- Errors: NOGROUP if ARGV[1] names a group the stream does not have while it has another (the
-- caller's group is not the one the workers use: nothing is changed, a running task is never
-- taken for a queued one). A stream with no group at all has had no worker: nothing was
-- delivered.
-- A cancelled queued or delayed task's unique key is released, and a tracked one is recorded
-- `cancelled` (see status.lua). A delayed task that was waiting for the slot its rate limit
-- reserved (`rs` = the limit's interval) gives that slot back to the limit's state (see
-- rate.lua), so the next task over the limit takes it; skipped, the cancel still done, if the
-- state is not a string or the user may not write it.
--
-- The delayed set is paged by member, not by rank: the promoter removes members between two
-- calls, which would shift ranks and skip members. A cursor member still in the set gives the
-- next rank (ZRANK); one removed meanwhile (promoted or cancelled) restarts the page at the
-- first member of its score, which only looks at some members again.
local id, chunk = ARGV[2], tonumber(ARGV[6])
for _, k in ipairs({{KEYS[3], 'hash'}, {KEYS[2], 'zset'}, {KEYS[1], 'stream'}}) do
  local kind = redis.call('TYPE', k[1])['ok']
  if kind ~= 'none' and kind ~= k[2] then
    return redis.error_reply('WRONGTYPE ' .. k[1] .. ' holds a ' .. kind .. ', not a ' ..
      k[2] .. ': nothing changed')
  end
end
-- Cancels a task found before it ran (its entry or member already removed by the caller):
-- releases its unique key and records it as cancelled. `plan` comes from mq_plan, made before
-- the removal.
local function settle(plan)
  mq_release(plan.unique, 0)
  mq_record(plan, 'cancelled', 'cancelled', {'finished', mq_now()})
end
if ARGV[4] == 's' then
  local start = '-'
  if ARGV[5] ~= '-' then
    start = '(' .. ARGV[5]
  end
  local entries = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', chunk)
  for _, e in ipairs(entries) do
    if mq_task_id(e[2]) == id then
      -- The stream's group: mq streams have exactly one (ensure_group.lua refuses a second).
      local group, groups = nil, 0
      for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
        groups = groups + 1
        for i = 1, #g, 2 do
          if g[i] == 'name' and (ARGV[1] == '' or g[i + 1] == ARGV[1]) then
            group = g[i + 1]
          end
        end
      end
      if not group and groups > 0 then
        return redis.error_reply('NOGROUP ' .. KEYS[1] .. ' has no consumer group ' .. ARGV[1] ..
          ' (the workers use another one): nothing changed')
      end
      -- No group at all: no worker ever started, nothing was delivered.
      local p = group and redis.call('XPENDING', KEYS[1], group, e[1], e[1], 1) or {}
      if p[1] then
        local now = mq_now()
        local marks = redis.call('HLEN', KEYS[3])
        -- Forget stale marks (tasks that ended before their worker saw the mark), a sample at
        -- each cancellation, so the hash never grows with time.
        if marks > 0 then
          local sample = redis.call('HRANDFIELD', KEYS[3], 20, 'WITHVALUES')
          for i = 1, #sample, 2 do
            local at = tonumber(string.match(sample[i + 1], ' (%d+)$') or '0')
            if now - at > tonumber(ARGV[7]) then
              redis.call('HDEL', KEYS[3], sample[i])
              marks = marks - 1
            end
          end
        end
        if marks >= tonumber(ARGV[9]) and redis.call('HEXISTS', KEYS[3], id) == 0 then
          return redis.error_reply('BUSY ' .. KEYS[3] .. ' holds ' .. marks ..
            ' cancellations of running tasks, the most it may: try again later')
        end
        redis.call('HSET', KEYS[3], id, e[1] .. ' ' .. now)
        redis.call('PEXPIRE', KEYS[3], ARGV[7])
        return {'running', p[1][2]}
      end
      -- Not delivered yet: deleting the entry is all it takes (it is in no pending list).
      local plan = mq_plan(ARGV[3], e[2], id)
      redis.call('XDEL', KEYS[1], e[1])
      settle(plan)
      return {'queued', e[1]}
    end
  end
  if #entries < chunk then
    return {'end', ''}
  end
  return {'next', entries[#entries][1], ''}
end
-- The rate state and interval of the slot delayed member `f` (decoded) holds, if it holds one
-- and the state can be written: {key, interval}, else nil. Read before any write.
local function rate_slot(f)
  local interval = tonumber(f['rs'])
  local name = nil
  if type(f['t']) == 'string' then
    local _, n = mq_task_strs({'t', f['t']})
    name = n
  elseif type(f['name']) == 'string' then
    name = f['name']
  end
  if not interval or interval <= 1 or type(name) ~= 'string' or not ARGV[10] then
    return nil
  end
  local key = ARGV[10] .. ':' .. name
  if type(f['rk']) == 'string' then
    key = key .. ':' .. f['rk']
  end
  local kind = redis.call('TYPE', key)['ok']
  if (kind ~= 'none' and kind ~= 'string') or
      not redis.acl_check_cmd('SET', key, '0', 'PX', '1') then
    return nil
  end
  return {key = key, interval = interval}
end
local first = 0
if ARGV[5] ~= '' then
  local rank = redis.call('ZRANK', KEYS[2], ARGV[5])
  if rank then
    first = rank + 1
  else
    first = redis.call('ZCOUNT', KEYS[2], '-inf', '(' .. ARGV[8])
  end
end
local members = redis.call('ZRANGE', KEYS[2], first, first + chunk - 1, 'WITHSCORES')
for j = 1, #members, 2 do
  local m = members[j]
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
      local plan = mq_plan(ARGV[3], fields, id)
      local give_back = rate_slot(f)
      redis.call('ZREM', KEYS[2], m)
      settle(plan)
      if give_back then
        local now_us = mq_now() * 1000
        local state = mq_rate_read(give_back.key, now_us)
        if mq_rate_give_back(state, tonumber(members[j + 1]) * 1000, give_back.interval,
            now_us) then
          mq_rate_write(give_back.key, state, now_us)
        end
      end
      return {'delayed', ''}
    end
  end
end
if #members < 2 * chunk then
  return {'end', ''}
end
return {'next', members[#members - 1], members[#members]}
