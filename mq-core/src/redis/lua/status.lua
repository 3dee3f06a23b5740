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

-- The tracking of an entry with `fields`: its status ttl in ms (nil: not tracked) and whether
-- it emits events.
local function mq_tracking(fields)
  return tonumber(mq_field(fields, 'tr')), mq_field(fields, 'ev') == '1'
end

-- Records task `id` entering a state: with `ttl`, sets `status` = `status` and the fields in
-- the flat list `extra` (plus `result` = `result` if given) in its status hash and gives the
-- hash that ttl; with `events`, appends {id, event, extra...} to the event stream, capped with
-- MAXLEN ~. `status` nil: an event only.
local function mq_record(base, id, ttl, events, status, event, extra, result)
  if ttl and status then
    local key = base .. 'task:' .. id
    redis.call('HSET', key, 'status', status, unpack(extra))
    if result then
      redis.call('HSET', key, 'result', result)
    end
    redis.call('PEXPIRE', key, ttl)
  end
  if events then
    redis.call('XADD', base .. 'events', 'MAXLEN', '~', MQ_EVENTS_MAXLEN, '*', 'id', id,
      'event', event, unpack(extra))
  end
end
