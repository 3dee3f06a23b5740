-- Runs (see admin/runs.rs and producer/run.rs), prepended (before status.lua, which reports
-- to them) to every script that changes the state of a task that may be in a run, and to the
-- scripts that open and seal runs. Also the server clock helper the scripts after it use.

-- Server time in unix ms.
local function mq_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Runs: a task enqueued in a run has field `rn`, the key of the run's hash `{prefix}:run:<n>`
-- (see admin/runs.rs), which holds counters, not members: `total` (enqueued in the run, by the
-- producer in the same MULTI as the entry), `done`, `dead` (dead-lettered or cancelled),
-- `failed` (failed attempts that were retried), `sealed` and `ended` (server unix ms), the
-- drain samples `b<i>` = `<10 s bucket> <tasks ended in it>` (i = bucket mod 30), and the
-- completion task's stream `cs` and entry fields `f:<field>`. Runs live on one Redis server,
-- like flows (the producer refuses a run on a Cluster).
local MQ_RUN_BUCKET_MS = 10000
local MQ_RUN_BUCKETS = 30
-- An ended run's hash is kept 7 days (`mq runs` shows it), then expires.
local MQ_RUN_KEEP_MS = 7 * 24 * 3600 * 1000

-- The run hash named by `rn` (an entry's field), if it is one mq writes (`...:run:<n>`, a
-- hash with a `total`); nil otherwise (the field is then ignored).
local function mq_run_key(rn)
  if not rn or #rn > 1024 or not string.find(rn, ':run:', 1, true) then
    return nil
  end
  -- A key of another type answers WRONGTYPE: not a run either.
  local has = redis.pcall('HEXISTS', rn, 'total')
  if has ~= 1 then
    return nil
  end
  return rn
end

-- Ends run `key` if it is sealed, not ended, and every task counted in it has ended: sets
-- `ended`, gives the hash its expiry, and adds the completion task's entry (if it has one) to
-- its stream. Exactly once: `ended` is set in the same script. Returns whether it ended.
local function mq_run_end(key, now)
  local h = redis.call('HMGET', key, 'sealed', 'ended', 'total', 'done', 'dead', 'cs')
  if not h[1] or h[2] then
    return false
  end
  if (tonumber(h[4]) or 0) + (tonumber(h[5]) or 0) < (tonumber(h[3]) or 0) then
    return false
  end
  redis.call('HSET', key, 'ended', now)
  redis.call('PEXPIRE', key, MQ_RUN_KEEP_MS)
  if h[6] then
    local entry, all = {}, redis.call('HGETALL', key)
    for i = 1, #all, 2 do
      if string.sub(all[i], 1, 2) == 'f:' then
        entry[#entry + 1] = string.sub(all[i], 3)
        entry[#entry + 1] = all[i + 1]
      end
    end
    if #entry > 0 then
      redis.call('XADD', h[6], '*', unpack(entry))
    end
  end
  return true
end

-- Counts the end of `n` (default 1) tasks of run `key`: `outcome` `done`, `dead`, `failed` (an
-- attempt that is retried), or `reopen` (a replayed dead task counts as not ended again). Ends
-- beyond the run's `total` (a copy of an entry that no producer counted) are not counted; the
-- last end of a sealed run ends it (mq_run_end). Three commands: TIME, HMGET, HSET.
local function mq_run_report(key, outcome, n)
  n = n or 1
  if outcome == 'failed' then
    redis.call('HINCRBY', key, 'failed', n)
    return
  end
  if outcome == 'reopen' then
    if (tonumber(redis.call('HGET', key, 'dead')) or 0) > 0 then
      redis.call('HINCRBY', key, 'dead', -1)
    end
    return
  end
  local now = mq_now()
  local b = math.floor(now / MQ_RUN_BUCKET_MS)
  local slot = 'b' .. (b % MQ_RUN_BUCKETS)
  local h = redis.call('HMGET', key, 'total', 'done', 'dead', 'sealed', 'ended', slot)
  local total, done, dead = tonumber(h[1]) or 0, tonumber(h[2]) or 0, tonumber(h[3]) or 0
  n = math.min(n, total - done - dead)
  if n <= 0 then
    return
  end
  local ended = n
  if h[6] then
    local vb, vn = string.match(h[6], '^(%d+) (%d+)$')
    if tonumber(vb) == b then
      ended = tonumber(vn) + n
    end
  end
  local count = dead
  if outcome == 'done' then
    count = done
  end
  redis.call('HSET', key, outcome, count + n, slot, b .. ' ' .. ended)
  if h[4] and not h[5] and done + dead + n >= total then
    mq_run_end(key, now)
  end
end
