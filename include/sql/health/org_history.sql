-- Per org and category: the records written on each of the last %(days)s days before the run's day
-- that had a run (not dry), newest first. A day without any run (the DAG paused) is not a quiet day.
WITH days AS (
    SELECT coalesce(salesforce_conn_id, %(default_conn_id)s) AS conn_id, category, window_start,
           sum(written) AS written
    FROM thrive_sync.sync_runs
    WHERE window_start < %(window_start)s AND category = ANY(%(categories)s) AND NOT coalesce(dry_run, false)
    GROUP BY 1, 2, 3
), ranked AS (
    SELECT *, row_number() OVER (PARTITION BY conn_id, category ORDER BY window_start DESC) AS age
    FROM days
)
SELECT conn_id, category, array_agg(written ORDER BY age)
FROM ranked
WHERE age <= %(days)s
GROUP BY 1, 2
ORDER BY 1, 2;
