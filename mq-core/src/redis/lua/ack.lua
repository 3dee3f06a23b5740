-- Ack and delete finished entries. A script, not MULTI: once used memory exceeds maxmemory,
-- Redis refuses every command queued in a MULTI (XACK included), while a script whose writes
-- only delete still runs, so a full Redis keeps draining.
-- KEYS[1] stream; ARGV[1] group, ARGV[2..] entry ids (at most a few thousand per call)
-- Returns the number of entries acked.
local n = redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 2))
redis.call('XDEL', KEYS[1], unpack(ARGV, 2))
return n
