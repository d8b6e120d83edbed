-- Per org and category of the run (the org its part wrote to): its rows past the gates and of those
-- the failures, deferred ones left out as in the report's failure share; and the records written for
-- the run's day by every run of it that was not a dry run (a rerun writes only what the first left,
-- so the day's runs are added up).
WITH day AS (
    SELECT salesforce_conn_id AS conn_id, category,
           sum(written) FILTER (WHERE NOT coalesce(dry_run, false)) AS written,
           sum(extracted - skipped) FILTER (WHERE dag_run_id = %(run_id)s) AS past_gates,
           sum(failed - coalesce(deferred, 0)) FILTER (WHERE dag_run_id = %(run_id)s) AS failed
    FROM thrive_sync.sync_runs
    WHERE window_start = %(window_start)s AND category = ANY(%(categories)s) AND salesforce_conn_id IS NOT NULL
    GROUP BY 1, 2
)
SELECT conn_id, category, coalesce(past_gates, 0), coalesce(failed, 0), coalesce(written, 0)
FROM day
ORDER BY conn_id, category;
