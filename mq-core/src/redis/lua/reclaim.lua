-- Take over entries whose worker stopped renewing their lease (idle past the reclaim timeout),
-- oldest first, and dead-letter those delivered more than max_deliveries times ("abandoned":
-- they probably crash their worker). XPENDING ... IDLE finds candidates anywhere in the
-- pending list however many live entries it holds; XCLAIM re-checks the idle time, skips
-- entries deleted meanwhile and drops them from the pending list (Redis >= 7.0).
-- KEYS[1] stream, KEYS[2] dead stream
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] min idle ms, ARGV[4] count, ARGV[5] max deliveries
-- Returns {entries to run [[id, fields]...], abandoned count, deleted count}.
local candidates = redis.call('XPENDING', KEYS[1], ARGV[1], 'IDLE', ARGV[3], '-', '+', ARGV[4])
if #candidates == 0 then
  return {{}, 0, 0}
end
local args = {KEYS[1], ARGV[1], ARGV[2], ARGV[3]}
local deliveries = {}
for _, p in ipairs(candidates) do
  args[#args + 1] = p[1]
  deliveries[p[1]] = p[4] + 1
end
local claimed = redis.call('XCLAIM', unpack(args))
local max = tonumber(ARGV[5])
local run, abandoned = {}, 0
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, e in ipairs(claimed) do
  local id, fields = e[1], e[2]
  local n = deliveries[id] or 0
  if n > max then
    local attempts = 1
    for i = 1, #fields, 2 do
      if fields[i] == 'attempt' then
        attempts = (tonumber(fields[i + 1]) or 0) + 1
      end
    end
    local out = {'error', 'abandoned: delivered ' .. n ..
      ' times without finishing (its worker probably crashed)',
      'failed_at', now, 'worker', ARGV[2], 'deliveries', n, 'attempts', attempts}
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
    redis.call('XADD', KEYS[2], '*', unpack(out))
    redis.call('XACK', KEYS[1], ARGV[1], id)
    redis.call('XDEL', KEYS[1], id)
    abandoned = abandoned + 1
  else
    run[#run + 1] = e
  end
end
return {run, abandoned, #candidates - #claimed}
