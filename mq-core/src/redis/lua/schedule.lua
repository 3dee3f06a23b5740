-- Schedule a task: add it to the delayed set, due `delay` ms from now by the server clock (or
-- at an absolute time), and wake the promoters if it is now the earliest delayed task.
-- KEYS[1] delayed zset
-- ARGV[1] delay in ms, or '-' to use ARGV[2]; ARGV[2] due time in unix ms (if ARGV[1] is '-');
-- ARGV[3] member; ARGV[4] wake channel (its due time is published there when it becomes the
-- earliest; skipped if the user may not PUBLISH)
-- Returns the due time.
return mq_schedule(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
