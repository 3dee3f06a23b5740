-- Move dead-lettered tasks back to the work stream with attempt reset to 0, removing them from
-- the dead stream in the same script. The dead-letter fields and the retry data are dropped:
-- v2 entries (a `t` field) lose `r`, v1 entries get `attempt` 0 and lose `error`; both lose
-- `rs` (a held rate slot: the replayed task takes a token again). A dead entry
-- that is not a task (neither `t` nor all of `id`, `name`, `payload` and `enqueued_at`, e.g.
-- the promoter's entries for undecodable delayed members: `raw`, `error`, `failed_at` only)
-- would only die again: it stays in the dead stream and is returned as skipped.
-- A unique task (field `u`) takes its unique key again in the same script (see unique.lua); if
-- another live task holds the key by now, the dead entry stays where it is and is returned as
-- a duplicate, so two tasks with one key never run at once.
-- A tracked task (entry field `tr` or `ev`, see status.lua) is recorded `queued` again (event
-- `replayed`), so that whoever waits for it waits for the replay instead of seeing the dead
-- run's `failed`.
-- KEYS[1] dead stream, KEYS[2] stream, KEYS[3] optional: unique key prefix
-- (`{prefix}:{queue}:unique:`, also the base of the status keys); ARGV[1..] dead entry ids
-- Each entry's keys (unique key, status hash, event stream) are read before its first write.
-- Returns {number of entries replayed, {ids skipped}, {ids of duplicates}}; ids not found are
-- in none.
local drop = {error = true, failed_at = true, worker = true, attempts = true,
  deliveries = true, attempt = true, r = true, rs = true}
local required = {'id', 'name', 'payload', 'enqueued_at'}
local n, skipped, duplicates = 0, {}, {}
for i = 1, #ARGV do
  local e = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
  if e[1] then
    local fields = e[1][2]
    local args = {}
    local present = {}
    for j = 1, math.min(#fields, 512), 2 do
      present[fields[j]] = true
      if not drop[fields[j]] then
        args[#args + 1] = fields[j]
        args[#args + 1] = fields[j + 1]
      end
    end
    local task = true
    if not present['t'] then
      for _, f in ipairs(required) do
        if not present[f] then
          task = false
        end
      end
      args[#args + 1] = 'attempt'
      args[#args + 1] = '0'
    end
    local u = present['u'] and KEYS[3] and mq_field(fields, 'u')
    local plan = task and KEYS[3] and (present['tr'] or present['ev'] or present['fp'] or present['rn']) and mq_plan(KEYS[3], fields)
    local dup = false
    if task and u then
      local key, id = KEYS[3] .. u, mq_task_id(fields)
      local held = redis.call('GET', key)
      if not id or (held and held ~= id) then
        duplicates[#duplicates + 1] = ARGV[i]
        task, dup = false, true
      elseif not held then
        redis.call('SET', key, id)
      end
    end
    if task then
      redis.call('XADD', KEYS[2], '*', unpack(args))
      redis.call('XDEL', KEYS[1], ARGV[i])
      if plan then
        mq_record(plan, 'queued', 'replayed', {'replayed', mq_now()})
      end
      n = n + 1
    elseif not dup then
      skipped[#skipped + 1] = ARGV[i]
    end
  end
end
return {n, skipped, duplicates}
