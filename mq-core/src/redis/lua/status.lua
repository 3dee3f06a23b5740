-- Task status and events: the one helper that records a task's state change, prepended (after
-- unique.lua) to every script that changes the state of a task that may be tracked or emit
-- events. Opt-in per task type, carried by entry fields the producer writes from the type's
-- options: `tr` = ttl in ms of the task's status hash (`result_ttl`), `ev` = 1 (`events`).
-- Plain tasks have neither and nothing is written for them.
-- Keys are derived from the queue's key base `{prefix}:{queue}:` (the unique-key prefix
-- `{prefix}:{queue}:unique:` without `unique:`, which these scripts get already): the status
-- hash `<base>task:<id>` and the event stream `<base>events`, under the queue's hash tag.

local MQ_EVENTS_MAXLEN = 10000

-- The queue's key base from its unique-key prefix.
local function mq_base(unique_prefix)
  return string.sub(unique_prefix, 1, -8)
end

-- The tracking of an entry with `fields`: its status ttl in ms (nil: not tracked, or a `tr`
-- that is not a decimal integer from 1 to 15 digits, which is ignored) and whether it emits
-- events (`ev` = '1').
local function mq_tracking(fields)
  local tr = mq_field(fields, 'tr')
  local ttl = nil
  if tr and #tr <= 15 and string.find(tr, '^%d+$') and tonumber(tr) > 0 then
    ttl = tonumber(tr)
  end
  return ttl, mq_field(fields, 'ev') == '1'
end

-- Flows: a child task's entry has field `fp`, the key of its parent's pending-parent hash,
-- `<the parent's stream key>:flow:<flow id>` (in the parent queue's hash tag). The hash holds
-- `left` (children not finished), `dead` (children dead or cancelled), `policy` (`all` or
-- `always`), the parent's entry fields as `f:<field>`, and per child `c:<task id>` = its state
-- (`p` pending, `s` succeeded, `d` dead) followed by its queue, and `d:<task id>` = the reason
-- of a dead child. The child's terminal script reports to it (mq_flow_report): flows live on
-- one Redis server, whose scripts may touch the parent's keys (the producer refuses flows on
-- a Cluster, where they lie in other slots).

-- The pending-parent hash named by `fields`' `fp`, if it is one mq writes (`...:flow:<id>`)
-- and is a hash or absent; nil otherwise (the field is then ignored).
local function mq_flow_parent(fields)
  local fp = mq_field(fields, 'fp')
  if not fp or #fp > 1024 or not string.find(fp, ':flow:', 1, true) then
    return nil
  end
  -- pcall: a key this script may not touch (another slot of a Cluster, an ACL pattern) is no
  -- flow either.
  local t = redis.pcall('TYPE', fp)['ok']
  if t ~= 'hash' and t ~= 'none' then
    return nil
  end
  return fp
end

-- The parent's stream key: the pending-parent key up to its last `:flow:`.
local function mq_flow_stream(key)
  local at, from = nil, 1
  while true do
    local i = string.find(key, ':flow:', from, true)
    if not i then
      break
    end
    at, from = i, i + 1
  end
  return string.sub(key, 1, at - 1)
end

-- One line of a child list: tabs and newlines of `s` as spaces.
local function mq_flow_text(s)
  return (string.gsub(s, '[\t\r\n]', ' '))
end

-- Reports the end of child `plan.id` to its pending parent `plan.flow`: `outcome` `done`,
-- `dead` (with `reason`) or `reopen` (a replayed dead child counts as pending again). Each
-- child changes state once per report (a report of a child that is not pending, or of a flow
-- that is gone, changes nothing), so a child acked twice is counted once. When the last child
-- ends, the parent's entry is added to its stream with the children (`fk`: `<queue>\t<id>`
-- lines), the dead ones (`fd`: `<queue>\t<id>\t<reason>` lines) and, if some died under the
-- `all` policy, `fx` = 1 (its worker dead-letters it), and the hash is deleted.
local function mq_flow_report(plan, outcome, reason)
  local key = plan.flow
  if not key or not plan.id then
    return
  end
  local c = 'c:' .. plan.id
  local state = redis.call('HGET', key, c)
  if not state then
    return
  end
  local s, queue = string.sub(state, 1, 1), string.sub(state, 2)
  if outcome == 'reopen' then
    if s == 'd' then
      redis.call('HSET', key, c, 'p' .. queue)
      redis.call('HDEL', key, 'd:' .. plan.id)
      redis.call('HINCRBY', key, 'dead', -1)
      redis.call('HINCRBY', key, 'left', 1)
    end
    return
  end
  if s ~= 'p' then
    return
  end
  if outcome == 'done' then
    redis.call('HSET', key, c, 's' .. queue)
  else
    redis.call('HSET', key, c, 'd' .. queue, 'd:' .. plan.id, mq_flow_text(reason or ''))
    redis.call('HINCRBY', key, 'dead', 1)
  end
  if redis.call('HINCRBY', key, 'left', -1) > 0 then
    return
  end
  local h = redis.call('HGETALL', key)
  local entry, kids, failed, reasons = {}, {}, {}, {}
  local policy, dead = 'all', 0
  for i = 1, #h, 2 do
    local f, v = h[i], h[i + 1]
    if string.sub(f, 1, 2) == 'd:' then
      reasons[string.sub(f, 3)] = v
    end
  end
  for i = 1, #h, 2 do
    local f, v = h[i], h[i + 1]
    local kind = string.sub(f, 1, 2)
    if kind == 'f:' then
      entry[#entry + 1] = string.sub(f, 3)
      entry[#entry + 1] = v
    elseif kind == 'c:' then
      local id = string.sub(f, 3)
      kids[#kids + 1] = string.sub(v, 2) .. '\t' .. id
      if string.sub(v, 1, 1) == 'd' then
        failed[#failed + 1] = string.sub(v, 2) .. '\t' .. id .. '\t' .. (reasons[id] or '')
      end
    elseif f == 'policy' then
      policy = v
    elseif f == 'dead' then
      dead = tonumber(v) or 0
    end
  end
  entry[#entry + 1] = 'fk'
  entry[#entry + 1] = table.concat(kids, '\n')
  if #failed > 0 then
    entry[#entry + 1] = 'fd'
    entry[#entry + 1] = table.concat(failed, '\n')
  end
  if dead > 0 and policy ~= 'always' then
    entry[#entry + 1] = 'fx'
    entry[#entry + 1] = '1'
  end
  redis.call('DEL', key)
  redis.call('XADD', mq_flow_stream(key), '*', unpack(entry))
end

-- What a state change of the task whose entry has `fields` (task `id`, or the entry's) writes
-- besides its entry, decided before the script's first write (see mq_usable), so that no write
-- after the first can fail: {id, ttl, unique = the unique key it holds (see mq_unique_held),
-- status = its status hash (tracked, and the key a hash or absent), events = the event stream
-- (events on, the key a stream or absent, XADD allowed), cancel = the queue's cancel hash (a
-- hash or absent, HDEL allowed)}; each nil where nothing is to be (or can be) written.
-- `prefix` is the queue's unique-key prefix (`{prefix}:{queue}:unique:`).
local function mq_plan(prefix, fields, id)
  local base = mq_base(prefix)
  local ttl, ev = mq_tracking(fields)
  id = id or mq_task_id(fields)
  local plan = {id = id, ttl = ttl, unique = mq_unique_held(prefix, fields),
    run = mq_run_key(mq_field(fields, 'rn'))}
  if not id then
    return plan
  end
  plan.flow = mq_flow_parent(fields)
  local status, events, cancel = base .. 'task:' .. id, base .. 'events', base .. 'cancel'
  if ttl and mq_usable(status, 'hash') and redis.acl_check_cmd('HSET', status, 'f', 'v')
      and redis.acl_check_cmd('PEXPIRE', status, '1') then
    plan.status = status
  end
  if ev and mq_usable(events, 'stream')
      and redis.acl_check_cmd('XADD', events, 'MAXLEN', '~', '1', '*', 'f', 'v') then
    plan.events = events
  end
  if (not MQ.strict or MQ.declared[cancel]) and mq_usable(cancel, 'hash')
      and redis.acl_check_cmd('HDEL', cancel, id) then
    plan.cancel = cancel
  end
  return plan
end

-- Records the task of `plan` (from mq_plan) entering a state: if tracked, sets `status` =
-- `status` and the fields in the flat list `extra` (plus `result` = `result` if given) in its
-- status hash and gives the hash its ttl; with events, appends {id, event, extra...} to the
-- event stream, capped with MAXLEN ~. `status` nil: an event only.
local function mq_record(plan, status, event, extra, result)
  if plan.run then
    if status == 'succeeded' then
      mq_run_report(plan.run, 'done')
    elseif status == 'failed' or status == 'cancelled' then
      mq_run_report(plan.run, 'dead')
    elseif event == 'retrying' then
      mq_run_report(plan.run, 'failed')
    elseif status == 'queued' and event == 'replayed' then
      mq_run_report(plan.run, 'reopen')
    end
  end
  if plan.flow then
    if status == 'succeeded' then
      mq_flow_report(plan, 'done')
    elseif status == 'failed' then
      mq_flow_report(plan, 'dead', extra[2])
    elseif status == 'cancelled' then
      mq_flow_report(plan, 'dead', 'cancelled')
    elseif status == 'queued' and event == 'replayed' then
      mq_flow_report(plan, 'reopen')
    end
  end
  if plan.status and status then
    redis.call('HSET', plan.status, 'status', status, unpack(extra))
    if result then
      redis.call('HSET', plan.status, 'result', result)
    end
    redis.call('PEXPIRE', plan.status, plan.ttl)
  end
  if plan.events then
    redis.call('XADD', plan.events, 'MAXLEN', '~', MQ_EVENTS_MAXLEN, '*', 'id', plan.id,
      'event', event, unpack(extra))
  end
end

-- Forgets a cancellation asked for the task of `plan` (its field in the cancel hash): called
-- by every script that ends a task's life, so no mark outlives its task.
local function mq_forget_cancel(plan)
  if plan.cancel then
    redis.call('HDEL', plan.cancel, plan.id)
  end
end
