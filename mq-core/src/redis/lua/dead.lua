-- Dead-letter a task: ack and delete its stream entry and copy it to the dead stream with the
-- reason, atomically, then trim the dead stream to its cap. The dead entry keeps the original
-- fields (at most 256 of them, even of an entry that is not a valid task) and adds the fields
-- given in ARGV, replacing same-named originals. Then, optional and never able to fail: the
-- task's unique key is released (entry field `u`, see unique.lua) if it holds it, its
-- per-key concurrency slot freed, a tracked task recorded `failed` with the `error` given in
-- ARGV as its reason (see status.lua), and a cancellation asked for it forgotten.
-- KEYS[1] stream, KEYS[2] dead stream, KEYS[3..] every other key the script may touch (it
-- declares them, see unique.lua): the task's unique key `{prefix}:{queue}:unique:<u>` if its
-- entry has field `u`, and with a task id its status hash `{prefix}:{queue}:task:<id>`, the
-- event stream `{prefix}:{queue}:events` and the cancel hash `{prefix}:{queue}:cancel`, and its
-- slots key if ARGV[7] names one
-- ARGV[1] group, ARGV[2] stream entry id, ARGV[3] consumer, ARGV[4] dead stream cap
-- (`XTRIM MAXLEN ~`: whole macro nodes, so it may hold up to one node more), ARGV[5] unique key
-- prefix (`{prefix}:{queue}:unique:`), ARGV[6] task id ('' if the entry has none the worker could
-- read), ARGV[7] the task's slots key or '', ARGV[8..] field/value pairs to add
-- Returns {1, dead entries trimmed}, or {0, 0} if the entry is no longer pending for this
-- consumer (acked meanwhile, or taken over by another worker after this one's lease lapsed):
-- then nothing changes.
--
-- Redis does not roll back a script that fails half way, so before its first write the script
-- checks that every write will succeed: `dead` is a stream or absent and the user may run each
-- command, else it fails with an error naming the problem and nothing changed; each optional
-- write is planned (mq_plan: key types, values such as `tr`, permissions) and skipped if it
-- could not succeed. The deletion comes first on purpose: under `maxmemory` a script may still
-- run XADD (which Redis refuses at OOM) once it has written something, so a full Redis can
-- still dead-letter; the dead copy comes right after it, before anything optional.
MQ.strict = true
local MAX_FIELDS = 256
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if not p[1] or p[1][2] ~= ARGV[3] then
  return {0, 0}
end
local kind = redis.call('TYPE', KEYS[2])['ok']
if kind ~= 'none' and kind ~= 'stream' then
  return redis.error_reply('WRONGTYPE ' .. KEYS[2] .. ' holds a ' .. kind ..
    ', not a stream: not dead-lettered, nothing changed')
end
for _, c in ipairs({{'XACK', KEYS[1], ARGV[1], ARGV[2]}, {'XDEL', KEYS[1], ARGV[2]},
    {'XADD', KEYS[2], '*', 'f', 'v'}, {'XTRIM', KEYS[2], 'MAXLEN', '~', ARGV[4]}}) do
  if not redis.acl_check_cmd(unpack(c)) then
    return redis.error_reply('NOPERM this user may not run ' .. c[1] .. ' on ' .. c[2] ..
      ': not dead-lettered, nothing changed')
  end
end
local entry = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
local fields = entry[1] and entry[1][2] or {}
local task = ARGV[6] ~= '' and ARGV[6] or nil
local plan = mq_plan(ARGV[5], fields, task)
local slots = ARGV[7] ~= '' and mq_usable(ARGV[7], 'zset') and ARGV[7]
local added = {}
local args = {}
local reason = ''
for i = 8, #ARGV, 2 do
  added[ARGV[i]] = true
  args[#args + 1] = ARGV[i]
  args[#args + 1] = ARGV[i + 1]
  if ARGV[i] == 'error' then
    reason = ARGV[i + 1]
  end
end
local kept = 0
for i = 1, #fields, 2 do
  if not added[fields[i]] and kept < MAX_FIELDS then
    args[#args + 1] = fields[i]
    args[#args + 1] = fields[i + 1]
    kept = kept + 1
  end
end
-- Checked: nothing below can fail.
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('XADD', KEYS[2], '*', unpack(args))
local trimmed = redis.call('XTRIM', KEYS[2], 'MAXLEN', '~', ARGV[4])
if entry[1] then
  if slots then
    redis.call('ZREM', slots, ARGV[2])
  end
  mq_release(plan.unique, 0)
  mq_record(plan, 'failed', 'dead', {'reason', reason, 'finished', mq_now()})
end
mq_forget_cancel(plan)
return {1, trimmed}
