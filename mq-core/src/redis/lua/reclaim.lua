-- Take over entries whose worker stopped renewing their lease (idle past the reclaim timeout),
-- oldest first, and dead-letter those delivered more than max_deliveries times ("abandoned":
-- they probably crash their worker). XPENDING ... IDLE finds candidates anywhere in the
-- pending list however many live entries it holds; XCLAIM re-checks the idle time, skips
-- entries deleted meanwhile and drops them from the pending list (Redis >= 7.0).
--
-- The calling consumer's own candidates are entries whose lease renewal lagged (Redis was slow
-- or away) or that an earlier process with the same consumer name left behind. The script
-- cannot tell which, so it only renews them (XCLAIM ... JUSTID: no delivery counted, never
-- abandoned) and returns their ids. The caller then passes back, in a second call, the ids it
-- does not run itself: those are claimed and counted like any other (ARGV[7..]).
--
-- KEYS[1] stream, KEYS[2] dead stream, KEYS[3] the queue's cancel hash (an abandoned task's
-- cancellation mark is forgotten)
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] min idle ms, ARGV[4] count, ARGV[5] max deliveries,
-- ARGV[6] dead stream cap (`XTRIM MAXLEN ~`), ARGV[7] the unique key prefix
-- (`{prefix}:{queue}:unique:`): an abandoned unique task releases its key (see unique.lua);
-- entries taken over to run keep theirs; tracked tasks (see status.lua) are recorded: an
-- abandoned one `failed` with its reason, one taken over as an event `reclaimed`.
-- ARGV[8..] optional: ids of this consumer's own pending entries the caller does not run (then
-- only these are looked at, whatever their idle)
-- The keys of each entry (unique key, status hash, event stream) are known only once it is
-- found, so they are not among KEYS: each is read (mq_plan) before that entry's first write,
-- so an entry is settled whole or not at all.
-- Returns {entries to run [[id, fields]...], abandoned count, deleted count, own ids renewed,
-- dead entries trimmed}.
local group, me, max = ARGV[1], ARGV[2], tonumber(ARGV[5])
local others, own, deliveries = {}, {}, {}
local min_idle = ARGV[3]
local prefix = ARGV[7]
if #ARGV > 7 then
  min_idle = 0
  for i = 8, #ARGV do
    local p = redis.call('XPENDING', KEYS[1], group, ARGV[i], ARGV[i], 1)
    if p[1] and p[1][2] == me then
      others[#others + 1] = ARGV[i]
      deliveries[ARGV[i]] = p[1][4] + 1
    end
  end
else
  local candidates = redis.call('XPENDING', KEYS[1], group, 'IDLE', ARGV[3], '-', '+', ARGV[4])
  for _, p in ipairs(candidates) do
    if p[2] == me then
      own[#own + 1] = p[1]
    else
      others[#others + 1] = p[1]
      deliveries[p[1]] = p[4] + 1
    end
  end
end
if #others == 0 and #own == 0 then
  return {{}, 0, 0, {}, 0}
end

-- Redis does not roll back a script that fails half way: check that every write below will
-- succeed before the first one, else fail with nothing changed.
local kind = redis.call('TYPE', KEYS[2])['ok']
if kind ~= 'none' and kind ~= 'stream' then
  return redis.error_reply('WRONGTYPE ' .. KEYS[2] .. ' holds a ' .. kind ..
    ', not a stream: nothing reclaimed, nothing changed')
end
for _, c in ipairs({{'XCLAIM', KEYS[1], group, me, '0', '0-1'}, {'XACK', KEYS[1], group, '0-1'},
    {'XDEL', KEYS[1], '0-1'}, {'XADD', KEYS[2], '*', 'f', 'v'},
    {'XTRIM', KEYS[2], 'MAXLEN', '~', ARGV[6]}}) do
  if not redis.acl_check_cmd(unpack(c)) then
    return redis.error_reply('NOPERM this user may not run ' .. c[1] .. ' on ' .. c[2] ..
      ': nothing reclaimed, nothing changed')
  end
end

local renewed, deleted = {}, 0
if #own > 0 then
  local args = {KEYS[1], group, me, ARGV[3]}
  for _, id in ipairs(own) do
    args[#args + 1] = id
  end
  args[#args + 1] = 'JUSTID'
  renewed = redis.call('XCLAIM', unpack(args))
  deleted = deleted + #own - #renewed
end
local run, abandoned, trimmed = {}, 0, 0
if #others > 0 then
  local args = {KEYS[1], group, me, min_idle}
  for _, id in ipairs(others) do
    args[#args + 1] = id
  end
  local claimed = redis.call('XCLAIM', unpack(args))
  deleted = deleted + #others - #claimed
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  for _, e in ipairs(claimed) do
    local id, fields = e[1], e[2]
    local n = deliveries[id] or 0
    if n > max then
      -- Runs so far: v1 entries carry `attempt`, v2 ones `r` = MessagePack [attempt, error]
      -- (no `r`: the first attempt).
      local attempts = 1
      for i = 1, #fields, 2 do
        if fields[i] == 'attempt' then
          attempts = (tonumber(fields[i + 1]) or 0) + 1
        elseif fields[i] == 'r' then
          local ok, r = pcall(cmsgpack.unpack, fields[i + 1])
          if ok and type(r) == 'table' and type(r[1]) == 'number' then
            attempts = r[1] + 1
          end
        end
      end
      local out = {'error', 'abandoned: delivered ' .. n ..
        ' times without finishing (its worker probably crashed)',
        'failed_at', now, 'worker', me, 'deliveries', n, 'attempts', attempts}
      local added = {error = true, failed_at = true, worker = true, deliveries = true,
        attempts = true}
      local kept = 0
      for i = 1, #fields, 2 do
        if not added[fields[i]] and kept < 256 then
          out[#out + 1] = fields[i]
          out[#out + 1] = fields[i + 1]
          kept = kept + 1
        end
      end
      -- The XCLAIM above already wrote, so this XADD runs under maxmemory too; adding before
      -- deleting means a failure here (none is expected after the checks) duplicates, never
      -- loses.
      local plan = mq_plan(prefix, fields)
      redis.call('XADD', KEYS[2], '*', unpack(out))
      redis.call('XACK', KEYS[1], group, id)
      redis.call('XDEL', KEYS[1], id)
      mq_release(plan.unique, 0)
      mq_record(plan, 'failed', 'dead', {'reason', out[2], 'finished', now})
      mq_forget_cancel(plan)
      abandoned = abandoned + 1
    else
      run[#run + 1] = e
      if mq_field(fields, 'ev') == '1' then
        mq_record(mq_plan(prefix, fields), nil, 'reclaimed', {'consumer', me})
      end
    end
  end
  if abandoned > 0 then
    trimmed = redis.call('XTRIM', KEYS[2], 'MAXLEN', '~', ARGV[6])
  end
end
return {run, abandoned, deleted, renewed, trimmed}
