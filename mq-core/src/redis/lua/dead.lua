-- Dead-letter a task: ack and delete its stream entry and copy it to the dead stream with the
-- reason, atomically, then trim the dead stream to its cap. The dead entry keeps the original
-- fields (at most 256 of them, even of an entry that is not a valid task) and adds the fields
-- given in ARGV, replacing same-named originals.
-- KEYS[1] stream, KEYS[2] dead stream, KEYS[3] optional: unique key prefix
-- (`{prefix}:{queue}:unique:`; the entry of a unique task, field `u`, releases its key here, in
-- the same script, if the task holds it; see unique.lua; a tracked task is recorded `failed`
-- with the `error` given in ARGV as its reason, see status.lua), KEYS[4] optional: the slots key of a
-- task with per-key concurrency (the entry id leaves it here, in the same script)
-- ARGV[1] group, ARGV[2] stream entry id, ARGV[3] consumer, ARGV[4] dead stream cap
-- (`XTRIM MAXLEN ~`: whole macro nodes, so it may hold up to one node more),
-- ARGV[5..] field/value pairs to add
-- Returns {1, dead entries trimmed}, or {0, 0} if the entry is no longer pending for this
-- consumer (acked meanwhile, or taken over by another worker after this one's lease lapsed):
-- then nothing changes.
--
-- Redis does not roll back a script that fails half way, so before its first write the script
-- checks that every write will succeed (`dead` is a stream or absent, and the user may run
-- each command); if not, it fails with an error naming the problem and nothing changed.
-- The deletion comes first on purpose: under `maxmemory` a script may still run XADD (which
-- Redis refuses at OOM) once it has written something, so a full Redis can still dead-letter.
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
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
local added = {}
local args = {}
for i = 5, #ARGV, 2 do
  added[ARGV[i]] = true
  args[#args + 1] = ARGV[i]
  args[#args + 1] = ARGV[i + 1]
end
if entry[1] then
  local fields = entry[1][2]
  local kept = 0
  for i = 1, #fields, 2 do
    if not added[fields[i]] and kept < MAX_FIELDS then
      args[#args + 1] = fields[i]
      args[#args + 1] = fields[i + 1]
      kept = kept + 1
    end
  end
  redis.call('XDEL', KEYS[1], ARGV[2])
  if KEYS[4] then
    redis.call('ZREM', KEYS[4], ARGV[2])
  end
  if KEYS[3] then
    mq_release_unique(KEYS[3], fields, 0)
    local ttl, ev = mq_tracking(fields)
    local task = (ttl or ev) and mq_task_id(fields)
    if task then
      local reason = ''
      for i = 5, #ARGV, 2 do
        if ARGV[i] == 'error' then
          reason = ARGV[i + 1]
        end
      end
      mq_record(mq_base(KEYS[3]), task, ttl, ev, 'failed', 'dead',
        {'reason', reason, 'finished', mq_now()})
    end
  end
end
redis.call('XADD', KEYS[2], '*', unpack(args))
return {1, redis.call('XTRIM', KEYS[2], 'MAXLEN', '~', ARGV[4])}
