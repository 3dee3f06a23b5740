-- Take over entries whose worker stopped renewing their lease (idle past the reclaim timeout),
-- and dead-letter those delivered more than max_deliveries times ("abandoned": they probably
-- crash their worker). Ids XAUTOCLAIM reports deleted are dropped from the PEL by Redis itself.
-- KEYS[1] stream, KEYS[2] dead stream
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] min idle ms, ARGV[4] cursor, ARGV[5] count,
-- ARGV[6] max deliveries
-- Returns {next cursor, entries to run [[id, fields]...], abandoned count, deleted count}.
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4],
  'COUNT', ARGV[5])
local max = tonumber(ARGV[6])
local run, abandoned = {}, 0
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, e in ipairs(r[2]) do
  local id, fields = e[1], e[2]
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
  local deliveries = (p[1] and p[1][4]) or 0
  if deliveries > max then
    local attempts = 1
    for i = 1, #fields, 2 do
      if fields[i] == 'attempt' then
        attempts = (tonumber(fields[i + 1]) or 0) + 1
      end
    end
    local args = {'error', 'abandoned: delivered ' .. deliveries ..
      ' times without finishing (its worker probably crashed)',
      'failed_at', now, 'worker', ARGV[2], 'deliveries', deliveries, 'attempts', attempts}
    local added = {error = true, failed_at = true, worker = true, deliveries = true,
      attempts = true}
    local kept = 0
    for i = 1, #fields, 2 do
      if not added[fields[i]] and kept < 256 then
        args[#args + 1] = fields[i]
        args[#args + 1] = fields[i + 1]
        kept = kept + 1
      end
    end
    redis.call('XADD', KEYS[2], '*', unpack(args))
    redis.call('XACK', KEYS[1], ARGV[1], id)
    redis.call('XDEL', KEYS[1], id)
    abandoned = abandoned + 1
  else
    run[#run + 1] = e
  end
end
return {r[1], run, abandoned, #(r[3] or {})}
