-- Opens the run named ARGV[1] (see run.lua): returns the key of its hash, made if
-- the name has none yet (or its hash expired): `{prefix}:run:<n>` with the next n of KEYS[2]
-- (the run counter), registered in KEYS[1] (the runs hash, name -> n), with `name`,
-- `created` (server unix ms) and zero counters. Also returns whether the run is sealed.
-- ARGV[2] the run keys' prefix `{prefix}:run:`.
-- Returns {key, sealed (1 or 0)}.
local n = redis.call('HGET', KEYS[1], ARGV[1])
if n then
  local key = ARGV[2] .. n
  if redis.call('HEXISTS', key, 'total') == 1 then
    return {key, redis.call('HEXISTS', key, 'sealed')}
  end
end
n = redis.call('INCR', KEYS[2])
local key = ARGV[2] .. n
redis.call('HSET', key, 'name', ARGV[1], 'created', mq_now(), 'total', 0, 'done', 0,
  'dead', 0, 'failed', 0)
redis.call('HSET', KEYS[1], ARGV[1], n)
return {key, 0}
