-- Unique tasks: helpers prepended to every script that ends a task's life (scripts.rs joins
-- this file and the script into one). A unique task's entry carries field `u`, its unique key;
-- the string key <unique prefix><u> (e.g. `mq:{q}:unique:<u>`, under the queue's hash tag, so
-- in the same slot as the stream) holds the id of the live task with that key.

-- The value of field `name` in a flat {field, value, ...} list, or nil.
local function mq_field(fields, name)
  for i = 1, #fields, 2 do
    if fields[i] == name then
      return fields[i + 1]
    end
  end
  return nil
end

-- The task id and name in an entry's fields: v1 `id` and `name`, or elements 1 and 2 of the
-- v2 `t` array, MessagePack strs (read by hand: cmsgpack cannot read the payload's bin type).
-- Each nil if there is none.
local function mq_task_strs(fields)
  local t = mq_field(fields, 't')
  if not t then
    return mq_field(fields, 'id'), mq_field(fields, 'name')
  end
  local function uint_at(pos, n)
    local v = 0
    for i = 0, n - 1 do
      v = v * 256 + (t:byte(pos + i) or 0)
    end
    return v
  end
  local b = t:byte(1)
  local pos
  if b and b >= 0x90 and b <= 0x9f then
    pos = 2
  elseif b == 0xdc then
    pos = 4
  elseif b == 0xdd then
    pos = 6
  else
    return nil
  end
  -- element 0, the version: a positive fixint or an (unsigned or signed) int of 1-8 bytes
  local sizes = {[0xcc] = 1, [0xcd] = 2, [0xce] = 4, [0xcf] = 8, [0xd0] = 1, [0xd1] = 2,
    [0xd2] = 4, [0xd3] = 8}
  b = t:byte(pos)
  if not b then
    return nil
  elseif b < 0x80 then
    pos = pos + 1
  elseif sizes[b] then
    pos = pos + 1 + sizes[b]
  else
    return nil
  end
  -- elements 1 and 2, the id and the name: fixstr, str8, str16 or str32
  local function str()
    b = t:byte(pos)
    local len
    if not b then
      return nil
    elseif b >= 0xa0 and b <= 0xbf then
      len, pos = b - 0xa0, pos + 1
    elseif b == 0xd9 then
      len, pos = uint_at(pos + 1, 1), pos + 2
    elseif b == 0xda then
      len, pos = uint_at(pos + 1, 2), pos + 3
    elseif b == 0xdb then
      len, pos = uint_at(pos + 1, 4), pos + 5
    else
      return nil
    end
    local v = t:sub(pos, pos + len - 1)
    pos = pos + len
    return v
  end
  local id = str()
  if not id then
    return nil
  end
  return id, str()
end

-- The task id in an entry's fields (see mq_task_strs), or nil.
local function mq_task_id(fields)
  return (mq_task_strs(fields))
end

-- The keys this script was given (KEYS): a script that knows every key it touches declares
-- them and sets MQ.strict, so mq_usable refuses any other key (on Redis Cluster a key outside
-- KEYS is not routed, nor checked against a resharding; see mq_usable).
local MQ = {declared = {}, strict = false}
for _, k in ipairs(KEYS) do
  MQ.declared[k] = true
end

-- Whether `key` can take a write of a value of type `kind`: it holds one, or nothing.
-- Called before a script's first write, so a script never fails half way on a key of the
-- wrong type. Reading the key's type also makes a key that a resharding already moved to
-- another node fail the script here, before it changed anything (Redis Cluster refuses a
-- script's access to a key of a migrating slot that is no longer local). In a strict script
-- (MQ.strict), a key that is not among KEYS is an error: nothing changed.
local function mq_usable(key, kind)
  if MQ.strict and not MQ.declared[key] then
    error('mq: script touches undeclared key ' .. key .. ': nothing changed')
  end
  local t = redis.call('TYPE', key)['ok']
  return t == 'none' or t == kind
end

-- The unique key the task whose entry has `fields` holds (the key's value is its id), to be
-- released by mq_release; nil if it has none, or another task holds it, or the key is not a
-- string (then it is left alone). Decided before the script's first write.
local function mq_unique_held(prefix, fields)
  local u = mq_field(fields, 'u')
  if not u or not prefix then
    return nil
  end
  local key = prefix .. u
  local id = mq_task_id(fields)
  if not id or not mq_usable(key, 'string') or redis.call('GET', key) ~= id then
    return nil
  end
  return key
end

-- Releases unique key `key` (from mq_unique_held; nil: nothing to do): deletes it, or with
-- `keep_ms` > 0 keeps it that long (the task's `unique_for` window after a success).
local function mq_release(key, keep_ms)
  if not key then
    return 0
  end
  if keep_ms and keep_ms > 0 then
    redis.call('PEXPIRE', key, keep_ms)
  else
    redis.call('DEL', key)
  end
  return 1
end
