-- Per org and category: the records written on each of the last %(days)s days before the run's day
-- that the DAG synced (not as a dry run), newest first; 0 for a day the org had no rows in it (a quiet
-- day is a day). A day without any run (the DAG paused) is not a day here. Rows saved before the
-- column salesforce_conn_id came name no org: left out.
WITH days AS (
    SELECT DISTINCT window_start
    FROM thrive_sync.sync_runs
    WHERE window_start < %(window_start)s AND category = ANY(%(categories)s) AND NOT coalesce(dry_run, false)
    ORDER BY window_start DESC
    LIMIT %(days)s
), written AS (
    SELECT salesforce_conn_id AS conn_id, category, window_start, sum(written) AS written
    FROM thrive_sync.sync_runs
    WHERE window_start IN (SELECT window_start FROM days) AND category = ANY(%(categories)s)
      AND NOT coalesce(dry_run, false) AND salesforce_conn_id IS NOT NULL
    GROUP BY 1, 2, 3
), pairs AS (
    SELECT DISTINCT conn_id, category FROM written
)
SELECT p.conn_id, p.category, array_agg(coalesce(w.written, 0) ORDER BY d.window_start DESC)
FROM pairs p
CROSS JOIN days d
LEFT JOIN written w ON w.conn_id = p.conn_id AND w.category = p.category AND w.window_start = d.window_start
GROUP BY 1, 2
ORDER BY 1, 2;
