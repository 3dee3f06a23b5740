-- Dead-letter a task: copy its stream entry to the dead stream with the reason, then ack and
-- delete it, atomically. The dead entry keeps every original field (even of an entry that is
-- not a valid task) and adds the fields given in ARGV, replacing same-named originals.
-- KEYS[1] stream, KEYS[2] dead stream
-- ARGV[1] group, ARGV[2] stream entry id, ARGV[3..] field/value pairs to add
-- Returns 1, or 0 if the entry was no longer pending (already acked): then nothing changes.
local entry = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return 0
end
local added = {}
local args = {}
for i = 3, #ARGV, 2 do
  added[ARGV[i]] = true
  args[#args + 1] = ARGV[i]
  args[#args + 1] = ARGV[i + 1]
end
if entry[1] then
  local fields = entry[1][2]
  for i = 1, #fields, 2 do
    if not added[fields[i]] then
      args[#args + 1] = fields[i]
      args[#args + 1] = fields[i + 1]
    end
  end
  redis.call('XDEL', KEYS[1], ARGV[2])
end
redis.call('XADD', KEYS[2], '*', unpack(args))
return 1
