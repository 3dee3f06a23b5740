-- Rate-limit states (GCRA on the server clock; see retry.lua), shared by the scripts that take
-- a token (retry.lua) and give a reserved slot back (cancel.lua).
--
-- A state is one string: '<tat> <interval> [<hole> ...]', decimal integers in microseconds.
-- `tat` is the theoretical arrival time of the limit's next free slot (unix µs): every slot
-- before it that has not passed is reserved by a waiting task. `interval` is the emission
-- interval of the limit that wrote the state (a state written by mq before it was recorded
-- has none). Each `hole` (unix µs, ascending, all before `tat`) is a slot whose waiting task
-- was cancelled: the next task over the limit takes the earliest hole before `tat`. The state
-- expires once `tat` has passed (its holes with it).

-- The most holes a state keeps: a give-back beyond them is dropped (that slot stays unused).
local MQ_RATE_MAX_HOLES = 100

-- The state of `key` at `now_us`: {tat, interval or nil, holes (only those still ahead)}.
-- The caller checked that `key` is a string or absent.
local function mq_rate_read(key, now_us)
  local s = {tat = 0, interval = nil, holes = {}}
  local v = redis.call('GET', key)
  if not v then
    return s
  end
  local k = 0
  for w in string.gmatch(v, '%S+') do
    k = k + 1
    local n = tonumber(w)
    if k == 1 then
      s.tat = n or 0
    elseif k == 2 then
      s.interval = n
    elseif n and n > now_us and n < s.tat then
      s.holes[#s.holes + 1] = n
    end
  end
  return s
end

-- Writes state `s` back to `key`, expiring once its tat has passed (deletes nothing: an idle
-- state is not written, the old one expires on its own).
local function mq_rate_write(key, s, now_us)
  if s.tat <= now_us then
    return
  end
  local out = {string.format('%.0f', s.tat), string.format('%.0f', s.interval or 0)}
  for _, h in ipairs(s.holes) do
    out[#out + 1] = string.format('%.0f', h)
  end
  redis.call('SET', key, table.concat(out, ' '), 'PX', math.ceil((s.tat - now_us) / 1000))
end

-- Adopts `interval` (the caller's limit) in state `s`: if the state was written with another
-- one, the limit changed, and the slots reserved under the old one no longer count (their
-- tasks take a token again when they come due, see retry.lua): the holes are dropped and the
-- next free slot is one new interval after the last start, which is at most now (while slots
-- were reserved: a task may just have started by one) or one old interval before `tat`
-- (none was).
local function mq_rate_adopt(s, interval, now_us)
  if s.interval and s.interval ~= 0 and s.interval ~= interval then
    s.holes = {}
    if s.tat > now_us then
      s.tat = now_us + interval
    else
      s.tat = s.tat - s.interval + interval
    end
  end
  s.interval = interval
end

-- Gives back the slot `slot_us` that a task reserved under interval `interval` and will not
-- use (it was cancelled while it waited). Returns whether the state changed. The last
-- reserved slot moves `tat` back by one interval (and with it any holes it reaches); an
-- earlier one becomes a hole. A slot that has passed, or one reserved under another interval
-- (a changed limit), gives nothing back.
local function mq_rate_give_back(s, slot_us, interval, now_us)
  if not s.interval or s.interval ~= interval or slot_us <= now_us or slot_us >= s.tat then
    return false
  end
  -- `slot_us` is the member's due time (ms, rounded up), so the last slot is within 1 ms
  -- below it.
  if slot_us >= s.tat - interval then
    s.tat = s.tat - interval
    while #s.holes > 0 and s.holes[#s.holes] >= s.tat - interval do
      table.remove(s.holes)
      s.tat = s.tat - interval
    end
    return true
  end
  if #s.holes >= MQ_RATE_MAX_HOLES then
    return false
  end
  local at = #s.holes + 1
  while at > 1 and s.holes[at - 1] > slot_us do
    at = at - 1
  end
  table.insert(s.holes, at, slot_us)
  return true
end
