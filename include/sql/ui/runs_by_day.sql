-- The plugin page's chart and summary: per day and category, the counts of that day's newest run
-- (a rerun replaces the earlier run's figures), for the %(days)s days up to the newest day a run
-- synced (not up to today: a sync that stopped still shows its last days); dry runs left out.
WITH runs AS (
    SELECT window_start, dag_run_id, max(finished_at) AS finished
    FROM thrive_sync.sync_runs
    WHERE window_start > (SELECT max(window_start) FROM thrive_sync.sync_runs) - make_interval(days => %(days)s)
      AND NOT dry_run
    GROUP BY window_start, dag_run_id
), newest AS (
    SELECT DISTINCT ON (window_start) window_start, dag_run_id
    FROM runs
    ORDER BY window_start, finished DESC
)
SELECT s.window_start::date AS day, s.category, s.dag_run_id,
       sum(s.extracted) AS extracted, sum(s.written) AS written, sum(s.failed) AS failed, sum(s.skipped) AS skipped,
       sum(coalesce(s.unchanged, 0)) AS unchanged
FROM thrive_sync.sync_runs s
JOIN newest n USING (window_start, dag_run_id)
GROUP BY 1, 2, 3
ORDER BY 1 DESC, 2;
