-- Record the start of a tracked task's attempt (see status.lua): status `running` with the
-- consumer, the attempt and the start time, and/or the event `started`. Only tasks with entry
-- field `tr` or `ev` call it (one round trip at start); plain tasks never do.
-- KEYS[1] the stream (the queue's hash tag)
-- ARGV[1] unique-key prefix (the queue's key base), ARGV[2] task id, ARGV[3] status ttl in ms
-- or '', ARGV[4] '1' if the task emits events, ARGV[5] consumer, ARGV[6] attempt
mq_record(mq_plan(ARGV[1], {'tr', ARGV[3], 'ev', ARGV[4]}, ARGV[2]), 'running', 'started',
  {'consumer', ARGV[5], 'attempt', ARGV[6], 'since', mq_now()})
return 1
