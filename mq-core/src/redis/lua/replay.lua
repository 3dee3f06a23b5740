-- Move dead-lettered tasks back to the work stream with attempt reset to 0, removing them from
-- the dead stream in the same script. The dead-letter fields are dropped.
-- KEYS[1] dead stream, KEYS[2] stream; ARGV[1..] dead entry ids
-- Returns the number of entries replayed (ids not found are skipped).
local drop = {error = true, failed_at = true, worker = true, attempts = true,
  deliveries = true, attempt = true}
local n = 0
for i = 1, #ARGV do
  local e = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
  if e[1] then
    local fields = e[1][2]
    local args = {'attempt', '0'}
    for j = 1, math.min(#fields, 512), 2 do
      if not drop[fields[j]] then
        args[#args + 1] = fields[j]
        args[#args + 1] = fields[j + 1]
      end
    end
    redis.call('XADD', KEYS[2], '*', unpack(args))
    redis.call('XDEL', KEYS[1], ARGV[i])
    n = n + 1
  end
end
return n
