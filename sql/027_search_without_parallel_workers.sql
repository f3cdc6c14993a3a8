-- search_log_page runs its statements without parallel workers.
--
-- Why: the walk's windows over today's partition are bitmap scans through the BRIN on
-- timestamp, which the planner estimates big enough for a Gather Merge with two workers. Each
-- worker's start costs milliseconds, far more than the few thousand rows of a window, and a
-- 2-core machine serving 32 callers has no idle core for them: one no-match search over a week
-- (10M logs, 2026-12-07) took 22-28 ms with workers and 5.2 ms without, the same rows found.
-- The setting is the function's own (restored when it returns), so nothing else changes.
ALTER FUNCTION search_log_page(timestamptz[], timestamptz[], text[], text, text[], text, text, text,
    timestamptz, integer, bigint, text, integer, integer, interval, interval, interval)
    SET max_parallel_workers_per_gather = 0;
