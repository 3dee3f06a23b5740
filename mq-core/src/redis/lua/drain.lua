-- Records one drain sample of a queue (see admin/eta.rs): ARGV[1] entries removed so far
-- (`entries-added - length` over the queue's streams), stored as `<server unix ms> <removed>`
-- in the field of the current time bucket of KEYS[1] (the queue's `drain` hash) unless the
-- bucket has one, and prunes buckets older than ARGV[3] buckets. The time is the server's
-- (`TIME`), never the worker's: a worker with a skewed clock records the same samples.
-- ARGV[2] bucket width in ms. Returns the bucket.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local width, keep = tonumber(ARGV[2]), tonumber(ARGV[3])
local bucket = math.floor(now / width)
redis.call('HSETNX', KEYS[1], bucket, now .. ' ' .. ARGV[1])
if redis.call('HLEN', KEYS[1]) > keep + 2 then
  for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
    local b = tonumber(f)
    if not b or b + keep <= bucket then
      redis.call('HDEL', KEYS[1], f)
    end
  end
end
return bucket
