-- Enqueue a unique task: if its unique key is free, add the task (to the stream, or to the
-- delayed set) and take the key, atomically; if the key is held, add nothing and return the id
-- of the task that holds it. One script, so two producers racing for one key never both add,
-- and a key is never held without its task (nor a task added without its key).
-- KEYS[1] unique key (`{prefix}:{queue}:unique:<key>`), KEYS[2] stream, KEYS[3] delayed zset,
-- KEYS[4] duplicates counter (`{prefix}:{queue}:duplicates`, INCR on each refusal)
-- ARGV[1] task id; ARGV[2] when: 'now' (XADD to the stream), a delay in ms, or '-' with the due
-- time in unix ms in ARGV[3]; ARGV[4] wake channel (its due time is published there when a
-- delayed task becomes the earliest; skipped if PUBLISH is denied); ARGV[5] the delayed member
-- (ignored for 'now'); ARGV[6..] the stream entry's field/value pairs (for 'now'), `u` included
-- Returns {1, task id} when added, {0, id of the task holding the key} when not.
local held = redis.call('GET', KEYS[1])
if held then
  redis.call('INCR', KEYS[4])
  return {0, held}
end
if ARGV[2] == 'now' then
  local fields = {}
  for i = 6, #ARGV do
    fields[#fields + 1] = ARGV[i]
  end
  redis.call('XADD', KEYS[2], '*', unpack(fields))
else
  mq_schedule(KEYS[3], ARGV[2], ARGV[3], ARGV[5], ARGV[4])
end
redis.call('SET', KEYS[1], ARGV[1])
return {1, ARGV[1]}
