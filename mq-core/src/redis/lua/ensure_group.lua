-- Create the consumer group (and the stream) unless it exists; refuse if the stream has a
-- group of another name: mq deletes done entries, so a second group would lose tasks.
-- KEYS[1] stream; ARGV[1] group
-- Returns the names of other groups (empty: the group exists or was created).
if redis.call('EXISTS', KEYS[1]) == 1 then
  local others = {}
  local found = false
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local name
    for i = 1, #g, 2 do
      if g[i] == 'name' then
        name = g[i + 1]
      end
    end
    if name == ARGV[1] then
      found = true
    else
      others[#others + 1] = name
    end
  end
  if #others > 0 then
    return others
  end
  if found then
    return {}
  end
end
redis.call('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
return {}
