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

-- Server time in unix ms.
local function mq_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
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
  local plan = {id = id, ttl = ttl, unique = mq_unique_held(prefix, fields)}
  if not id then
    return plan
  end
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
