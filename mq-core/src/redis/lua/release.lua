-- Hand entries back to the group at once: entries this consumer fetched but did not start (a
-- shutdown came first) or whose run was aborted. Their idle time is set past any reclaim
-- timeout, so the next reclaim of any worker takes them, and their delivery count is lowered
-- by one when `uncount` is set, so that a delivery that never ran does not count toward
-- max_deliveries (the reclaim's XCLAIM adds it back). Entries another consumer owns by now, or
-- acked meanwhile, are left alone.
-- KEYS[1] stream; ARGV[1] group, ARGV[2] consumer, ARGV[3] idle ms to set, ARGV[4] uncount
-- (1 or 0), ARGV[5..] entry ids
-- Returns the number of entries released.
local n = 0
for i = 5, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
    local count = p[1][4]
    if ARGV[4] == '1' and count > 0 then
      count = count - 1
    end
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'IDLE', ARGV[3],
      'RETRYCOUNT', count, 'JUSTID')
    n = n + 1
  end
end
return n
