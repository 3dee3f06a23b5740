-- Ack a batch of plain tasks that report their end: flow children (entry field `fp`) and tasks
-- of a run (`rn`), neither unique nor tracked nor holding a concurrency slot (those take
-- ack_unique.lua). For each entry still pending for this consumer, in one atomic step: delete
-- and ack it, report it to its flow's parent (mq_flow_report) and forget a cancellation asked
-- for it; the ends of each run are counted once per call (mq_run_report with the number of
-- its tasks acked here), so a batch of a run's tasks costs one update of the run. An entry no
-- longer pending for this consumer (another worker took it over) is skipped: it is that
-- worker's to finish and report, so each entry reports once.
-- KEYS[1] stream
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] the unique-key prefix (`{prefix}:{queue}:unique:`,
-- the base of the queue's keys), ARGV[4..] entry ids
-- Returns the number of entries acked.
local base = mq_base(ARGV[3])
local cancel = base .. 'cancel'
local has_cancel = redis.call('EXISTS', cancel) == 1
local runs, order = {}, {}
local known = {}
local acked = 0
for i = 4, #ARGV do
  local id = ARGV[i]
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
  if p[1] and p[1][2] == ARGV[2] then
    local entry = redis.call('XRANGE', KEYS[1], id, id)
    local fields = entry[1] and entry[1][2] or {}
    local task = mq_task_id(fields)
    local flow = mq_flow_parent(fields)
    local rn = mq_field(fields, 'rn')
    local run = nil
    if rn then
      if known[rn] == nil then
        known[rn] = mq_run_key(rn) or false
      end
      run = known[rn] or nil
    end
    redis.call('XDEL', KEYS[1], id)
    redis.call('XACK', KEYS[1], ARGV[1], id)
    acked = acked + 1
    if entry[1] then
      if flow and task then
        mq_flow_report({id = task, flow = flow}, 'done')
      end
      if run then
        if not runs[run] then
          runs[run] = 0
          order[#order + 1] = run
        end
        runs[run] = runs[run] + 1
      end
    end
    if has_cancel and task then
      redis.call('HDEL', cancel, task)
    end
  end
end
for _, run in ipairs(order) do
  mq_run_report(run, 'done', runs[run])
end
return acked
