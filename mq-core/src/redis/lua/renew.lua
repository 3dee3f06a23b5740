-- Renew the leases of a worker's in-flight tasks: reset the idle time of those pending entries
-- that this consumer still owns (XCLAIM ... JUSTID leaves the delivery count alone). Entries
-- now owned by another consumer are not touched: stealing them back would run a task twice.
-- KEYS[1] stream; ARGV[1] group, ARGV[2] consumer, ARGV[3..] entry ids
-- Returns the ids that are no longer ours (lease lost, or already acked).
local mine, lost = {}, {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
    mine[#mine + 1] = ARGV[i]
  else
    lost[#lost + 1] = ARGV[i]
  end
end
if #mine > 0 then
  local args = {KEYS[1], ARGV[1], ARGV[2], 0}
  for _, id in ipairs(mine) do
    args[#args + 1] = id
  end
  args[#args + 1] = 'JUSTID'
  redis.call('XCLAIM', unpack(args))
end
return lost
