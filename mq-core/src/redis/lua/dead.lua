-- Dead-letter a task: copy its stream entry to the dead stream with the reason, then ack and
-- delete it, atomically. The dead entry keeps the original fields (at most 256 of them, even
-- of an entry that is not a valid task) and adds the fields given in ARGV, replacing
-- same-named originals.
-- KEYS[1] stream, KEYS[2] dead stream
-- ARGV[1] group, ARGV[2] stream entry id, ARGV[3] consumer, ARGV[4..] field/value pairs to add
-- Returns 1, or 0 if the entry is no longer pending for this consumer (acked meanwhile, or
-- taken over by another worker after this one's lease lapsed): then nothing changes.
local MAX_FIELDS = 256
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if not p[1] or p[1][2] ~= ARGV[3] then
  return 0
end
local entry = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
local added = {}
local args = {}
for i = 4, #ARGV, 2 do
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
end
redis.call('XADD', KEYS[2], '*', unpack(args))
return 1
